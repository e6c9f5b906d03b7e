"""CLI errors: OS errors (permission, file exists, not a folder) and bad zip files come out
as `robustjax: error: ...` with exit code 2, never a traceback; `robustjax sweep` checks
every argument before it loads, computes or creates anything; negative seeds are refused
at config checking."""

import os

import pytest

import robustjax.run
from robustjax.cli.main import main

_RESULTS = ("metrics.json", "recommendations.tsv")


def _no_results(out):
    for name in _RESULTS:
        assert not os.path.exists(os.path.join(out, name)), name


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run") / "out")
    assert main(["train", "--tiny", "--no-progress", "--out", out]) == 0
    return out


def _error(capsys):
    err = capsys.readouterr().err
    assert err.startswith("robustjax: error: ") and "Traceback" not in err, err
    return err


def test_out_under_a_file_is_a_clean_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "run"
    assert main(["train", "--tiny", "--no-progress", "--out", str(out)]) == 2
    err = _error(capsys)
    assert str(out) in err and "Not a directory (NotADirectoryError" in err


def test_out_that_is_a_file_is_a_clean_error(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("x")
    assert main(["train", "--tiny", "--no-progress", "--out", str(out)]) == 2
    err = _error(capsys)
    assert str(out) in err and "File exists (FileExistsError" in err
    assert out.read_text() == "x"


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(13, "Permission denied", "/data/ratings.tsv"),
        FileExistsError(17, "File exists", "/runs/out"),
        IsADirectoryError(21, "Is a directory", "/data"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_os_errors_name_the_file(monkeypatch, tmp_path, capsys, error):
    # root ignores permission bits, so the error is raised where the data would be read
    def fail(cfg):
        raise error

    monkeypatch.setattr("robustjax.data.config._prepare_clean", fail)
    out = tmp_path / "out"
    assert main(["train", "--tiny", "--no-progress", "--out", str(out)]) == 2
    err = _error(capsys)
    assert error.filename in err and error.strerror in err and type(error).__name__ in err
    _no_results(out)


def test_bad_zip_is_a_clean_error(monkeypatch, tmp_path, capsys):
    import zipfile

    def fail(cfg):
        raise zipfile.BadZipFile("File is not a zip file")

    monkeypatch.setattr("robustjax.data.config._prepare_clean", fail)
    out = tmp_path / "out"
    assert main(["train", "--tiny", "--no-progress", "--out", str(out)]) == 2
    err = _error(capsys)
    assert "not a zip file" in err and "truncated or damaged" in err
    _no_results(out)


# ------------------------------------------------------------------ sweep: check before work


@pytest.fixture
def no_loading(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a checkpoint was loaded before the arguments were checked")

    monkeypatch.setattr(robustjax.run, "load_run", fail)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--eps", "0.5,0.25", "strictly ascending"),
        ("--eps", "0,-1", "finite and >= 0"),
        ("--eps", "0,nan", "finite and >= 0"),
        ("--eps", "a:b", "START:STOP:COUNT"),
        ("--seeds", "a", "--seeds 'a': expected comma-separated integers"),
        ("--seeds", "0,-1", "--seeds '0,-1': every value must be >= 0"),
        ("--ks", "0", "--ks '0': every value must be >= 1"),
        ("--ks", "ten", "--ks 'ten': expected comma-separated integers"),
        ("--user-batch", "0", "--user-batch 0"),
        ("--stability-k", "0", "--stability-k 0"),
        ("--memory-mb", "0", "--memory-mb 0"),
    ],
)
def test_sweep_checks_arguments_before_any_work(
    tmp_path, run_dir, no_loading, capsys, option, value, message
):
    out = tmp_path / "sweep"
    args = ["sweep", "--checkpoint", run_dir, "--out", str(out), option, value]
    assert main(args) == 2
    assert message in _error(capsys)
    assert not out.exists()


def test_sweep_checks_the_checkpoints_exist(tmp_path, run_dir, no_loading, capsys):
    out = tmp_path / "sweep"
    missing = str(tmp_path / "nope")
    assert main(["sweep", "--checkpoint", run_dir, "--checkpoint", missing, "--out", str(out)]) == 2
    assert repr(missing) in _error(capsys)
    assert not out.exists()
    (tmp_path / "empty").mkdir()
    assert main(["sweep", "--checkpoint", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "params.npz" in _error(capsys)


def test_sweep_checks_the_out_folder_can_be_made(tmp_path, run_dir, no_loading, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        assert main(["sweep", "--checkpoint", run_dir, "--out", str(out)]) == 2
        assert "--out" in _error(capsys)
    assert blocker.read_text() == "x"


# ------------------------------------------------------------------------- negative seeds


@pytest.mark.parametrize("key", ["train.seed", "data.seed"])
def test_negative_seeds_are_refused_at_config_checking(tmp_path, capsys, key):
    out = tmp_path / "out"
    assert main(["train", "--tiny", "--no-progress", "--out", str(out), "--set", f"{key}=-1"]) == 2
    err = _error(capsys)
    assert "seed" in err and "-1" in err and ">= 0" in err
    assert not out.exists()


# ------------------------------------------------------------ options for real catalogues


def test_eval_auc_false_skips_auc(tmp_path, capsys):
    import json

    out = tmp_path / "out"
    assert (
        main(["train", "--tiny", "--no-progress", "--out", str(out), "--set", "eval.auc=false"])
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert "test/ndcg@10" in metrics
    assert not [k for k in metrics if k.endswith("/auc")]
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert not [k for r in history for k in r if "auc" in k]


def test_selecting_on_auc_needs_auc(tmp_path, capsys):
    out = tmp_path / "out"
    sets = ["--set", "eval.auc=false", "--set", "train.early_metric=auc"]
    assert main(["train", "--tiny", "--no-progress", "--out", str(out), *sets]) == 2
    assert "eval.auc=true" in _error(capsys)
    assert not out.exists()
