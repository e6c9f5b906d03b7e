"""The poisoning study's report: the unrolled attack's lead, the tables and the plot.

Every figure is a ``mean_ci`` entry over the training seeds (each seed with its own victim
initialisation and its own attack draws); differences are paired by seed.
"""

import numpy as np

from robustjax.report.intervals import excludes_zero, fmt_ci, paired_diff

NOT_A_RANKING = (
    "Cells are means with 95% Student-t intervals over the n training seeds; each seed "
    "trains its own victims and draws its own fake profiles (n attack draws). Differences "
    "are paired by seed; a difference whose interval includes 0 is not a ranking "
    "(* marks intervals that exclude 0)."
)


def optimisation_lead(rows: list[dict], k: int) -> list[dict]:
    """Per victim and defence: the unrolled attack's target HR@K after poisoning minus that
    of the best heuristic (by mean), paired by seed (``paired_diff`` entry), and how many
    seeds it is ahead on. Empty without the unrolled attack or a heuristic."""
    key = f"target_hr@{k}/after"
    out = []
    for victim, defence in dict.fromkeys((r["victim"], r["defence"]) for r in rows):
        cell = {r["attack"]: r for r in rows if (r["victim"], r["defence"]) == (victim, defence)}
        heur = [a for a in cell if a != "unrolled"]
        if "unrolled" not in cell or not heur:
            continue
        best = max(heur, key=lambda a: cell[a][key]["mean"])
        diff = paired_diff(cell["unrolled"][key]["values"], cell[best][key]["values"])
        out.append(
            {
                "victim": victim,
                "defence": defence,
                "best_heuristic": best,
                "diff": diff,
                "ahead": int(np.sum(np.asarray(diff["values"]) > 0)),
                "n": diff["n"],
            }
        )
    return out


def _ci(entry: dict | None, digits: int = 4, signed: bool = False) -> str:
    if entry is None or entry["mean"] is None:
        return "–"
    return fmt_ci(entry, digits, signed=signed)


def _diff(entry: dict | None) -> str:
    if entry is None:
        return "–"
    return fmt_ci(entry, signed=True) + (" *" if excludes_zero(entry) else "")


def _title(results: dict) -> str:
    cfg = results["config"]
    return (
        f"### Poisoning {results['data']['name']}: {results['num_fake']} fake users "
        f"({cfg['fake_fraction']:.1%}), filler size {cfg['filler_size']}, "
        f"{len(results['targets'])} {cfg['target_band']} targets, "
        f"{results['target_users']} unexposed users, n = {len(results['seeds'])} training "
        f"seeds ({results['seeds'][0]}–{results['seeds'][-1]}), {results['attack_draws']} "
        "draws of every attack"
    )


