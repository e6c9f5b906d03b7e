"""Training reliability: non-finite config values, divergence, checkpoints, resume and
output folders. CLI cases assert the exit code (2 for a user error, never a traceback),
the message and that no result file was written."""

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.cli.main import main
from robustjax.config import ExperimentConfig, TrainConfig, apply_overrides
from robustjax.train.loop import Phase, Selector, TrainingDiverged, train_loop

_RESULTS = ("metrics.json", "recommendations.tsv")


def _no_results(out):
    for name in _RESULTS:
        assert not os.path.exists(os.path.join(out, name)), name


def _train(out, *sets, extra=()):
    args = ["train", "--tiny", "--no-progress", "--out", str(out), *extra]
    for s in sets:
        args += ["--set", s]
    return main(args)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_learning_rate_is_refused(tmp_path, capsys, value):
    out = tmp_path / "out"
    assert _train(out, f"train.learning_rate={value}") == 2
    err = capsys.readouterr().err
    assert "train.learning_rate" in err and "finite" in err and "Traceback" not in err
    _no_results(out)


@pytest.mark.parametrize("key", ["adv.eps", "train.l2", "train.time_budget_s"])
def test_non_finite_float_fields_are_refused(key):
    with pytest.raises(ValueError, match="finite"):
        apply_overrides(ExperimentConfig(), [f"{key}=inf"])


def test_non_finite_values_built_in_python_are_refused():
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=float("inf"))
    import dataclasses

    cfg = dataclasses.replace(ExperimentConfig(), train=TrainConfig(l2=float("nan")))
    with pytest.raises(ValueError, match=r"train\.l2"):
        cfg.validate()


# ----------------------------------------------------------------------------- divergence


def _history(out):
    with open(os.path.join(out, "history.jsonl")) as f:
        return [json.loads(line, parse_constant=_no_bare_constant) for line in f]


def _no_bare_constant(name):
    raise AssertionError(f"history.jsonl holds a bare {name}: not strict JSON")


def test_sgd_at_lr_1000_stops_naming_the_epoch(tmp_path, capsys):
    out = tmp_path / "out"
    sets = ["train.optimizer=sgd", "train.learning_rate=1000", "train.epochs=60"]
    assert _train(out, *sets, "train.eval_every=100", "train.checkpoint_every=100") == 2
    err = capsys.readouterr().err
    assert re.search(r"diverged in epoch \d+", err), err
    assert "'bpr'" in err and "Traceback" not in err
    _no_results(out)
    assert not os.path.exists(out / "checkpoint" / "params.npz")
    history = _history(out)
    assert history[-1]["loss"] in ("inf", "nan")  # strict JSON, float() reads it back
    assert any("warnings" in r for r in history)  # the growth was flagged before


class _Task:
    """A fake epoch task: ``w += step`` with a loss given per epoch, and a finite loss
    with non-finite parameters at ``nan_epoch``."""

    def __init__(self, losses, nan_epoch=None):
        self.losses, self.nan_epoch = losses, nan_epoch

    def plan(self, epoch):
        return epoch

    def __call__(self, state, plan, key):
        w = state["w"] + jax.random.normal(key, state["w"].shape)
        if plan == self.nan_epoch:
            w = w.at[0].set(jnp.nan)
        return {"w": w}, {"loss": jnp.float32(self.losses[plan]), "bpr": jnp.float32(1.0)}


def _loop(task, epochs, **kw):
    return train_loop(
        state={"w": jnp.zeros(3)},
        phases=[Phase(0, task)],
        epochs=epochs,
        seed=0,
        validate=lambda state: {"ndcg@20": float(jnp.sum(state["w"]))},
        eval_every=1,
        selectors={"model": Selector("ndcg@20", params_of=lambda state: state)},
        progress=False,
        **kw,
    )


def test_non_finite_parameter_stops_before_selection(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"epoch 2 .*parameter 'w'"):
        _loop(_Task([1.0] * 3, nan_epoch=1), 3, checkpoint_dir=str(tmp_path))
    best = np.load(tmp_path / "best_model.npz")
    assert np.isfinite(best["w"]).all()  # epoch 1's, never the NaN model


def test_growing_loss_is_a_warning_and_strict_error():
    losses = [1.0, 10.0, 2000.0, 3000.0]
    result = _loop(_Task(losses), 4)
    assert len(result.warnings) == 1 and "'loss'" in result.warnings[0]
    assert "warnings" in result.history[2] and "warnings" not in result.history[3]
    with pytest.raises(TrainingDiverged, match="epoch 3.*strict"):
        _loop(_Task(losses), 4, strict=True)


