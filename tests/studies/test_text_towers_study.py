"""The text-tower study: configs, and a tiny end-to-end run on ml-100k (-m slow)."""

import json
import os

import pytest

from robustjax.cli.main import main
from robustjax.experiments import get_config

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "ml-100k")


def test_needs_item_texts_and_a_baseline():
    with pytest.raises(ValueError, match="needs item texts"):
        get_config("text-towers", tiny=True).validate()
    with pytest.raises(ValueError, match="baseline 'text-mf'"):
        get_config("text-towers", tiny=True, methods=("mf",))
    with pytest.raises(ValueError, match="ascend strictly from 0"):
        get_config("text-towers", tiny=True, budgets=(1, 2))


@pytest.mark.slow
def test_tiny_study_compares_cold_items_and_attacks_text_models_only(tmp_path):
    if not os.path.isdir(DATA):
        pytest.skip("../shared/data/ml-100k is not here")
    out = str(tmp_path / "study")
    args = ["study", "text-towers", "--tiny", "--data", DATA, "--out", out, "--no-progress"]
    assert main(args) == 0
    with open(os.path.join(out, "study.json")) as f:
        study = json.load(f)
    mf, text = study["methods"]["mf"], study["methods"]["text-mf"]
    assert "gradient@1/target_hr@10" in text and "gradient@1/target_hr@10" not in mf
    # the text tower ranks never-trained items from their text; the ID model cannot
    assert text["cold/ndcg@10"]["mean"] > mf["cold/ndcg@10"]["mean"]
    assert text["gradient@0/target_hr@10"]["mean"] == text["random@0/target_hr@10"]["mean"]
    with open(os.path.join(out, "study.md")) as f:
        md = f.read()
    assert "Example rewrites" in md and "| cold/ndcg@10 |" in md