def _attack_table(rows: list[dict], k: int) -> list[str]:
    """Attack x victim x defence: clean, poisoned, the paired gain and the detector."""
    hr, ndcg = f"target_hr@{k}", f"target_ndcg@{k}"
    head = (
        f"| attack | victim | defence | n | target HR@{k} clean | target HR@{k} poisoned | "
        f"Δ target HR@{k} (poisoned − clean) | Δ target NDCG@{k} | test NDCG@20 poisoned | "
        "Δ test NDCG@20 | Δ test Recall@20 | detector precision | detector recall | "
        "detector AUC |"
    )
    lines = [head, "|---" * 14 + "|"]
    for r in rows:
        pc = r["paired"]["vs_clean"]
        cells = [r["attack"], r["victim"], r["defence"], str(r["n"])]
        cells += [_ci(r[f"{hr}/before"]), _ci(r[f"{hr}/after"]), _diff(pc[hr]), _diff(pc[ndcg])]
        cells += [_ci(r["test_ndcg@20/after"]), _diff(pc["test_ndcg@20"])]
        cells += [_diff(pc["test_recall@20"])]
        cells += [_ci(r.get("detector_precision"), 2), _ci(r.get("detector_recall"), 2)]
        cells += [_ci(r.get("detector_auc"), 3)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _defence_table(rows: list[dict], k: int) -> list[str]:
    """Each defence minus no defence (the rows that have that comparison); empty without."""
    defended = [r for r in rows if "vs_no_defence" in r["paired"]]
    if not defended:
        return []
    hr = f"target_hr@{k}"
    lines = [
        "",
        (
            "Each defence minus no defence, paired by seed (same victim seeds and attack "
            "draws; Δ gain < 0: the defence reduces the promotion; clean cost: test NDCG@20 "
            "on the clean data):"
        ),
        "",
        (
            f"| attack | victim | defence | n | Δ target HR@{k} poisoned | Δ gain in target "
            f"HR@{k} | Δ test NDCG@20 clean | Δ test NDCG@20 poisoned |"
        ),
        "|---" * 8 + "|",
    ]
    for r in defended:
        pn = r["paired"]["vs_no_defence"]
        cells = [r["attack"], r["victim"], r["defence"], str(r["n"])]
        cells += [_diff(pn[f"{hr}/after"]), _diff(pn[f"{hr}/gain"])]
        cells += [_diff(pn["test_ndcg@20/before"]), _diff(pn["test_ndcg@20/after"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _lead_lines(lead: list[dict], k: int) -> list[str]:
    """The unrolled attack's lead over the best heuristic; empty without one."""
    if not lead:
        return []
    lines = [
        "",
        (
            f"Unrolled minus the best heuristic (by mean), target HR@{k} after poisoning, "
            "paired by seed (mean [95% CI]; seeds ahead):"
        ),
        "",
    ]
    for x in lead:
        lines.append(
            f"- {x['victim']}/{x['defence']}: {_diff(x['diff'])} vs "
            f"{x['best_heuristic']} ({x['ahead']} of {x['n']} seeds ahead, n = {x['n']})"
        )
    return lines


def markdown_table(results: dict, k: int) -> str:
    """Two tables: attack x victim x defence (clean, poisoned, paired gain) and each
    defence against no defence; then the unrolled attack's lead."""
    lines = [_title(results), "", NOT_A_RANKING, ""]
    lines += _attack_table(results["rows"], k)
    lines += _defence_table(results["rows"], k)
    lines += _lead_lines(results.get("lead") or [], k)
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str, k: int) -> str:
    """Grouped bars of the mean target HR@K after poisoning (attack groups, one bar per
    victim/defence) with 95% intervals as error bars and the clean mean as a marker.
    Needs matplotlib (object API)."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("poisoning plot needs matplotlib") from err
    rows = results["rows"]
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    series = list(dict.fromkeys((r["victim"], r["defence"]) for r in rows))
    fig = Figure(
        figsize=(max(6.0, 1.4 * len(attacks) * max(1, len(series)) / 3), 4.0), layout="constrained"
    )
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for j, (victim, defence) in enumerate(series):
        sel = {r["attack"]: r for r in rows if (r["victim"], r["defence"]) == (victim, defence)}
        xs = np.arange(len(attacks)) + (j - (len(series) - 1) / 2) * width
        after = [sel[a][f"target_hr@{k}/after"] for a in attacks]
        means = np.array([e["mean"] for e in after])
        lo = np.array([e["mean"] if e["ci95"][0] is None else e["ci95"][0] for e in after])
        hi = np.array([e["mean"] if e["ci95"][1] is None else e["ci95"][1] for e in after])
        before = [sel[a][f"target_hr@{k}/before"]["mean"] for a in attacks]
        ax.bar(
            xs,
            means,
            width,
            yerr=np.stack([means - lo, hi - means]),
            capsize=2,
            label=f"{victim}/{defence}",
            color=f"C{j}",
        )
        ax.plot(xs, before, "k_", markersize=8)
    ax.set_xticks(np.arange(len(attacks)), attacks)
    n = len(results["seeds"])
    ax.set(
        ylabel=f"target HR@{k} after poisoning",
        title=f"Target promotion, mean and 95% CI over n={n} seeds (ticks: clean mean)",
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    return path
