"""The IRGAN study over seeds: intervals, paired differences against BPR-MF, read-back."""

import json
import os

import numpy as np
import pytest

from robustjax.cli.main import main
from robustjax.experiments import get_config
from robustjax.report.intervals import mean_ci
from robustjax.studies import irgan


def _seed_run(offset: float) -> dict:
    """Per-seed rows and history of ``_run_seed``'s shape, figures shifted by ``offset``."""
    row = lambda v: {m: v + i / 100 + offset for i, m in enumerate(("recall", "ndcg", "precision"))}
    rows = {
        name: {"test": row(v), "valid": row(v / 2), "selected_epoch": 3, "epochs": 4}
        for name, v in (("bpr-mf", 0.30), ("irgan-g", 0.31), ("irgan-d", 0.28), ("irgan-init", 0.3))
    }
    rows["bpr-mf"]["seconds"] = 1.0 + offset
    history = [{"epoch": e, "valid/g/ndcg@10": 0.1 * e + offset, "valid/d/ndcg@10": offset}
               for e in range(3)]  # fmt: skip
    return {"rows": rows, "history": history, "irgan_seconds": {"pretrain": 1.0, "gan": 2.0}}


def test_summary_intervals_and_paired_differences_are_per_seed():
    cfg = get_config("irgan", tiny=True)
    seeds = [7, 8, 9]
    per_seed = {s: _seed_run(o) for s, o in zip(seeds, (0.0, 0.02, -0.01))}
    res = irgan.summarise(cfg, per_seed, seeds, 10, "ndcg@10")
    assert res["n"] == 3 and res["seeds"] == seeds and res["baseline"] == "bpr-mf"
    g = res["rows"]["irgan-g"]["test"]["ndcg"]
    assert g == mean_ci([0.32, 0.34, 0.31])
    assert res["rows"]["bpr-mf"]["seconds"]["values"] == [1.0, 1.02, 0.99]
    assert res["rows"]["irgan-g"]["selected_epoch"]["mean"] == 3
    diff = res["paired"]["irgan-d"]["test"]["recall"]
    np.testing.assert_allclose(diff["values"], [-0.02] * 3, atol=1e-12)
    assert set(res["paired"]) == {"irgan-g", "irgan-d", "irgan-init"}
    assert set(res["paired_start"]) == {"irgan-g", "irgan-d"}
    assert res["curves"]["g"]["eps"] == [0, 1, 2] and res["curves"]["g"]["n"] == 3
    np.testing.assert_allclose(res["curves"]["g"]["mean"], [1 / 300, 0.1 + 1 / 300, 0.2 + 1 / 300])
    md = irgan.markdown(res)
    assert "| model | n |" in md and "not a ranking" in md and "n = 3 training seeds" in md
    # without BPR-MF the IRGAN start is the baseline
    for run in per_seed.values():
        del run["rows"]["bpr-mf"]
    assert irgan.summarise(cfg, per_seed, seeds, 10, "ndcg@10")["baseline"] == "irgan-init"


def test_tiny_config_uses_two_seeds():
    assert get_config("irgan", tiny=True).seeds == 2 and get_config("irgan").seeds == 5
    with pytest.raises(ValueError, match="seeds"):
        irgan.IrganConfig(seeds=0)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("irgan") / "study")
    args = ["study", "irgan", "--tiny", "--seeds", "2", "--out", out, "--no-progress"]
    assert main(args + ["--set", "baselines=bpr-mf"]) == 0  # APR: tests/test_cli.py
    return out


def _load(path):
    with open(path) as f:
        return json.load(f)


@pytest.mark.slow
def test_cli_study_reports_intervals_over_seeds(study):
    res = _load(os.path.join(study, "results.json"))
    assert res["n"] == 2 and res["seeds"] == [2024, 2025]
    assert set(res["rows"]) == {"bpr-mf", "irgan-g", "irgan-d", "irgan-init"}
    for row in res["rows"].values():
        for part in ("test", "valid"):
            for entry in row[part].values():
                assert entry == mean_ci(entry["values"]) and entry["n"] == 2
    for name, paired in res["paired"].items():
        for part in ("test", "valid"):
            for m, entry in paired[part].items():
                a = res["rows"][name][part][m]["values"]
                b = res["rows"]["bpr-mf"][part][m]["values"]
                np.testing.assert_allclose(entry["values"], np.subtract(a, b))
    # the per-seed numbers are those of the seed folders
    for i, s in enumerate(res["seeds"]):
        bpr = _load(os.path.join(study, f"seed{s}", "bpr-mf", "metrics.json"))
        assert res["rows"]["bpr-mf"]["test"]["ndcg"]["values"][i] == bpr["test/ndcg@10"]
    metrics = _load(os.path.join(study, "metrics.json"))
    assert metrics["test/irgan-g/ndcg@10"] == res["rows"]["irgan-g"]["test"]["ndcg"]["mean"]
    with open(os.path.join(study, "results.md")) as f:
        md = f.read()
    assert (
        "n = 2 training seeds" in md and "not a ranking" in md and "| IRGAN generator | 2 |" in md
    )


def test_cli_study_reads_finished_runs_back(study):
    params = os.path.join(study, "seed2025", "irgan", "checkpoint", "g_params.npz")
    before = os.path.getmtime(params), _load(os.path.join(study, "results.json"))["rows"]
    args = ["study", "irgan", "--tiny", "--seeds", "2", "--out", study, "--no-progress"]
    assert main(args + ["--set", "baselines=bpr-mf"]) == 0
    after = os.path.getmtime(params), _load(os.path.join(study, "results.json"))["rows"]
    assert after == before
