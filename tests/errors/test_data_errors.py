"""Bad and tricky data files: ids stay exact tokens, format errors do not depend on position.

CLI cases assert the exit code (2 for a user error), the message (file, line, value,
what was expected) and that no result file was written.
"""

import os

import numpy as np
import pytest

import robustjax.data as rd
from robustjax.cli.main import main

_RESULTS = ("metrics.json", "recommendations.tsv")
_SNOWFLAKE = 1_234_567_890_123_456_789  # > 2**60: collapses to one float64 token


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def _train(tmp_path, data, *sets):
    out = tmp_path / "out"
    args = ["train", "--data", data, "--out", str(out), "--set", "train.epochs=1"]
    for s in sets:
        args += ["--set", s]
    return main(args), out


def _no_results(out):
    for name in _RESULTS:
        assert not os.path.exists(os.path.join(out, name)), name


def _snowflake_lines(num_users=30, num_items=60, per_user=8):
    rng = np.random.default_rng(0)
    lines = []
    for u in range(num_users):
        for i in rng.choice(num_items, per_user, replace=False):
            stars = rng.choice([0.5, 1.5, 3.0, 4.5])
            lines.append(f"{_SNOWFLAKE + u}\t{_SNOWFLAKE + 1000 + i}\t{stars}\t{10**9 + u}.5")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- ids are tokens
def test_snowflake_ids_with_half_star_ratings_stay_distinct(tmp_path):
    t = rd.load(_write(tmp_path, "snow.tsv", _snowflake_lines()))
    assert (t.num_users, len(t)) == (30, 240)
    assert t.user_tokens[0] == str(_SNOWFLAKE) and t.user_tokens[29] == str(_SNOWFLAKE + 29)
    assert set(t.rating.tolist()) <= {0.5, 1.5, 3.0, 4.5}
    assert t.timestamp[0] % 1 == 0.5


def test_ids_beyond_2_53_with_fractional_timestamp(tmp_path):
    rows = [f"{2**53 + k}\t{k % 7}\t1\t{k}.5" for k in range(30)]
    t = rd.load(_write(tmp_path, "big.tsv", "\n".join(rows) + "\n"))
    assert t.num_users == 30
    assert t.user_tokens.tolist() == [str(2**53 + k) for k in range(30)]


def test_ids_of_2_63_and_more_keep_their_text(tmp_path):
    rows = [f"{2**63 + k}\t{2**64 + k}" for k in range(5)] + ["5\t6"]
    t = rd.load(_write(tmp_path, "huge.tsv", "\n".join(rows) + "\n"))
    assert (t.num_users, t.num_items) == (6, 6)
    assert str(2**63 + 4) in t.user_tokens.tolist() and "5" in t.user_tokens.tolist()


def test_one_fractional_id_does_not_rewrite_other_tokens(tmp_path):
    text = "1\t2\t3\n10\t2\t4\n5.5\t3\t1\n007\t3\t2\n"
    t = rd.load(_write(tmp_path, "pairs.tsv", text))
    assert sorted(t.user_tokens.tolist()) == ["007", "1", "10", "5.5"]
    assert t.user_tokens[t.user].tolist() == ["1", "10", "5.5", "007"]


def test_integer_ids_sort_numerically_and_map_to_themselves(tmp_path):
    t = rd.load(_write(tmp_path, "p.tsv", "2\t1\t3.5\n0\t0\t1\n1\t2\t2\n10\t1\t4\n"))
    assert t.user_tokens.tolist() == ["0", "1", "2", "10"]
    assert t.user.tolist() == [2, 0, 1, 3]


