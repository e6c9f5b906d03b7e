import dataclasses
import json
import os

import pytest

from robustjax.cli.main import main
from robustjax.experiments import get_config
from robustjax.report.intervals import excludes_zero, fmt_ci, mean_ci, paired_diff


@pytest.mark.slow  # runs with -m slow (long compile on 2 cores)
def test_tiny_study_writes_intervals_tables_and_profiles(tmp_path, capsys):
    out = str(tmp_path / "poison")
    args = ["study", "poisoning", "--tiny", "--seeds", "2", "--out", out, "--no-progress"]
    assert main(args) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    cfg = results["config"]
    assert cfg["seeds"] == 2 and results["seeds"] == [cfg["seed"], cfg["seed"] + 1]
    assert results["attack_draws"] == 2
    assert len(results["rows"]) == len(cfg["attacks"]) * len(cfg["victims"]) * len(cfg["defences"])
    for row in results["rows"]:
        assert row["n"] == 2
        for key in ("target_hr@5", "target_ndcg@5", "test_ndcg@20", "test_recall@20"):
            before, after = row[f"{key}/before"], row[f"{key}/after"]
            assert before == mean_ci(before["values"]) and after == mean_ci(after["values"])
            assert 0.0 <= after["mean"] <= 1.0 and after["n"] == 2
            assert row["paired"]["vs_clean"][key] == paired_diff(after["values"], before["values"])
    down = next(r for r in results["rows"] if r["defence"] == "downweight")
    none = next(
        r for r in results["rows"] if r["defence"] == "none" and r["attack"] == down["attack"]
    )
    assert down["paired"]["vs_no_defence"]["target_hr@5/after"] == paired_diff(
        down["target_hr@5/after"]["values"], none["target_hr@5/after"]["values"]
    )
    assert down["detector_recall"]["n"] == 2 and "vs_no_defence" not in none["paired"]
    # every training seed draws its own fake profiles
    for seed in results["seeds"]:
        names = set(os.listdir(os.path.join(out, "profiles", f"seed{seed}")))
        assert {"random.npz", "random.json", "unrolled.npz", "detector_train_random.npz"} <= names
    with open(os.path.join(out, "results.md")) as f:
        table = f.read()
    assert "| n |" in table and "not a ranking" in table
    assert fmt_ci(results["rows"][0]["target_hr@5/after"]) in table
    with open(os.path.join(out, "metrics.json")) as f:
        flat = json.load(f)
    assert flat[f"test/target_hr@5/{none['attack']}/mf/none"] == none["target_hr@5/after"]["mean"]
    assert os.path.exists(os.path.join(out, "results.png"))
    assert "test/target_hr@5" in capsys.readouterr().out


def _fake_measured(seeds, defences=("none", "detect")):
    """Deterministic per-seed figures: clean < poisoned, detect lowers the promotion."""
    measured, detection = {}, {}
    for j, seed in enumerate(seeds):
        for scenario, lift in (("clean", 0.0), ("average", 0.02), ("unrolled", 0.03)):
            for defence in defences:
                cut = 0.5 if defence == "detect" else 1.0
                hr = 0.25 + 0.01 * j * j + cut * lift * (1 + 0.3 * j)
                measured[("mf", scenario, defence, seed)] = {
                    "target_hr@50": hr,
                    "target_ndcg@50": hr / 3,
                    "target_users": 198,
                    "test_ndcg@20": 0.32 - 0.001 * j - (0.003 if defence == "detect" else 0),
                    "test_recall@20": 0.36 + 0.002 * j,
                }
            prof = scenario != "clean"
            detection[(scenario, seed)] = {
                "precision": 0.2 + 0.1 * j if prof else 0.0,
                "recall": 0.3 if prof else 0.0,
                "auc": 0.6 + 0.05 * j if prof else float("nan"),
                "flagged": 3 + j,
            }
    return measured, detection


