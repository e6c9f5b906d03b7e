import json
import os

import pytest

from robustjax.cli.main import main
from robustjax.config import apply_overrides
from robustjax.experiments import get_config
from robustjax.studies import is_study, run_study, tune
from robustjax.studies.tune import TuneConfig, points, run_tune, select_best


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _tiny(**changes):
    return TuneConfig(
        **{
            "base": "bpr-mf",
            "grid": ("train.l2=0,1e-2",),
            "select": "valid/ndcg@10",
            "tiny": True,
            **changes,
        }
    )


def _fake_runs(monkeypatch, table):
    """Replaces training by writing ``table[l2] = (valid, test)`` as ndcg@10; returns the
    list of ``(l2, resume)`` calls."""
    calls = []

    def fake(cfg, out_dir, *, resume=False, progress=True):
        calls.append((cfg.train.l2, resume))
        valid, test = table[cfg.train.l2]
        metrics = {"valid/ndcg@10": valid, "test/ndcg@10": test, "train_seconds": 1.0}
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            f.write(cfg.to_json())
        with open(os.path.join(out_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f)
        return metrics

    monkeypatch.setattr(tune, "run_experiment", fake)
    return calls


def test_selection_uses_validation_only_and_first_on_ties(monkeypatch, tmp_path):
    # Test prefers l2=0 (0.9) and l2=3e-2 (0.5); validation ties l2=1e-2 and 3e-2 at 0.3.
    _fake_runs(monkeypatch, {0.0: (0.1, 0.9), 1e-2: (0.3, 0.2), 3e-2: (0.3, 0.5)})
    cfg = _tiny(grid=("train.l2=0,1e-2,3e-2",))
    out = str(tmp_path / "tune")
    metrics = run_tune(cfg, out, progress=False)
    assert metrics == {"valid/ndcg@10": 0.3, "test/ndcg@10": 0.2}
    assert cfg.headline(metrics) == metrics
    assert _read_json(os.path.join(out, "best.json")) == ["train.l2=1e-2"]
    assert _read_json(os.path.join(out, "metrics.json")) == metrics
    results = _read_json(os.path.join(out, "results.json"))
    assert results["complete"] and results["base"] == "bpr-mf"
    assert results["select"] == "valid/ndcg@10" and results["test_metric"] == "test/ndcg@10"
    assert results["selected"]["index"] == 1 and results["selected"]["score"] == 0.3
    assert [p["overrides"] for p in results["points"]] == [
        ["train.l2=0"],
        ["train.l2=1e-2"],
        ["train.l2=3e-2"],
    ]
    assert results["points"][0]["test"] == {"test/ndcg@10": 0.9}
    with open(os.path.join(out, "results.md")) as f:
        md = f.read()
    assert "validation metric only" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "rank" not in line]
    assert [r.split(" | ")[1] for r in rows] == ["1", "2", "0"]  # sorted by valid, stable
    assert rows[0].endswith("**selected** |") and "selected" not in rows[1]


def test_select_best_ranks_nan_last():
    rows = [{"valid": {"v": float("nan")}}, {"valid": {"v": 0.0}}, {"valid": {"v": 0.0}}]
    assert select_best(rows, "v") == 1


@pytest.mark.parametrize("select", ["test/ndcg@20", "ndcg@20", "valid/"])
def test_select_must_be_a_validation_metric(select):
    with pytest.raises(ValueError, match="selection never looks at test"):
        _tiny(select=select)
    with pytest.raises(ValueError, match="valid/<metric>"):
        apply_overrides(get_config("tune-bpr-mf", tiny=True), [f"select={select}"])


@pytest.mark.parametrize(
    "grid,match",
    [
        (("train.l22=0,1",), "unknown key 'train.l22'"),
        (("train.l2=0,abc",), r"train.l2='abc'.*expected float"),
        (("train.l2=0", "train.epochs=2,0"), r"point 1 \['train.l2=0', 'train.epochs=0'\]"),
        (("train.l2=0,0",), "repeated values"),
        (("train.l2",), "not 'dotted.key=value'"),
    ],
)
def test_bad_grid_fails_before_training(monkeypatch, tmp_path, grid, match):
    calls = _fake_runs(monkeypatch, {})
    out = tmp_path / "tune"
    with pytest.raises(ValueError, match=match):
        run_tune(_tiny(grid=grid), str(out), progress=False)
    assert calls == [] and not out.exists()


