import os

import numpy as np
import pytest

import robustjax.data as rd


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# ------------------------------------------------------------------ shared real data
def test_ml100k_atomic(shared_data):
    t = rd.load(os.path.join(shared_data, "ml-100k", "ml-100k.inter"))
    assert (t.num_users, t.num_items, len(t)) == (943, 1682, 100000)
    assert t.user.dtype == np.int32 and t.rating.dtype == np.float32
    assert t.timestamp.dtype == np.float64
    assert t.timestamp.min() == 874724710 and t.timestamp.max() == 893286638
    # First row of the file: 196 242 3 881250949.
    assert t.user_tokens[t.user[0]] == "196" and t.item_tokens[t.item[0]] == "242"
    assert np.bincount(t.rating.astype(int))[1:].tolist() == [6110, 11370, 27145, 34174, 21201]


def test_ml100k_split_folder(shared_data):
    s = rd.load(os.path.join(shared_data, "ml-100k-split"))
    assert isinstance(s, rd.SplitData)
    assert (s.num_users, s.num_items) == (943, 1682)
    assert (len(s.train), len(s.valid), len(s.test)) == (80024, 9988, 9988)
    # 0-based dense ids map to themselves; first train row is "195 241".
    assert s.train.user[0] == 195 and s.train.item[0] == 241
    assert s.train.user_tokens[195] == "195"


def test_ml1m_chrono(shared_data):
    t = rd.load(os.path.join(shared_data, "ml-1m", "ml-1m.chrono.tsv"))
    assert (t.num_users, t.num_items, len(t)) == (6040, 3706, 1000209)
    assert t.timestamp is None and t.rating is not None
    assert int((t.rating >= 4).sum()) == 575281
    assert t.user_tokens[t.user[0]] == "1" and t.item_tokens[t.item[0]] == "3186"


def test_lastfm_lightgcn_folder(shared_data):
    s = rd.load_split_folder(os.path.join(shared_data, "lastfm-lightgcn"), seed=0)
    assert len(s.train) + len(s.valid) == 42135 and len(s.test) == 10533
    assert s.num_items == 4489 and s.num_users == 1880
    s0 = rd.load_split_folder(os.path.join(shared_data, "lastfm-lightgcn"), valid_ratio=0.0)
    assert len(s0.train) == 42135 and len(s0.valid) == 0
    assert s0.train.user_tokens[s0.train.user[0]] == "0"
    assert s0.train.item_tokens[s0.train.item[0]] == "60"
    # no (u, i) pair shared between parts
    assert not np.intersect1d(s.train.pairs(), s.valid.pairs()).size


def test_lastfm_weight_file(shared_data):
    t = rd.load(os.path.join(shared_data, "lastfm-lightgcn", "data1.txt"))
    assert len(t) == 42135 and t.rating.max() == 324660 and t.rating.min() == 1


def test_sequences(shared_data):
    toys = rd.load(os.path.join(shared_data, "toys-s3rec", "Toys_and_Games.txt"))
    assert (toys.num_users, toys.num_items, len(toys)) == (19412, 11924, 167597)
    assert toys.timestamp is None
    lastfm = rd.load_user_lines(os.path.join(shared_data, "lastfm-s3rec", "LastFM.txt"))
    assert (lastfm.num_users, lastfm.num_items, len(lastfm)) == (1090, 3646, 52551)


# -------------------------------------------------------------------- round trips
def test_atomic_roundtrip(tmp_path):
    p = _write(
        tmp_path,
        "x.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\t"
        "title:token_seq\nbob\tz\t4\t10\ta b\nal\ty\t3.5\t5\tc d\nbob\ty\t1\t20\te\n",
    )
    t = rd.load(p)
    assert t.user_tokens.tolist() == ["al", "bob"] and t.item_tokens.tolist() == ["y", "z"]
    assert t.user.tolist() == [1, 0, 1] and t.item.tolist() == [1, 0, 0]
    assert t.rating.tolist() == [4, 3.5, 1] and t.timestamp.tolist() == [10, 5, 20]


@pytest.mark.parametrize(
    "name,text",
    [
        ("u.data", "10\t5\t3\t100\n2\t7\t4\t50\n"),
        ("ratings.dat", "10::5::3::100\n2::7::4::50\n"),
        ("ratings.csv", "userId,movieId,rating,timestamp\n10,5,3.0,100\n2,7,4.0,50\n"),
    ],
)
def test_movielens_roundtrip(tmp_path, name, text):
    t = rd.load(_write(tmp_path, name, text))
    assert rd.detect_format(str(tmp_path / name)) == "movielens"
    assert t.user_tokens.tolist() == ["2", "10"]  # numeric sort
    assert t.user.tolist() == [1, 0] and t.item_tokens[t.item].tolist() == ["5", "7"]
    assert t.rating.tolist() == [3, 4] and t.timestamp.tolist() == [100, 50]


