"""The APR study: intervals over seeds, paired differences, its files, and resume."""

import json
import os

import numpy as np
import pytest

from robustjax.experiments import get_config
from robustjax.report.intervals import mean_ci, paired_diff, t_quantile_975
from robustjax.studies import apr as apr_study
from robustjax.studies import run_study


def test_mean_ci_is_the_student_t_interval():
    v = [0.30, 0.32, 0.31, 0.35, 0.29]
    e = mean_ci(v)
    s = np.sqrt(np.sum((np.array(v) - 0.314) ** 2) / 4)  # hand-derived: mean 0.314
    half = 2.7764 * s / np.sqrt(5)  # t_{0.975, 4}
    np.testing.assert_allclose(e["mean"], 0.314)
    np.testing.assert_allclose(e["ci95"], [0.314 - half, 0.314 + half], rtol=1e-4)
    assert e["n"] == 5 and e["values"] == v
    assert mean_ci([0.5])["ci95"] == [None, None]
    with pytest.raises(ValueError, match="non-finite"):
        mean_ci([0.1, float("nan")])
    # the large-df expansion meets the normal quantile and the table's end smoothly
    assert abs(t_quantile_975(31) - 2.0395) < 1e-3 and abs(t_quantile_975(10**6) - 1.96) < 1e-3


def test_paired_interval_removes_the_shared_seed_variance():
    base = np.array([0.20, 0.30, 0.25, 0.35, 0.28])
    method = base + np.array([0.010, 0.012, 0.011, 0.009, 0.010])
    unpaired = mean_ci(method)["ci95"][0] - mean_ci(base)["ci95"][1]
    d = paired_diff(method, base)
    np.testing.assert_allclose(d["mean"], 0.0104)
    assert d["ci95"][0] > 0 > unpaired  # paired: significant; intervals alone overlap
    with pytest.raises(ValueError, match="shared seed"):
        paired_diff([1.0, 2.0], [1.0])


def _tiny(**kw):
    cfg = get_config("apr", tiny=True)
    small = {"methods": ("bpr-tuned", "apr"), "epochs": 2, "warm_epochs": 1, "attack_steps": 1}
    return cfg.__class__(**{**cfg.__dict__, **small, "relative_eps": (0.0, 0.5),
                            "absolute_eps": (0.0, 0.5), **kw})  # fmt: skip


@pytest.mark.slow
def test_study_writes_intervals_and_resumes_where_it_stopped(tmp_path, monkeypatch):
    cfg, out = _tiny(), str(tmp_path / "study")
    real_attack, calls = apr_study._attack, {"attack": 0, "train": 0}

    def crashing_attack(*a, **kw):
        calls["attack"] += 1
        if calls["attack"] == 3:
            raise KeyboardInterrupt  # killed during the third unit's attack
        return real_attack(*a, **kw)

    monkeypatch.setattr(apr_study, "_attack", crashing_attack)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, out, progress=False)
    with pytest.raises(ValueError, match="--resume"):
        run_study(cfg, out, progress=False)  # no silent restart over an earlier study
    monkeypatch.setattr(apr_study, "_attack", real_attack)
    import robustjax.run as run_module

    real_run = run_module.run_experiment

    def counting_run(*a, **kw):
        calls["train"] += 1
        return real_run(*a, **kw)

    monkeypatch.setattr(run_module, "run_experiment", counting_run)
    flat = run_study(cfg, out, resume=True, progress=False)
    assert calls["train"] == 1  # three finished trainings are read back, one trained

    with open(os.path.join(out, "study.json")) as f:
        study = json.load(f)
    assert study["n"] == 2 and study["baseline"] == "bpr-tuned"
    apr = study["methods"]["apr"]
    for fig in ("clean/ndcg@10", "auc/relative", "auc/absolute"):
        e = apr[fig]
        assert len(e["values"]) == 2 and e["ci95"][0] <= e["mean"] <= e["ci95"][1]
    assert set(apr["norms"]) == {"user", "item"}
    d = study["paired"]["apr"]["auc/relative"]
    base = study["methods"]["bpr-tuned"]["auc/relative"]["values"]
    np.testing.assert_allclose(d["values"], np.subtract(apr["auc/relative"]["values"], base))
    # eps 0 of every curve is the clean test metric of the run
    clean = apr["clean/ndcg@10"]["mean"]
    np.testing.assert_allclose(apr["curves"]["relative"]["mean"][0], clean, rtol=1e-5)
    assert "methods/apr/clean/ndcg@10/mean" in flat
    with open(os.path.join(out, "study.md")) as f:
        md = f.read()
    assert "Paired differences against bpr-tuned" in md and "| apr | 2 |" in md