@pytest.mark.parametrize("value", ["5.5", "abc", "1e3"])
def test_movielens_non_integer_id_is_an_error(tmp_path, capsys, value):
    rows = ["1\t2\t3\t100", "2\t3\t4\t101", f"{value}\t4\t5\t102", "3\t1\t1\t103"]
    data = _write(tmp_path, "u.data", "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=rf"u.data, line 3: user id '{value}' is not an integer"):
        rd.load(data)
    rc, out = _train(tmp_path, data)
    err = capsys.readouterr().err
    assert rc == 2 and "line 3" in err and repr(value) in err and "expected an integer" in err
    _no_results(out)


def test_cli_train_on_snowflake_ids_round_trips_the_id_text(tmp_path):
    rc, out = _train(tmp_path, _write(tmp_path, "snow.tsv", _snowflake_lines()))
    assert rc == 0
    import json

    data = json.loads((out / "data.json").read_text())
    assert (data["num_users"], data["num_items"]) == (30, 60)
    rec = (out / "recommendations.tsv").read_text().splitlines()[1:]
    users = {ln.split("\t")[0] for ln in rec}
    items = {ln.split("\t")[1] for ln in rec}
    assert users <= {str(_SNOWFLAKE + u) for u in range(30)} and len(users) > 1
    assert items <= {str(_SNOWFLAKE + 1000 + i) for i in range(60)}


# --------------------------------------------------------- detection and position of lines
def _pairs(n, bad_at=None, bad="7\tabc\tnope"):
    rows = [f"{k % 13}\t{k % 17}\t{k % 5}" for k in range(n)]
    if bad_at is not None:
        rows[bad_at - 1] = bad
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("7\tabc\tnope", r"line {n}: rating 'nope' is not a number"),
        ("abc", r"line {n}: expected 3 columns separated by '\\t', got 1: 'abc'"),
        ("1\t2\t3\t4\t5", r"line {n}: expected 3 columns separated by '\\t', got 5"),
    ],
)
@pytest.mark.parametrize("line", [5, 150, 250])
def test_bad_line_gets_the_same_error_wherever_it_is(tmp_path, bad, message, line):
    p = _write(tmp_path, "data.tsv", _pairs(300, line, bad))
    with pytest.raises(ValueError, match="data.tsv, " + message.format(n=line)):
        rd.load(p)


def test_bad_line_error_from_cli(tmp_path, capsys):
    rc, out = _train(tmp_path, _write(tmp_path, "data.tsv", _pairs(300, 150)))
    err = capsys.readouterr().err
    assert rc == 2 and "data.tsv, line 150: rating 'nope' is not a number" in err
    _no_results(out)


@pytest.mark.parametrize("name", ["ratings.csv", "mine.csv", "export.txt"])
def test_csv_with_bom_and_header_is_detected_whatever_its_name(tmp_path, name):
    text = "\ufeffuserId,movieId,rating,timestamp\n1,10,4.5,100\n2,10,3.0,101\n1,11,0.5,102\n"
    t = rd.load(_write(tmp_path, name, text))
    assert (t.num_users, t.num_items, len(t)) == (2, 2, 3)
    assert t.rating.tolist() == [4.5, 3.0, 0.5]


def test_alphanumeric_ids_are_not_a_header(tmp_path):
    t = rd.load(_write(tmp_path, "a.tsv", "u1\ti1\nu2\ti1\nu1\ti2\n"))
    assert t.user_tokens.tolist() == ["u1", "u2"] and len(t) == 3


def test_trailing_tabs_are_not_a_header_nor_a_column(tmp_path):
    t = rd.load(_write(tmp_path, "t.tsv", "1\t2\t\n3\t4\t\n1\t4\t\n"))
    assert (t.num_users, t.num_items, len(t)) == (2, 2, 3)


def test_alphanumeric_user_lines(tmp_path):
    t = rd.load(_write(tmp_path, "seq.txt", "a x y z\nb y\nc z x\n"))
    assert t.user_tokens.tolist() == ["a", "b", "c"] and len(t) == 6


def test_header_only_inter_is_a_clear_error(tmp_path, capsys):
    data = _write(tmp_path, "x.inter", "user_id:token\titem_id:token\trating:float\n")
    with pytest.raises(ValueError, match=r"x.inter' has a header .* but no rows"):
        rd.load(data)
    rc, out = _train(tmp_path, data)
    assert rc == 2 and "but no rows" in capsys.readouterr().err
    _no_results(out)