def test_delimited_roundtrip(tmp_path):
    p = _write(tmp_path, "d.csv", "ts,item,junk,user\n5,a,x,u1\n6,b,y,u2\n")
    t = rd.load_delimited(p, sep=",", columns=("timestamp", "item", None, "user"), header=True)
    assert t.user_tokens.tolist() == ["u1", "u2"] and t.timestamp.tolist() == [5, 6]
    assert t.rating is None


def test_user_lines_roundtrip(tmp_path):
    p = _write(tmp_path, "seq.txt", "3 9 1 5\n1 2\n\n7\n")
    t = rd.load(p)
    assert rd.detect_format(p) == "user-lines"
    assert t.user_tokens.tolist() == ["1", "3", "7"]  # user 7 has no items but an id
    assert t.user_tokens[t.user].tolist() == ["3", "3", "3", "1"]
    assert t.item_tokens[t.item].tolist() == ["9", "1", "5", "2"]  # within-line order kept


def test_pairs_roundtrip_and_seq_idx(tmp_path):
    p = _write(
        tmp_path,
        "p.tsv",
        "user_id\titem_id\trating\tseq_idx\n2\t10\t5\t1\n1\t11\t4\t0\n2\t12\t3\t0\n1\t10\t2\t1\n",
    )
    t = rd.load(p)
    assert t.timestamp is None
    assert t.user_tokens[t.user].tolist() == ["1", "1", "2", "2"]
    assert t.item_tokens[t.item].tolist() == ["11", "10", "12", "10"]
    assert t.rating.tolist() == [4, 2, 3, 5]
    q = _write(tmp_path, "q.txt", "5 6\n5 7\n")
    assert len(rd.load_pairs_in_order(q)) == 2


def test_split_folder_roundtrip(tmp_path):
    d = tmp_path / "f"
    d.mkdir()
    (d / "train.txt").write_text("0 1 2 3\n1 2 3\n")
    (d / "val.txt").write_text("0 4\n")
    (d / "test.tsv").write_text("1\t9\n")
    s = rd.load(str(d))
    assert (len(s.train), len(s.valid), len(s.test)) == (5, 1, 1)
    assert s.test.item_tokens is s.train.item_tokens
    assert s.train.item_tokens.tolist() == ["1", "2", "3", "4", "9"]


# ----------------------------------------------------------------------- errors
def test_error_wrong_columns(tmp_path):
    p = _write(tmp_path, "bad.tsv", "1\t2\n3\t4\n5\t6\t7\n")
    with pytest.raises(ValueError, match=r"line 3.*expected 2 columns.*'5\\t6\\t7'"):
        rd.load_delimited(p)


def test_error_bad_number(tmp_path):
    p = _write(tmp_path, "u.data", "1\t2\t3\t4\n1\t3\tfive\t5\n")
    with pytest.raises(ValueError, match=r"u.data, line 2: rating 'five' is not a number"):
        rd.load_movielens(p)


def test_error_empty_and_missing(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        rd.load_delimited(_write(tmp_path, "e.tsv", "\n  \n"))
    with pytest.raises(ValueError, match="not found.*nope"):
        rd.load(str(tmp_path / "nope.tsv"))


def test_error_unknown_format(tmp_path):
    p = _write(tmp_path, "x.tsv", "a\tb\n")
    with pytest.raises(ValueError, match="Unknown format='xml'.*atomic"):
        rd.load(p, format="xml")
    with pytest.raises(ValueError, match="Cannot detect.*format="):
        rd.load(_write(tmp_path, "words.txt", "hello\nworld\n"))
    # Alphanumeric tokens are legal ids: one line per user is a user-lines file.
    t = rd.load(_write(tmp_path, "seq.txt", "hello world foo\nbar\n"))
    assert t.user_tokens.tolist() == ["bar", "hello"] and len(t) == 2


def test_error_atomic_header(tmp_path):
    p = _write(tmp_path, "x.inter", "uid:token\titem_id:token\n1\t2\n")
    with pytest.raises(ValueError, match=r"line 1.*user_id:token.*'uid:token"):
        rd.load_atomic(p)


def test_error_duplicate_user_line(tmp_path):
    p = _write(tmp_path, "s.txt", "1 2 3\n2 3 4 5\n1 5\n")
    with pytest.raises(ValueError, match="line 3: user '1' already has a line"):
        rd.load_user_lines(p)


def test_error_line_numbers_skip_blank_lines(tmp_path):
    p = _write(tmp_path, "b.tsv", "1\t2\n\n\n3\n")
    with pytest.raises(ValueError, match=r"line 4.*'3'"):
        rd.load_delimited(p)


def test_folder_with_one_data_file_resolves_to_it(shared_data, tmp_path):
    import os

    from robustjax.data import load

    t = load(os.path.join(shared_data, "ml-100k"))  # .inter beside .item/.user
    assert len(t) == 100_000
    one = tmp_path / "one"
    one.mkdir()
    (one / "README.md").write_text("notes")
    (one / "data.tsv").write_text("1\t2\n1\t3\n2\t2\n")
    assert len(load(str(one))) == 3
    (one / "other.tsv").write_text("1\t2\n")
    with pytest.raises(ValueError, match="2 candidate data files"):
        load(str(one))