def test_select_cutoff_must_be_evaluated():
    with pytest.raises(ValueError, match=r"select='valid/ndcg@20' is not computed"):
        _tiny(select="valid/ndcg@20").validate()


def test_grid_and_overrides_from_set_are_regrouped():
    cfg = apply_overrides(
        get_config("tune-bpr-mf", tiny=True),
        ["grid=train.l2=0,0.1,train.learning_rate=1e-3,3e-3", "overrides=eval.ks=5,10,20"],
    )
    assert cfg.grid == ("train.l2=0,0.1", "train.learning_rate=1e-3,3e-3")
    assert cfg.overrides == ("eval.ks=5,10,20",)
    got = [(p.config.train.l2, p.config.train.learning_rate) for p in points(cfg)]
    assert got == [(0.0, 1e-3), (0.0, 3e-3), (0.1, 1e-3), (0.1, 3e-3)]


def test_tune_experiments_are_studies_over_their_base():
    bpr = get_config("tune-bpr-mf")
    assert is_study(bpr) and bpr.base == "bpr-mf" and bpr.overrides == ("train.epochs=200",)
    assert bpr.data_path.endswith(os.path.join("shared", "data", "ml-100k-split"))
    apr = get_config("tune-apr-mf", tiny=True)
    assert [(p.config.adv.eps, p.config.adv.weight) for p in points(apr)] == [
        (0.1, 1.0),
        (1.0, 1.0),
    ]


def test_resume_loads_finished_points_and_continues_interrupted_ones(monkeypatch, tmp_path, capsys):
    calls = []
    real = tune.run_experiment

    def counting(cfg, out_dir, *, resume=False, progress=True):
        calls.append((os.path.basename(out_dir), resume))
        return real(cfg, out_dir, resume=resume, progress=progress)

    monkeypatch.setattr(tune, "run_experiment", counting)
    out = str(tmp_path / "tune")
    args = ["study", "tune-bpr-mf", "--tiny", "--out", out, "--no-progress"]
    assert main(args) == 0
    first = _read_json(os.path.join(out, "metrics.json"))
    assert len(calls) == 2
    capsys.readouterr()
    assert main(args) == 2  # a rerun without --resume is refused, never retrains silently
    assert "already holds trained grid points; pass --resume" in capsys.readouterr().err
    assert len(calls) == 2
    calls.clear()
    assert main([*args, "--resume"]) == 0
    assert calls == []  # both points loaded
    folders = sorted(os.listdir(os.path.join(out, "points")))
    os.remove(os.path.join(out, "points", folders[1], "metrics.json"))
    assert main([*args, "--resume"]) == 0
    assert calls == [(folders[1], True)]  # continued from its checkpoint
    assert _read_json(os.path.join(out, "metrics.json")) == pytest.approx(first)
    assert main([*args, "--resume", "--set", "overrides=train.epochs=3"]) == 2
    assert "holds a run of a different config" in capsys.readouterr().err
    assert calls == [(folders[1], True)]


@pytest.mark.parametrize("name", ["tune-bpr-mf", "tune-apr-mf"])
def test_cli_study_tiny(tmp_path, capsys, name):
    out = str(tmp_path / "tune")
    assert main(["study", name, "--tiny", "--out", out, "--no-progress"]) == 0
    headline = json.loads(capsys.readouterr().out.splitlines()[0])
    assert set(headline) == {"valid/ndcg@10", "test/ndcg@10"}
    for f in ("config.json", "results.json", "results.md", "best.json", "metrics.json"):
        assert os.path.isfile(os.path.join(out, f)), f
    assert len(os.listdir(os.path.join(out, "points"))) == 2


def test_run_study_dispatches_to_run_tune(monkeypatch, tmp_path):
    _fake_runs(monkeypatch, {0.0: (0.2, 0.1), 1e-2: (0.1, 0.3)})
    metrics = run_study(_tiny(), str(tmp_path / "tune"), progress=False)
    assert metrics == {"valid/ndcg@10": 0.2, "test/ndcg@10": 0.1}