# ------------------------------------------------------------------ evaluation problems
def _many_users(n_users=20, per_user=6):
    rows = [f"u{u}\ti{(u + k) % 15}" for u in range(n_users) for k in range(per_user)]
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    ("sets", "part", "hint"),
    [
        (["data.ratios=(0.9,0.0,0.1)"], "valid", "ratios"),
        (["data.ratios=(0.9,0.1,0.0)"], "test", "ratios"),
        (["data.split=loo"], "valid", "fewer than 3 rows"),
    ],
)
def test_empty_valid_or_test_part_is_an_error(tmp_path, capsys, sets, part, hint):
    text = _many_users(per_user=2) if "loo" in sets[0] else _many_users()
    rc, out = _train(tmp_path, _write(tmp_path, "d.tsv", text), *sets)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"The {part} part of 'd.tsv' is empty" in err and "0.0" in err and hint in err
    _no_results(out)


def _split_folder(tmp_path, files):
    d = tmp_path / "split"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return str(d)


def test_folder_with_only_a_train_file_is_refused(tmp_path, capsys):
    d = _split_folder(tmp_path, {"train.tsv": _many_users()})
    with pytest.raises(ValueError, match=r"holds \['train.tsv'\] but no test file"):
        rd.detect_format(d)
    rc, out = _train(tmp_path, d)
    err = capsys.readouterr().err
    assert rc == 2 and "not a split folder" in err and "train.tsv" in err
    _no_results(out)


def test_carved_valid_part_is_configurable_and_recorded(tmp_path):
    # 9 rows per user (no diagonal), so the test rows are neither cold nor repeats.
    train = "\n".join(f"{u}\t{k}" for u in range(10) for k in range(10) if k != u) + "\n"
    d = _split_folder(tmp_path, {"train.txt": train, "test.txt": "0\t0\n1\t1\n"})
    for ratio, rows in ((0.1, 10), (0.3, 30)):
        s = rd.prepare(rd.DataConfig(path=d, valid_ratio=ratio, seed=1))
        assert len(s.valid) == rows and len(s.train) == 90 - rows
        assert s.summary()["carved_valid"] == {
            "from": "train.txt",
            "valid_ratio": ratio,
            "seed": 1,
            "rows": rows,
            "users": 10,
        }
    given = _split_folder(
        tmp_path / "g", {"train.txt": train, "valid.txt": "0 0\n", "test": "1 1\n"}
    )
    assert "carved_valid" not in rd.prepare(rd.DataConfig(path=given)).summary()


@pytest.mark.parametrize("ratio", [0.0, 0.5, -0.1, float("nan")])
def test_valid_ratio_out_of_range_is_rejected(ratio):
    with pytest.raises(ValueError, match=r"valid_ratio.*\(0, 0.5\)"):
        rd.DataConfig(valid_ratio=ratio)


def test_given_split_problems_each_warn_with_a_count(tmp_path):
    train = "\n".join(f"{u}\t{k}" for u in range(5) for k in range(6)) + "\n"
    test = (
        "0\t90\n1\t91\n1\t90\n77\t2\n2\t3\n3\t4\n4\t5\n"  # 2 unseen items, 1 cold user, 3 repeats
    )
    d = _split_folder(tmp_path, {"train.tsv": train, "valid.tsv": "0\t1\n", "test.tsv": test})
    with pytest.warns(rd.DataWarning) as record:
        s = rd.prepare(rd.DataConfig(path=d))
    messages = [str(w.message) for w in record]  # items, users, repeated rows
    assert len(messages) == 3, messages
    assert "'split': 2 test item(s) have no training rows" in messages[0]
    assert "'split': 1 test user(s) have no training rows" in messages[1]
    assert "'split': 3 test row(s) equal a training row" in messages[2]
    summary = s.summary()
    assert summary["test_items_unseen_in_train"] == 2
    assert summary["test_users_without_train_rows"] == 1
    assert summary["test_rows_in_train"] == 3


@pytest.mark.parametrize("line", [5, 250])
def test_repeated_user_line_gets_the_same_error_wherever_it_is(tmp_path, line):
    rows = [f"{u} " + " ".join(str((u + k) % 50) for k in range(1 + u % 7)) for u in range(300)]
    rows[line - 1] = "3 1 2"
    p = _write(tmp_path, "train.txt", "\n".join(rows) + "\n")
    first, second = sorted((4, line))
    with pytest.raises(
        ValueError, match=rf"line {second}: user '3' already has a line \(line {first}\)"
    ):
        rd.load(p)