def test_growth_warning_reaches_metrics_json(tmp_path):
    out = tmp_path / "out"
    sets = ["train.optimizer=sgd", "train.learning_rate=100", "train.epochs=12"]
    assert _train(out, *sets, "train.eval_every=100") == 0
    with open(out / "metrics.json") as f:
        metrics = json.load(f)
    assert any("grew" in w for w in metrics["warnings"])
    assert _train(tmp_path / "s", *sets, "train.eval_every=100", "train.strict=true") == 2
    _no_results(tmp_path / "s")


# ------------------------------------------------------------------ checkpoints and resume


def _finished_run(tmp_path, *sets):
    out = tmp_path / "run"
    assert _train(out, "train.epochs=2", "train.checkpoint_every=1", *sets) == 0
    return out


def test_resume_with_a_changed_config_is_refused_listing_the_keys(tmp_path, capsys):
    out = _finished_run(tmp_path)
    capsys.readouterr()
    rc = _train(out, "train.epochs=2", "train.learning_rate=0.5", extra=["--resume"])
    err = capsys.readouterr().err
    assert rc == 2 and "train.learning_rate" in err and "--allow-config-change" in err
    assert (out / "metrics.json").exists()  # a refused resume leaves the run as it was
    rc = _train(
        out,
        "train.epochs=2",
        "train.learning_rate=0.5",
        extra=["--resume", "--allow-config-change"],
    )
    assert rc == 0
    with open(out / "config.json") as f:
        config = json.load(f)
    (change,) = config["resumed_with_changes"]
    assert change["changes"]["train.learning_rate"][1] == 0.5
    assert config["train"]["learning_rate"] == 0.5


def test_resume_cuts_history_back_to_the_checkpoint(tmp_path):
    out = _finished_run(tmp_path)
    with open(out / "history.jsonl", "a") as f:  # epochs logged after the last checkpoint
        f.write(json.dumps({"epoch": 3, "loss": 1.0}) + "\n" + '{"epoch": 4, "lo')
    assert _train(out, "train.epochs=3", "train.checkpoint_every=1", extra=["--resume"]) == 0
    assert [r["epoch"] for r in _history(out)] == [1, 2, 3]


@pytest.mark.parametrize(
    "name, damage",
    [
        ("state.npz", lambda b: b[: len(b) // 2]),  # truncated: BadZipFile
        ("state.npz", lambda b: b"\x93NUMPY garbage" * 10),  # numpy's allow_pickle advice
        ("state.json", lambda b: b[: len(b) // 2]),  # the old format's sidecar
    ],
)
def test_damaged_checkpoint_is_a_clear_error(tmp_path, capsys, name, damage):
    out = _finished_run(tmp_path)
    path = out / "checkpoint" / name
    if name == "state.json":  # an older run: arrays by position, metadata in state.json
        with np.load(out / "checkpoint" / "state.npz") as z:
            arrays = [z[k] for k in z.files if k.startswith("state/")]
        np.savez(out / "checkpoint" / "state.npz", *arrays)
    path.write_bytes(damage(path.read_bytes()))
    capsys.readouterr()
    assert _train(out, "train.epochs=3", extra=["--resume"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "without --resume" in err and "Traceback" not in err
    assert "allow_pickle" not in err
    assert (out / "metrics.json").exists()  # a refused resume leaves the run as it was


# -------------------------------------------------------------------------- output folders


def test_second_run_into_a_run_folder_needs_overwrite(tmp_path, capsys):
    out = _finished_run(tmp_path)
    capsys.readouterr()
    assert _train(out) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "metrics.json" in err
    assert (out / "metrics.json").exists()  # untouched
    assert _train(out, extra=["--overwrite"]) == 0


def test_failed_run_leaves_no_results_of_the_previous_run(tmp_path):
    out = _finished_run(tmp_path)
    sets = ["train.optimizer=sgd", "train.learning_rate=1000", "train.epochs=60"]
    assert _train(out, *sets, "train.eval_every=100", extra=["--overwrite"]) == 2
    _no_results(out)
    assert not (out / "checkpoint" / "params.npz").exists()


# ---------------------------------------------------------------------------------- timings


def test_timings_after_resume_cover_the_whole_run(tmp_path):
    out = _finished_run(tmp_path)
    first = [r["seconds"] for r in _history(out)]
    assert _train(out, "train.epochs=4", "train.checkpoint_every=1", extra=["--resume"]) == 0
    with open(out / "metrics.json") as f:
        m = json.load(f)
    assert "compile_seconds" not in m
    seconds = [r["seconds"] for r in _history(out)]
    assert seconds[:2] == first
    assert m["train_seconds"] == pytest.approx(sum(seconds))
    assert m["process_train_seconds"] == pytest.approx(sum(seconds[2:]))
    assert m["first_epoch_seconds"] == pytest.approx(seconds[2])  # epoch 3 compiled again
    assert m["resumed_at_epoch"] == 2 and m["process_epochs"] == 2
