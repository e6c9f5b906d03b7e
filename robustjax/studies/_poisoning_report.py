"""The poisoning study's report: the unrolled attack's lead, the table and the plot."""

import numpy as np


def optimisation_lead(rows: list[dict], k: int) -> list[dict]:
    """Per victim and defence: the unrolled attack's target HR@K after poisoning minus that
    of the best heuristic (by mean), paired by victim seed: mean, standard error, and how
    many seeds it is ahead on. Empty without the unrolled attack or a heuristic."""
    key = f"target_hr@{k}"
    out = []
    for victim, defence in dict.fromkeys((r["victim"], r["defence"]) for r in rows):
        cell = {r["attack"]: r for r in rows if (r["victim"], r["defence"]) == (victim, defence)}
        heur = [a for a in cell if a != "unrolled"]
        if "unrolled" not in cell or not heur:
            continue
        best = max(heur, key=lambda a: cell[a][f"{key}/after"])
        d = np.asarray(cell["unrolled"][f"{key}/per_seed"]["after"]) - np.asarray(
            cell[best][f"{key}/per_seed"]["after"]
        )
        out.append(
            {
                "victim": victim,
                "defence": defence,
                "best_heuristic": best,
                "mean": float(d.mean()),
                "se": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else None,
                "ahead": int(np.sum(d > 0)),
                "seeds": int(d.size),
            }
        )
    return out


def _f(x, digits=4) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def markdown_table(results: dict, k: int) -> str:
    """One table: attack x victim x defence, before -> after."""
    cfg = results["config"]
    seeds = cfg.get("victim_seeds", 1)
    title = (
        f"### Poisoning {results['data']['name']}: {results['num_fake']} fake users "
        f"({cfg['fake_fraction']:.1%}), filler size {cfg['filler_size']}, "
        f"{len(results['targets'])} {cfg['target_band']} targets, "
        f"{results['target_users']} unexposed users, "
        f"{seeds} victim seed{'s' if seeds > 1 else ''}"
    )
    note = (
        "Values are means over the victim seeds; the gain is after − before, paired by "
        "seed, ± its standard deviation across seeds."
        if seeds > 1
        else "One victim seed (`--set victim_seeds=3` adds the spread)."
    )
    head = (
        f"| attack | victim | defence | target HR@{k} before → after | gain | "
        f"target NDCG@{k} before → after | test NDCG@20 before → after | "
        "test Recall@20 before → after | detector P / R (AUC) |"
    )
    lines = [title, "", note, "", head, "|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        det = "–"
        if "detector_precision" in r:
            det = (
                f"{r['detector_precision']:.2f} / {r['detector_recall']:.2f} "
                f"({_f(r['detector_auc'], 3)})"
            )
        cells = [r["attack"], r["victim"], r["defence"]]
        for key in (f"target_hr@{k}", f"target_ndcg@{k}", "test_ndcg@20", "test_recall@20"):
            cells.append(f"{_f(r[key + '/before'])} → {_f(r[key + '/after'])}")
            if key == f"target_hr@{k}":
                sd = r.get(key + "/gain_sd")
                cells.append(f"{r[key + '/gain']:+.4f}" + ("" if sd is None else f" ± {sd:.4f}"))
        lines.append("| " + " | ".join(cells + [det]) + " |")
    lead = results.get("lead") or []
    if lead:
        lines += [
            "",
            (
                f"Unrolled minus the best heuristic, target HR@{k} after poisoning, "
                "paired by victim seed (mean ± standard error; seeds ahead):"
            ),
            "",
        ]
        for x in lead:
            se = "" if x["se"] is None else f" ± {x['se']:.4f}"
            lines.append(
                f"- {x['victim']}/{x['defence']}: {x['mean']:+.4f}{se} vs "
                f"{x['best_heuristic']} ({x['ahead']} of {x['seeds']} seeds ahead)"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str, k: int) -> str:
    """Grouped bars of target HR@K after poisoning (attack groups, one bar per
    victim/defence) with the clean level as a marker. Needs matplotlib (object API)."""
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
        before = [sel[a][f"target_hr@{k}/before"] for a in attacks]
        ax.bar(xs, after, width, label=f"{victim}/{defence}", color=f"C{j}")
        ax.plot(xs, before, "k_", markersize=8)
    ax.set_xticks(np.arange(len(attacks)), attacks)
    ax.set(
        ylabel=f"target HR@{k} after poisoning",
        title="Target promotion (bars: poisoned, ticks: clean)",
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    return path
