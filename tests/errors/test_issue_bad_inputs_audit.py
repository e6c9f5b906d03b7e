"""Bad inputs through the CLI that the library-level tests cover only below the CLI:
the same data error wherever the bad line is, empty and header-only files, missing data
paths, cutoffs larger than the catalogue (refused before training) and damaged files of a
run read back by `robustjax sweep`. Each asserts exit code 2, a message naming the file
(and line and value where there is one), no traceback and no result file."""

import os

import pytest

from robustjax.cli.main import main

_RESULTS = ("metrics.json", "recommendations.tsv", os.path.join("checkpoint", "params.npz"))


def _no_results(out):
    for name in _RESULTS:
        assert not os.path.exists(os.path.join(out, name)), name


def _error(capsys):
    err = capsys.readouterr().err
    assert err.startswith("robustjax: error: ") and "Traceback" not in err, err
    return err


def _train(tmp_path, data, *sets):
    out = tmp_path / "out"
    args = ["train", "--data", str(data), "--out", str(out), "--no-progress"]
    for s in ("train.epochs=1", *sets):
        args += ["--set", s]
    return main(args), out


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _pairs(n, bad_at, bad):
    rows = [f"{k % 13}\t{k % 17}\t{k % 5}" for k in range(n)]
    rows[bad_at - 1] = bad
    return "\n".join(rows) + "\n"


# ------------------------------------------------------------------------------ data files


@pytest.mark.parametrize("line", [5, 250])  # inside and beyond the detection window
def test_a_one_column_line_is_the_same_cli_error_wherever_it_is(tmp_path, capsys, line):
    rc, out = _train(tmp_path, _write(tmp_path, "d.tsv", _pairs(300, line, "abc")))
    assert rc == 2
    err = _error(capsys)
    assert f"d.tsv, line {line}: expected 3 columns" in err and "'abc'" in err
    _no_results(out)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.tsv", "", "is empty (no non-blank lines)"),
        ("blank.tsv", "\n\n \n", "is empty (no non-blank lines)"),
        ("hdr.csv", "userId,movieId,rating,timestamp\n", "has a header but no rows"),
    ],
)
def test_files_without_rows_are_cli_errors(tmp_path, capsys, name, text, message):
    data = _write(tmp_path, name, text)
    rc, out = _train(tmp_path, data)
    assert rc == 2 and f"Data file {str(data)!r} {message}" in _error(capsys)
    _no_results(out)


def test_missing_data_paths_are_cli_errors(tmp_path, capsys):
    blocker = _write(tmp_path, "file.tsv", "1\t2\n")
    for data in (tmp_path / "nope.tsv", blocker / "x"):
        rc, out = _train(tmp_path, data)
        assert rc == 2 and f"Data path not found: {str(data)!r}" in _error(capsys)
        _no_results(out)


def test_cutoffs_above_the_number_of_items_are_refused_before_training(tmp_path, capsys):
    rows = [f"u{u}\ti{(u + k) % 12}" for u in range(30) for k in range(6)]  # 12 items
    rc, out = _train(tmp_path, _write(tmp_path, "small.tsv", "\n".join(rows) + "\n"))
    assert rc == 2
    err = _error(capsys)
    assert "eval.ks=(10, 20, 50)" in err and "K=50 exceeds the data's 12 items" in err
    assert "--set eval.ks=10" in err
    assert not out.exists()  # no epoch was trained: the folder this command made is gone


# ----------------------------------------------------------- run folders read back by sweep


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit_run") / "run"
    assert main(["train", "--tiny", "--no-progress", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("config.json", '{"adv": ', "is not a robustjax run config (Expecting value"),
        ("config.json", "[1]", "expected a JSON object, got list"),
        ("config.json", '{"foo": 1}', "unknown keys ['foo']"),
        (os.path.join("checkpoint", "params.json"), '{"a', "is not valid JSON"),
        ("data.json", '{"a', "not valid JSON"),
    ],
)
def test_sweep_on_a_damaged_run_file_names_the_file(tmp_path, run_dir, capsys, name, text, message):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / name).write_text(text)
    out = tmp_path / "sweep"
    assert main(["sweep", "--checkpoint", str(run), "--out", str(out), "--eps", "0,0.1"]) == 2
    err = _error(capsys)
    assert str(run / name) in err and message in err, err
    assert not out.exists()


def test_sequence_run_with_fewer_items_than_sampled_candidates_names_the_key(tmp_path, capsys):
    rows = [f"u{u}\ti{(u + k) % 12}" for u in range(30) for k in range(6)]  # 12 items
    data = _write(tmp_path, "small.tsv", "\n".join(rows) + "\n")
    out = tmp_path / "out"
    args = ["train", "--experiment", "sasrec-ml1m", "--data", str(data), "--out", str(out)]
    assert main([*args, "--no-progress", "--set", "train.epochs=1"]) == 2
    err = _error(capsys)
    assert "num_negatives=100" in err and "the table has 12" in err
    assert "--set eval.sampled_negatives=11" in err
    _no_results(out)


# ------------------------------------------------------------------ documented eval memory


def test_eval_step_memory_per_entry_is_as_documented():
    """eval/full.py's docstring: about 19-21 bytes per user x item entry with AUC and about
    10.5 without (the compiled step's temporaries on CPU)."""
    import jax
    import jax.numpy as jnp

    from robustjax.eval import full_batch_spec
    from robustjax.eval.full import eval_full_step

    b, ni, targets, excluded = 64, 20_000, 8, 32
    spec = jax.ShapeDtypeStruct
    params = {"user": spec((100, 16), jnp.float32), "item": spec((ni, 16), jnp.float32)}
    batch = full_batch_spec(  # one slot row per user
        b, target_entries=b * targets, exclude_entries=b * excluded, slot_rows=b
    )

    def per_entry(auc):
        step = eval_full_step.lower(
            params,
            batch,
            score_users_fn=lambda p, users: p["user"][users] @ p["item"].T,
            num_items=ni,
            ks=(10, 20, 50),
            auc=auc,
        ).compile()
        return step.memory_analysis().temp_size_in_bytes / (b * ni)

    with_auc, without = per_entry(True), per_entry(False)
    assert 15 <= with_auc <= 24, with_auc
    assert 8 <= without <= 13, without


def test_a_run_that_fails_before_any_epoch_leaves_no_folder(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item\n1,2\n")  # too little data for a split
    out = tmp_path / "new_out"
    assert main(["train", "--data", str(bad), "--out", str(out), "--no-progress"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not out.exists()  # not a folder that looks like a run
