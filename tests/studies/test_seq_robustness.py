"""The sequential robustness study: label-free attacks, intervals over seeds, paired diffs."""

import json
import os

import numpy as np
import pytest

from robustjax.experiments import get_config
from robustjax.report.intervals import mean_ci
from robustjax.studies import run_study
from robustjax.studies.seq_robustness import markdown, summarise


def _fake_run(hr, sub, pgd, seconds=1.0):
    return {
        "metrics": {"test/sampled_hr@10": hr, "test/sampled_ndcg@10": hr / 2, "test/hr@10": hr / 4,
                    "train_seconds": seconds},
        "attacks": {"norms": {"seq": {"mean": 1.0, "median": 1.0}}, "attacks": {
            "substitution": {"levels": [0.0, 1.0], "sampled_hr": [hr, sub]},
            "pgd": {"levels": [0.0, 0.5], "sampled_hr": [hr, pgd]}}},
    }  # fmt: skip


def test_summary_pairs_methods_on_the_same_seed():
    cfg = get_config("seq-robustness", tiny=True)
    runs = {
        ("sasrec", 0): _fake_run(0.50, 0.30, 0.40),
        ("sasrec", 1): _fake_run(0.60, 0.35, 0.50),
        ("sasrec-apr", 0): _fake_run(0.52, 0.40, 0.45),
        ("sasrec-apr", 1): _fake_run(0.61, 0.45, 0.55),
    }
    study = summarise(cfg, runs, [0, 1])
    sub = study["paired"]["sasrec-apr"]["substitution@1/sampled_hr@10"]
    np.testing.assert_allclose(sub["values"], [0.10, 0.10])
    np.testing.assert_allclose(
        study["methods"]["sasrec"]["auc/pgd_relative"]["values"], [0.45, 0.55]
    )  # fmt: skip  (trapezoid mean height)
    assert study["methods"]["sasrec"]["curves"]["pgd"]["mean"] == pytest.approx([0.55, 0.45])
    md = markdown(study)
    assert "| sasrec-apr | 2 |" in md and "not a ranking" in md


@pytest.mark.slow
def test_tiny_study_reports_intervals_and_paired_differences(tmp_path):
    out = str(tmp_path / "seq")
    run_study(get_config("seq-robustness", tiny=True), out, progress=False)
    with open(os.path.join(out, "study.json")) as f:
        study = json.load(f)
    assert study["n"] == 2 and study["attack"]["objective"].startswith("prediction")
    sas, adv = study["methods"]["sasrec"], study["methods"]["sasrec-apr"]
    for fig in ("clean/sampled_hr@10", "substitution@1/sampled_hr@10", "auc/pgd_relative"):
        assert sas[fig] == mean_ci(sas[fig]["values"])
        d = study["paired"]["sasrec-apr"][fig]["values"]
        np.testing.assert_allclose(d, np.subtract(adv[fig]["values"], sas[fig]["values"]))
    # level 0 of each attack curve is the clean sampled HR of the runs
    np.testing.assert_allclose(
        sas["curves"]["substitution"]["mean"][0], sas["clean/sampled_hr@10"]["mean"], atol=1e-6
    )
    with open(os.path.join(out, "study.md")) as f:
        assert "label-free" in f.read()
    with pytest.raises(ValueError, match="--resume"):
        run_study(get_config("seq-robustness", tiny=True), out, progress=False)
