"""Data fingerprints: every run stores one in data.json, and `robustjax sweep` refuses
checkpoints trained on other data (same user and item counts included), naming both runs;
runs written before fingerprints load with a warning."""

import json
import os

import pytest

from robustjax.cli.main import main
from robustjax.data import FingerprintWarning, data_fingerprint, synthetic
from robustjax.run import load_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    runs = {}

    def run(*sets, experiment="bpr-mf"):
        key = (experiment, *sets)
        if key not in runs:
            out = str(tmp_path_factory.mktemp("run") / "out")
            args = ["train", "--experiment", experiment, "--tiny", "--no-progress", "--out", out]
            for s in sets:
                args += ["--set", s]
            assert main(args) == 0, key
            runs[key] = out
        return runs[key]

    return run


_ROWS = [(u, i) for u in range(12) for i in range(u % 5, u % 5 + 6)]


def _write(path, rows):
    path.write_text("".join(f"{u}\t{i}\n" for u, i in rows))


def _train(out, data, *sets):
    args = ["train", "--tiny", "--no-progress", "--data", str(data), "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    return str(out)


def _sweep(tmp_path, *runs):
    args = ["sweep", "--eps", "0,0.5", "--ks", "5", "--stability-k", "5", "--no-progress"]
    for r in runs:
        args += ["--checkpoint", r]
    return main([*args, "--out", str(tmp_path / "sweep")])


def _data_json(run):
    with open(os.path.join(run, "data.json")) as f:
        return json.load(f)


def test_runs_store_a_fingerprint_of_their_data(tiny_run):
    fp = _data_json(tiny_run())["fingerprint"]
    assert len(fp["sha256"]) == 64 and fp["source"]["synthetic"]["num_users"] == 40


def test_fingerprint_covers_ids_rows_and_split():
    a = synthetic(num_users=20, num_items=30, interactions_per_user=5, seed=0)
    b = synthetic(num_users=20, num_items=30, interactions_per_user=5, seed=1)
    assert data_fingerprint(a)["sha256"] == data_fingerprint(a)["sha256"]
    assert data_fingerprint(a)["sha256"] != data_fingerprint(b)["sha256"]
    import dataclasses

    tokens = a.user_tokens.copy()
    tokens[[0, 1]] = tokens[[1, 0]]  # same rows, other id mapping
    swapped = dataclasses.replace(a, user_tokens=tokens)
    assert data_fingerprint(a)["sha256"] != data_fingerprint(swapped)["sha256"]


def test_sweep_refuses_a_checkpoint_of_other_data_with_the_same_counts(tmp_path, tiny_run, capsys):
    # the same file with another split seed: same counts, other train/valid/test
    data = tmp_path / "ratings.tsv"
    _write(data, _ROWS)
    a, b = (_train(tmp_path / f"run{s}", data, f"data.seed={s}") for s in (1, 2))
    assert _data_json(a)["num_users"] == _data_json(b)["num_users"]
    assert _data_json(a)["num_items"] == _data_json(b)["num_items"]
    assert _sweep(tmp_path, a, b) == 2
    err = capsys.readouterr().err
    assert "trained on other data" in err and repr(a) in err and repr(b) in err
    assert "Traceback" not in err
    assert not os.path.exists(tmp_path / "sweep" / "sweep.json")


def test_a_run_without_a_fingerprint_loads_with_a_warning(tmp_path, tiny_run):
    import shutil

    old = str(tmp_path / "old")
    shutil.copytree(tiny_run(), old)
    summary = _data_json(old)
    del summary["fingerprint"]
    with open(os.path.join(old, "data.json"), "w") as f:
        json.dump(summary, f)
    with pytest.warns(FingerprintWarning, match="no data fingerprint"):
        loaded = load_run(old)
    assert loaded.split.num_users == 40


def test_a_changed_data_file_is_refused(tmp_path, capsys):
    data = tmp_path / "ratings.tsv"
    _write(data, _ROWS)
    out = _train(tmp_path / "run", data)
    # the same counts, other rows: users 0 and 1 swap their items
    swap = {0: 1, 1: 0}
    _write(data, [(swap.get(u, u), i) for u, i in _ROWS])
    with pytest.raises(ValueError, match="trained on other data"):
        load_run(out)


@pytest.mark.slow  # the pair sweep's test covers the check by default; this adds SASRec runs
def test_sequence_sweep_refuses_a_checkpoint_of_other_data(tmp_path, tiny_run, capsys):
    sets = ("train.epochs=1",)
    a = tiny_run(*sets, experiment="sasrec-ml1m")
    b = tiny_run(*sets, "data.seed=7", experiment="sasrec-ml1m")
    assert "fingerprint" in _data_json(a)
    assert _sweep(tmp_path, a, b) == 2
    err = capsys.readouterr().err
    assert "trained on other data" in err and repr(a) in err and repr(b) in err
