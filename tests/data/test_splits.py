import os

import numpy as np
import pytest

import robustjax.data as rd


def _no_leak(s):
    tr, va, te = s.train.pairs(), s.valid.pairs(), s.test.pairs()
    assert not np.intersect1d(tr, va).size
    assert not np.intersect1d(tr, te).size
    assert not np.intersect1d(va, te).size


def _table(user, item, ts=None):
    user, item = np.asarray(user, np.int32), np.asarray(item, np.int32)
    return rd.InteractionTable(
        user,
        item,
        None,
        None if ts is None else np.asarray(ts, np.float64),
        np.arange(user.max() + 1).astype(str),
        np.arange(item.max() + 1).astype(str),
    )


@pytest.fixture
def syn():
    return rd.synthetic(num_users=100, num_items=200, interactions_per_user=20, seed=1)


def test_random_split_ratios_and_reproducible(syn):
    s = rd.split_random(syn, (0.8, 0.1, 0.1), seed=3)
    _no_leak(s)
    assert (len(s.train), len(s.valid), len(s.test)) == (1600, 200, 200)
    assert np.all(np.bincount(s.test.user, minlength=100) == 2)
    s2 = rd.split_random(syn, (0.8, 0.1, 0.1), seed=3)
    s3 = rd.split_random(syn, (0.8, 0.1, 0.1), seed=4)
    assert np.array_equal(s.test.pairs(), s2.test.pairs())
    assert not np.array_equal(s.test.pairs(), s3.test.pairs())
    assert len(s.train) + len(s.valid) + len(s.test) == len(syn)


def test_random_split_matches_ml100k_split_counts(shared_data):
    t = rd.load(os.path.join(shared_data, "ml-100k", "ml-100k.inter"))
    s = rd.split_random(t, seed=2024)
    assert (len(s.train), len(s.valid), len(s.test)) == (80024, 9988, 9988)


def test_leave_one_out_by_timestamp():
    # user 0: items 0..3 with shuffled timestamps; user 1 has 2 rows (all train)
    t = _table([0, 0, 0, 0, 1, 1], [0, 1, 2, 3, 0, 1], ts=[5, 9, 1, 7, 3, 4])
    s = rd.split_leave_one_out(t, order="timestamp")
    assert s.test.item.tolist() == [1] and s.valid.item.tolist() == [3]
    assert s.train.user.tolist() == [0, 0, 1, 1]
    f = rd.split_leave_one_out(t, order="file")
    assert f.test.item.tolist() == [3] and f.valid.item.tolist() == [2]
    with pytest.raises(ValueError, match="no timestamps.*order='file'"):
        rd.split_leave_one_out(_table([0], [0]), order="timestamp")


def test_leave_one_out_sequence(shared_data):
    t = rd.load(os.path.join(shared_data, "lastfm-s3rec", "LastFM.txt"))
    s = rd.split_leave_one_out(t, order="auto")
    _no_leak(s)
    assert len(s.test) == len(s.valid) == 1090


def test_temporal_split(syn):
    s = rd.split_temporal(syn, (0.8, 0.1, 0.1), drop_cold=True)
    assert s.train.timestamp.max() <= s.valid.timestamp.min()
    assert s.valid.timestamp.max() <= s.test.timestamp.min()
    assert len(s.train) == 1600
    with pytest.raises(ValueError, match="no timestamps"):
        rd.split_temporal(_table([0, 1], [0, 1]))


def test_cold_users_error_and_drop():
    # user 1 has 1 row, and ratios put it in test
    t = _table([0] * 10 + [1], list(range(10)) + [0])
    with pytest.raises(ValueError, match=r"1 user\(s\).*e.g. user '1'.*kcore.*drop_cold"):
        rd.split_random(t, (0.3, 0.0, 0.7), seed=0)
    s = rd.split_random(t, (0.3, 0.0, 0.7), seed=0, drop_cold=True)
    assert s.test.user.tolist() == [0] * 7 and len(s.train) == 3


def test_bad_ratios():
    with pytest.raises(ValueError, match=r"ratios=\(0.5, 0.1, 0.1\)"):
        rd.split_random(_table([0], [0]), (0.5, 0.1, 0.1), seed=0)


def test_preprocess():
    t = rd.InteractionTable(
        np.array([0, 0, 1, 1, 2, 0], np.int32),
        np.array([0, 0, 1, 2, 3, 1], np.int32),
        np.array([5, 1, 4, 2, 5, 3], np.float32),
        None,
        np.array(["a", "b", "c"]),
        np.array(["w", "x", "y", "z"]),
    )
    assert rd.deduplicate(t).rating.tolist() == [5, 4, 2, 5, 3]
    assert rd.deduplicate(t, keep="last").rating.tolist() == [1, 4, 2, 5, 3]
    imp = rd.to_implicit(t, 4)
    assert imp.rating.tolist() == [5, 4, 5]
    r = rd.remap(imp.subset(imp.user != 1))
    assert r.user_tokens.tolist() == ["a", "c"] and r.item_tokens.tolist() == ["w", "z"]
    k = rd.kcore(rd.deduplicate(t), 2, 1)
    assert k.user_tokens.tolist() == ["a", "b"] and len(k) == 4
    with pytest.raises(ValueError, match="no ratings"):
        rd.to_implicit(_table([0], [0]), 4)


def test_kcore_stable(shared_data):
    t = rd.load(os.path.join(shared_data, "lastfm-lightgcn", "data1.txt"))
    k = rd.kcore(t, 10, 10)
    assert np.bincount(k.user).min() >= 10 and np.bincount(k.item).min() >= 10
    assert len(k.user_tokens) == k.num_users == np.unique(k.user).size


def test_csr_and_padded():
    t = _table([1, 0, 1, 1], [3, 2, 0, 2])
    indptr, indices = rd.user_item_csr(t, 3)
    assert indptr.tolist() == [0, 1, 4, 4] and indices.tolist() == [2, 0, 2, 3]
    assert indptr.dtype == np.int64 and indices.dtype == np.int32
    p = rd.padded_lists(t, 3)
    assert p.tolist() == [[2, -1, -1], [0, 2, 3], [-1, -1, -1]] and p.dtype == np.int32


def test_table_validation():
    with pytest.raises(ValueError, match="item has id 5 outside 0..1"):
        rd.InteractionTable(
            np.zeros(1, np.int32),
            np.array([5], np.int32),
            None,
            None,
            np.array(["a"]),
            np.array(["x", "y"]),
        )
    with pytest.raises(ValueError, match="dtype int32"):
        rd.InteractionTable(
            np.zeros(1, np.int64),
            np.zeros(1, np.int32),
            None,
            None,
            np.array(["a"]),
            np.array(["x"]),
        )