def test_rows_are_intervals_over_seeds_and_paired_by_seed():
    from robustjax.studies.poisoning import _row

    seeds = [2024, 2025, 2026, 2027, 2028]
    cfg = get_config("poisoning", defences=("none", "detect"))
    measured, detection = _fake_measured(seeds)
    row = _row(measured, detection, cfg, "mf", "unrolled", "detect", seeds)
    hr = "target_hr@50"

    def vals(scenario, defence, key=hr):
        return [measured[("mf", scenario, defence, s)][key] for s in seeds]

    assert row["n"] == 5 and row["seeds"] == seeds
    assert row[f"{hr}/before"] == mean_ci(vals("clean", "detect"))
    assert row[f"{hr}/after"] == mean_ci(vals("unrolled", "detect"))
    lo, hi = row[f"{hr}/after"]["ci95"]
    assert lo < row[f"{hr}/after"]["mean"] < hi
    # paired entries are the per-seed differences
    gain = row["paired"]["vs_clean"][hr]
    expected = [a - b for a, b in zip(vals("unrolled", "detect"), vals("clean", "detect"))]
    assert gain["values"] == pytest.approx(expected) and gain == mean_ci(gain["values"])
    vs_none = row["paired"]["vs_no_defence"]
    assert vs_none[f"{hr}/after"]["values"] == pytest.approx(
        [a - b for a, b in zip(vals("unrolled", "detect"), vals("unrolled", "none"))]
    )
    gain_none = [a - b for a, b in zip(vals("unrolled", "none"), vals("clean", "none"))]
    assert vs_none[f"{hr}/gain"]["values"] == pytest.approx(
        [a - b for a, b in zip(expected, gain_none)]
    )
    assert excludes_zero(vs_none[f"{hr}/gain"]) and vs_none[f"{hr}/gain"]["mean"] < 0
    cost = vs_none["test_ndcg@20/before"]
    assert cost["values"] == pytest.approx([-0.003] * 5)
    assert row["detector_precision"] == mean_ci(
        [detection[("unrolled", s)]["precision"] for s in seeds]
    )
    assert row["detector_clean_flagged"] == mean_ci([3, 4, 5, 6, 7])
    plain = _row(measured, detection, cfg, "mf", "unrolled", "none", seeds)
    assert "vs_no_defence" not in plain["paired"] and "detector_auc" not in plain
    # an undefined figure (AUC without fake users) is missing, not averaged
    from robustjax.studies.poisoning import _interval

    assert _interval([0.5, float("nan")])["mean"] is None


def test_markdown_states_n_and_marks_paired_intervals():
    from robustjax.studies.poisoning import _row, markdown_table, optimisation_lead

    seeds = [2024, 2025, 2026]
    cfg = get_config("poisoning", defences=("none", "detect"), attacks=("average", "unrolled"))
    measured, detection = _fake_measured(seeds)
    rows = [
        _row(measured, detection, cfg, "mf", a, d, seeds) for a in cfg.attacks for d in cfg.defences
    ]
    results = {
        "config": dataclasses.asdict(cfg),
        "data": {"name": "fake"},
        "num_fake": 9,
        "seeds": seeds,
        "attack_draws": 3,
        "targets": [1, 2, 3, 4, 5],
        "target_users": 198,
        "rows": rows,
        "lead": optimisation_lead(rows, 50),
    }
    table = markdown_table(results, 50)
    assert "n = 3 training seeds" in table and "3 draws of every attack" in table
    assert "not a ranking" in table and "| n |" in table
    assert "| unrolled | mf | detect | 3 | " in table
    assert fmt_ci(rows[0]["target_hr@50/after"]) in table
    assert " *" in table  # the paired gains here exclude 0
    assert "2 of 3 seeds ahead" in table or "3 of 3 seeds ahead" in table


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
            "target_hr@50/after": mean_ci(after),
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
    assert x["best_heuristic"] == "average" and x["ahead"] == 2 and x["n"] == 3
    assert x["diff"]["values"] == pytest.approx([0.02, -0.01, 0.03])
    assert x["diff"] == paired_diff([0.22, 0.24, 0.33], [0.20, 0.25, 0.30])
    assert optimisation_lead(rows[:2], 50) == []  # no unrolled attack
