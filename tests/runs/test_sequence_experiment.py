"""Sequence models run from the same ExperimentConfig and run folder as pair models."""

import json
import os

import numpy as np
import pytest

from robustjax.config import apply_overrides
from robustjax.experiments import get_config
from robustjax.run import run_experiment


@pytest.mark.slow
def test_sasrec_full_ranking_only(tmp_path):
    cfg = apply_overrides(
        get_config("sasrec-ml1m", tiny=True),
        ["eval.sampled_negatives=0", "train.early_metric=ndcg@10", "train.epochs=1"],
    )
    out = str(tmp_path / "run")
    m = run_experiment(cfg, out, progress=False)
    assert {"test/hr@10", "test/ndcg@10", "valid/ndcg@10"} <= set(m)
    assert not [k for k in m if "sampled" in k]
    for name in ("config.json", "data.json", "history.jsonl", "metrics.json"):
        assert os.path.exists(os.path.join(out, name)), name
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["eval"]["sampled_negatives"] == 0
    assert os.path.exists(os.path.join(out, "checkpoint", "params.npz"))


def test_pair_run_warm_starts_from_an_earlier_run(tmp_path):
    first = str(tmp_path / "bpr")
    run_experiment(get_config("bpr-mf", tiny=True), first, progress=False)
    cfg = apply_overrides(
        get_config("bpr-mf", tiny=True), [f"train.init_from={first}", "train.learning_rate=1e-9"]
    )
    second = str(tmp_path / "warm")
    run_experiment(cfg, second, progress=False)
    a = np.load(os.path.join(first, "checkpoint", "params.npz"))
    b = np.load(os.path.join(second, "checkpoint", "params.npz"))
    for name in set(a.files) - {"__meta__"}:  # lr 1e-9 barely moves the loaded parameters
        np.testing.assert_allclose(a[name], b[name], atol=1e-6)
    with pytest.raises(FileNotFoundError, match="init_from"):
        run_experiment(
            apply_overrides(get_config("bpr-mf", tiny=True), [f"train.init_from={tmp_path}/none"]),
            str(tmp_path / "bad"),
            progress=False,
        )
