"""Validation skips AUC on large catalogues (eval.valid_auc_max_items); test keeps it."""

import json

from robustjax.config import apply_overrides
from robustjax.experiments import get_config
from robustjax.run import run_experiment


def _run(tmp_path, name, *overrides):
    cfg = apply_overrides(get_config("bpr-mf", tiny=True), list(overrides))
    metrics = run_experiment(cfg, str(tmp_path / name), progress=False)
    history = [json.loads(x) for x in (tmp_path / name / "history.jsonl").read_text().splitlines()]
    return metrics, history


def test_validation_skips_auc_above_the_item_limit_and_test_keeps_it(tmp_path):
    metrics, history = _run(tmp_path, "big", "eval.valid_auc_max_items=10")  # 60 items > 10
    assert "test/auc" in metrics and "valid/auc" not in metrics
    assert not any("valid/auc" in json.dumps(r) for r in history)
    metrics, _ = _run(tmp_path, "small")  # 60 items <= 20000: as before
    assert "valid/auc" in metrics and "test/auc" in metrics
    # selecting on AUC keeps it in validation whatever the size
    metrics, _ = _run(tmp_path, "sel", "eval.valid_auc_max_items=10", "train.early_metric=auc")
    assert "valid/auc" in metrics
