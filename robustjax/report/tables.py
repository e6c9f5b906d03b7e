"""Markdown tables of a sweep: metric and stability across levels, shifted test data."""

from collections.abc import Sequence

import numpy as np

from robustjax.report.summary import _curves, _eps, _eps_key, _has, _mean_std, summarise


def _levels(num_eps: int, max_levels: int) -> list[int]:
    """Up to ``max_levels`` evenly spaced indices of the perturbed levels ``1..E-1``."""
    if max_levels < 1:
        raise ValueError(f"max_levels must be >= 1, got max_levels={max_levels!r}.")
    if num_eps <= 1:
        return []
    idx = np.linspace(1, num_eps - 1, min(max_levels, num_eps - 1))
    return sorted(set(np.rint(idx).astype(int).tolist()))


def _fmt(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.4f}"


def _cell(name: str) -> str:
    return str(name).replace("|", "\\|")


def _title(sweep: dict) -> str:
    attack = sweep.get("attack", {})
    keys = ("kind",) if _level_name(sweep) != "eps" else ("kind", "norm")
    parts = [str(attack[k]) for k in keys if k in attack]
    if "budget" in attack and _level_name(sweep) == "eps":
        parts.append(f"{attack['budget']} budget")
    if str(attack.get("objective", "")).startswith("oracle"):
        parts.append("ORACLE objective: upper bound, the attacker knows the test items")
    return " / ".join(parts) if parts else "attack"


def _norms_line(sweep: dict) -> list[str]:
    """The checkpoints' mean row norms: what an absolute eps is measured against."""
    rows = []
    for name, ckpt in sweep["checkpoints"].items():
        norms = ckpt.get("norms")
        if norms:
            sizes = ", ".join(f"{t} {v['mean']:.3g}" for t, v in norms.items())
            rows.append(f"{name}: {sizes}")
    return ["", "Mean L2 row norms: " + "; ".join(rows) + "."] if rows else []


def _level_name(sweep: dict) -> str:
    """What the level axis measures: ``eps`` (a radius) unless the sweep says otherwise
    (history attacks: ``budget``, items per sequence)."""
    return (
        "budget" if str(sweep.get("attack", {}).get("level", "eps")).startswith("budget") else "eps"
    )


def _metric_row(sweep: dict, name: str, ckpt: dict, metric: str, eps, levels) -> str:
    """One checkpoint's row of ``markdown_table``'s first table (summarised if needed)."""
    summary = ckpt.get("summary", {}).get(metric)
    if summary is None:
        summary = summarise({"eps": sweep["eps"], "checkpoints": {name: ckpt}}, (metric,))
        summary = summary["checkpoints"][name]["summary"][metric]
    mean = summary["mean_over_seeds"]
    cells = [_cell(name), _fmt(summary["clean"])]
    for i in levels:
        drop = summary[_eps_key(eps[i])]
        rel = "" if drop is None else f" ({100 * drop:+.1f}%)"
        cells.append(_fmt(mean[i]) + rel)
    eps_half = summary["eps_half"]
    cells += [_fmt(summary["auc"]), "–" if eps_half is None else f"{eps_half:.4g}"]
    return "| " + " | ".join(cells) + " |"


def markdown_table(
    sweep: dict,
    metric: str = "ndcg@20",
    max_levels: int = 12,
    stability: Sequence[str] = ("jaccard@20", "rbo@20"),
) -> str:
    """Markdown tables of one metric (and of stability metrics) across the eps grid.

    The first table has one row per checkpoint: the clean value, the seed-mean metric at up
    to ``max_levels`` evenly spaced perturbed levels with its relative change in
    parentheses, the AUC and ``eps_half`` (``curve_summary``). The second table, present
    when any checkpoint has one of the ``stability`` metrics, gives their seed means at
    the same levels, one row per checkpoint and metric.

    Args:
      sweep: a sweep dict; summaries are computed if missing (``sweep`` is not modified).
      metric: the metric of the first table; every checkpoint must have it.
      max_levels: the most perturbed eps levels shown (the clean level is its own column).
      stability: stability metric names; missing ones are skipped.
    """
    eps = _eps(sweep)
    levels = _levels(len(eps), max_levels)
    heads = [f"{_level_name(sweep)}={eps[i]:g}" for i in levels]
    lines = [
        f"### {metric} under {_title(sweep)}",
        "",
        "| checkpoint | clean | "
        + " | ".join(heads + ["AUC", f"{_level_name(sweep)}_half"])
        + " |",
        "|---" * (len(heads) + 4) + "|",
    ]
    for name, ckpt in sweep["checkpoints"].items():
        lines.append(_metric_row(sweep, name, ckpt, metric, eps, levels))
    lines += _norms_line(sweep)

    present = [m for m in stability if _has(sweep, m)]
    if present:
        lines += [
            "",
            f"### Stability under {_title(sweep)} (clean vs perturbed top-K)",
            "",
            "| checkpoint | metric | " + " | ".join(heads) + " |",
            "|---" * (len(heads) + 2) + "|",
        ]
        for name, ckpt in sweep["checkpoints"].items():
            for m in present:
                if m not in ckpt.get("metrics", {}):
                    continue
                mean, _ = _mean_std(_curves(sweep, name, m))
                cells = [_cell(name), m] + [_fmt(mean[i]) for i in levels]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def shift_table(sweep: dict, metric: str = "ndcg@20") -> str:
    """Markdown: ``metric`` on shifted test sets (head/tail items, user-activity groups),
    clean and at the largest eps, beside the noise curves (generalisation across data)."""
    eps = sweep["eps"]
    lines = [
        f"### {metric} on shifted test data (clean -> eps={eps[-1]:g})",
        "",
        "| checkpoint | test set | users | clean | at max eps | drop |",
        "|---|---|---|---|---|---|",
    ]

    def row(path, name, users, curves):
        mean = np.mean(np.asarray(curves, dtype=float), axis=0)
        drop = (mean[-1] - mean[0]) / mean[0] if mean[0] > 0 else float("nan")
        lines.append(
            f"| {path} | {name} | {users} | {mean[0]:.4f} | {mean[-1]:.4f} | {drop:+.1%} |"
        )

    for path, ck in sweep["checkpoints"].items():
        m = ck["metrics"]
        row(path, "all test items", ck.get("num_users", ""), m[metric])
        for prefix, label in (
            ("head/", "head items (most popular)"),
            ("tail/", "tail items"),
        ):
            if prefix + metric in m:
                row(path, label, "", m[prefix + metric])
        for label, g in ck.get("groups", {}).items():
            row(path, f"users {label}", g["num_users"], g["metrics"][metric])
    return "\n".join(lines) + "\n"


__all__ = ["markdown_table", "shift_table"]
