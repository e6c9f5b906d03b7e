"""Training reliability: non-finite config values, divergence, checkpoints, resume and
output folders. CLI cases assert the exit code (2 for a user error, never a traceback),
the message and that no result file was written."""

import os

import pytest

from robustjax.cli.main import main
from robustjax.config import ExperimentConfig, TrainConfig, apply_overrides

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
