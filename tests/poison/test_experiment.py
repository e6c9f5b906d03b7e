import json
import os

import pytest

from robustjax.cli.main import main
from robustjax.experiments import get_config


@pytest.mark.slow  # runs with -m slow (long compile on 2 cores)
def test_tiny_experiment_writes_table_json_and_profiles(tmp_path, capsys):
    out = str(tmp_path / "poison")
    assert (
        main(["train", "--experiment", "poisoning", "--tiny", "--out", out, "--no-progress"]) == 0
    )
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    cfg = results["config"]
    assert len(results["rows"]) == len(cfg["attacks"]) * len(cfg["victims"]) * len(cfg["defences"])
    row = results["rows"][0]
    for key in (
        "target_hr@5/before",
        "target_hr@5/after",
        "test_ndcg@20/after",
        "test_recall@20/before",
    ):
        assert 0.0 <= row[key] <= 1.0
    # means over the victim seeds; the gain is paired by seed
    per_seed = row["target_hr@5/per_seed"]
    assert len(per_seed["before"]) == len(row["seeds"]) == cfg["victim_seeds"] == 2
    diffs = [a - b for a, b in zip(per_seed["after"], per_seed["before"])]
    assert row["target_hr@5/gain"] == pytest.approx(sum(diffs) / 2)
    assert row["target_hr@5/after"] == pytest.approx(sum(per_seed["after"]) / 2)
    with open(os.path.join(out, "results.md")) as f:
        table = f.read()
    assert table.count("\n| ") == len(results["rows"]) + 1
    names = set(os.listdir(os.path.join(out, "profiles")))
    assert {"random.npz", "random.json", "unrolled.npz", "detector_train_random.npz"} <= names
    assert os.path.exists(os.path.join(out, "results.png"))
    assert "test/target_hr@5" in capsys.readouterr().out


def test_config_overrides_and_validation():
    from robustjax.config import apply_overrides

    cfg = apply_overrides(
        get_config("poisoning"),
        ["attacks=random,bandwagon", "fake_fraction=0.02", "filler_size=12"],
    )
    assert cfg.attacks == ("random", "bandwagon") and cfg.filler_size == 12
    with pytest.raises(ValueError, match="attacks"):
        apply_overrides(cfg, ["attacks=random,shill"])
    with pytest.raises(ValueError, match="unknown key"):
        apply_overrides(cfg, ["filler=3"])


def test_optimisation_lead_is_paired_by_seed():
    from robustjax.studies.poisoning import optimisation_lead

    def row(attack, after, defence="none"):
        return {
            "attack": attack,
            "victim": "mf",
            "defence": defence,
            "target_hr@50/after": sum(after) / len(after),
            "target_hr@50/per_seed": {"before": [0.1] * len(after), "after": after},
        }

    rows = [
        row("random", [0.10, 0.12, 0.11]),
        row("average", [0.20, 0.25, 0.30]),
        row("unrolled", [0.22, 0.24, 0.33]),
        row("average", [0.2, 0.2, 0.2], "apr"),
    ]
    lead = optimisation_lead(rows, 50)
    assert len(lead) == 1  # apr has no unrolled row: skipped
    x = lead[0]
    assert x["best_heuristic"] == "average" and x["ahead"] == 2 and x["seeds"] == 3
    assert x["mean"] == pytest.approx((0.02 - 0.01 + 0.03) / 3)
    diffs = [0.02, -0.01, 0.03]
    mean = sum(diffs) / 3
    sd = (sum((d - mean) ** 2 for d in diffs) / 2) ** 0.5
    assert x["se"] == pytest.approx(sd / 3**0.5)
    assert optimisation_lead(rows[:2], 50) == []  # no unrolled attack
