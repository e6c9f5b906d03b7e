"""Reports for robustness sweeps: curve summaries, Markdown tables and plots (host side).

A *sweep* is a plain, JSON-serialisable dict::

    {"attack": {"kind": "pgd", "norm": "l2", ...},
     "eps": [0.0, 0.03, ...],                  # E levels, strictly ascending, first is clean
     "seeds": [0, 1],
     "checkpoints": {
        "runs/bpr": {"metrics": {"ndcg@20": [[E values] for each seed], ...},
                     "summary": {...}},         # added by ``summarise``
        ...}}

Only numpy is required; plotting imports matplotlib lazily (``pip install 'robustjax[plot]'``).
Functions never modify their input: ``summarise`` returns a new dict.
"""

import copy
import json
import math
import os
import re
import sys
from collections.abc import Sequence

import numpy as np

_PLOT_HINT = "pip install 'robustjax[plot]'"


def _float_or_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _eps_key(eps: float) -> str:
    return f"drop@{float(eps)!r}"  # shortest round-tripping repr: "drop@0.03"


def curve_summary(eps: Sequence[float], values: Sequence[float]) -> dict:
    """Summary numbers of one metric-vs-eps curve; the clean value is ``values[0]``.

    - ``auc``: area under the curve by the trapezoidal rule divided by the eps range
      ``eps[-1] - eps[0]``, i.e. the curve's mean height (a flat curve at ``v`` gives ``v``;
      a single level gives its value).
    - ``eps_half``: the smallest eps where the metric has fallen to half its clean value,
      linearly interpolated between the two grid points around the first crossing; None if
      it never does or the clean value is not positive.
    - ``drop@<eps>`` for every level: relative change ``(m(eps) - m(0)) / m(0)`` (negative
      for a drop); None when ``m(0) == 0``. Keys use ``repr(float(eps))``, e.g. ``drop@0.03``.

    Args:
      eps: E noise levels, strictly ascending.
      values: E metric values at those levels.

    Returns:
      ``{"auc": float, "eps_half": float | None, "drop@<eps>": float | None, ...}`` with
      plain Python floats (JSON-ready).
    """
    e = np.asarray(eps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if e.ndim != 1 or e.size == 0 or v.shape != e.shape:
        raise ValueError(
            f"curve_summary: eps and values must be non-empty 1-D lists of the same length, got "
            f"{len(e.reshape(-1))} eps levels and values of shape {v.shape}."
        )
    if np.any(np.diff(e) <= 0):
        raise ValueError(f"curve_summary: eps must be strictly ascending, got eps={e.tolist()}.")
    clean = v[0]
    if e.size == 1:
        auc = clean
    else:
        auc = np.sum((v[1:] + v[:-1]) * np.diff(e)) / 2.0 / (e[-1] - e[0])
    eps_half = None
    if clean > 0:
        below = np.flatnonzero(v <= clean / 2.0)
        if below.size:
            i = int(below[0])  # >= 1 because v[0] = clean > clean / 2
            frac = (v[i - 1] - clean / 2.0) / (v[i - 1] - v[i])
            eps_half = float(e[i - 1] + frac * (e[i] - e[i - 1]))
    out = {"auc": _float_or_none(auc), "eps_half": eps_half}
    for level, value in zip(e, v):
        out[_eps_key(level)] = _float_or_none((value - clean) / clean) if clean != 0 else None
    return out


def _eps(sweep: dict) -> np.ndarray:
    if "eps" not in sweep or "checkpoints" not in sweep:
        raise ValueError(
            f"sweep must have 'eps' and 'checkpoints' keys, got keys {sorted(sweep)}; see the "
            "robustjax.report module docstring for the format."
        )
    return np.asarray(sweep["eps"], dtype=np.float64)


def _curves(sweep: dict, name: str, metric: str) -> np.ndarray:
    """The ``[S, E]`` per-seed curves of ``metric`` for checkpoint ``name``."""
    metrics = sweep["checkpoints"][name].get("metrics", {})
    if metric not in metrics:
        raise ValueError(
            f"sweep checkpoint {name!r} has no metric {metric!r}; available: {sorted(metrics)}."
        )
    arr = np.asarray(metrics[metric], dtype=np.float64)
    if arr.ndim == 1:  # a single seed stored without the seed axis
        arr = arr[None, :]
    num_eps = len(sweep["eps"])
    if arr.ndim != 2 or arr.shape[1] != num_eps:
        raise ValueError(
            f"sweep checkpoint {name!r}, metric {metric!r}: expected [seeds, E={num_eps}] "
            f"values, got shape {arr.shape}."
        )
    return arr


def _mean_std(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seed mean and sample std (ddof=1); the std is 0 for a single seed."""
    std = curves.std(axis=0, ddof=1) if curves.shape[0] > 1 else np.zeros(curves.shape[1])
    return curves.mean(axis=0), std


def _has(sweep: dict, metric: str) -> bool:
    return any(metric in c.get("metrics", {}) for c in sweep["checkpoints"].values())


def summarise(sweep: dict, metrics: Sequence[str] = ("ndcg@20", "recall@20")) -> dict:
    """Returns a copy of ``sweep`` with ``summary[metric]`` filled in for every checkpoint.

    Each summary is ``curve_summary`` of the seed-mean curve plus ``clean`` (its eps=0
    value), ``mean_over_seeds`` and ``std_over_seeds`` (sample std, ddof=1; zeros for a
    single seed), all plain Python floats. Existing summaries of other metrics are kept.

    Args:
      sweep: a sweep dict (module docstring); not modified.
      metrics: metric names that every checkpoint must have.
    """
    if isinstance(metrics, str):
        raise TypeError(f"summarise: metrics must be a sequence of names, got {metrics!r}.")
    eps = _eps(sweep)
    out = copy.deepcopy(sweep)
    for name, ckpt in out["checkpoints"].items():
        summary = ckpt.setdefault("summary", {})
        for metric in metrics:
            mean, std = _mean_std(_curves(sweep, name, metric))
            summary[metric] = {
                **curve_summary(eps.tolist(), mean.tolist()),
                "clean": _float_or_none(mean[0]),
                "mean_over_seeds": [_float_or_none(x) for x in mean],
                "std_over_seeds": [_float_or_none(x) for x in std],
            }
    return out


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
    return " / ".join(parts) if parts else "attack"


def _level_name(sweep: dict) -> str:
    """What the level axis measures: ``eps`` (a radius) unless the sweep says otherwise
    (history attacks: ``budget``, items per sequence)."""
    return (
        "budget" if str(sweep.get("attack", {}).get("level", "eps")).startswith("budget") else "eps"
    )


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
        lines.append("| " + " | ".join(cells) + " |")

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


def _import_matplotlib():
    # The object API renders PNGs with the non-interactive Agg canvas without pyplot, so no
    # display is needed and the caller's global backend (e.g. a notebook's) is left alone.
    try:
        # The package first: its submodules may still be cached when it is gone.
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            f"robustjax.report plotting needs matplotlib, which is not installed; run "
            f"`{_PLOT_HINT}` (or skip the plots)."
        ) from err
    return Figure


def _file_name(metric: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", metric.replace("@", "_at_")) + ".png"


def plot_curves(
    sweep: dict,
    path: str,
    metrics: Sequence[str] = ("ndcg@20",),
    stability: Sequence[str] = ("jaccard@20", "rbo@20"),
) -> list[str]:
    """Writes PNG plots of metric-vs-eps curves into the directory ``path``.

    One figure per metric (``ndcg_at_20.png``): one line per checkpoint (seed mean) with a
    band of +-1 std over seeds. One figure ``stability.png`` with the stability metrics
    present (colour per checkpoint, line style per metric), if any. Titles give the attack
    kind and norm. Figures are built with the object API (no pyplot state, nothing shown).

    Args:
      sweep: a sweep dict (not modified).
      path: output directory, created if needed.
      metrics: metrics to plot; every checkpoint must have them.
      stability: stability metric names; missing ones are skipped.

    Returns:
      The paths written.

    Raises:
      ImportError: matplotlib is not installed (``pip install 'robustjax[plot]'``).
    """
    Figure = _import_matplotlib()
    eps = _eps(sweep)
    os.makedirs(path, exist_ok=True)
    title = _title(sweep)
    xlabel = (
        "budget (items edited per history)"
        if _level_name(sweep) == "budget"
        else "eps (perturbation budget)"
    )
    written = []

    for metric in metrics:
        fig = Figure(figsize=(6.0, 4.0), layout="constrained")
        ax = fig.add_subplot()
        for name in sweep["checkpoints"]:
            mean, std = _mean_std(_curves(sweep, name, metric))
            (line,) = ax.plot(eps, mean, marker="o", markersize=3, label=name)
            ax.fill_between(eps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set(xlabel=xlabel, ylabel=metric, title=f"{metric} under {title}")
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(os.path.join(path, _file_name(metric)))
        fig.savefig(written[-1], dpi=120)

    present = [m for m in stability if _has(sweep, m)]
    if present:
        fig = Figure(figsize=(6.0, 4.0), layout="constrained")
        ax = fig.add_subplot()
        styles = ["-", "--", ":", "-."]
        for c, name in enumerate(sweep["checkpoints"]):
            for s, m in enumerate(present):
                if m not in sweep["checkpoints"][name].get("metrics", {}):
                    continue
                mean, _ = _mean_std(_curves(sweep, name, m))
                ax.plot(eps, mean, color=f"C{c}", linestyle=styles[s % 4], label=f"{name}: {m}")
        ax.set(
            xlabel=xlabel,
            ylabel="overlap with clean top-K",
            title=f"Stability under {title}",
            ylim=(0.0, 1.05),
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        written.append(os.path.join(path, "stability.png"))
        fig.savefig(written[-1], dpi=120)
    return written


def _json_default(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"write_report: cannot write {type(x).__name__} to JSON: {x!r}.")


def write_report(
    sweep: dict,
    out_dir: str,
    *,
    metrics: Sequence[str] = ("ndcg@20", "recall@20"),
    stability: Sequence[str] = ("jaccard@20", "rbo@20"),
) -> dict[str, str]:
    """Summarises a sweep and writes ``sweep.json``, ``sweep.md`` and PNG plots to ``out_dir``.

    ``metrics`` missing from every checkpoint are skipped (at least one must be present).
    ``sweep.json`` (the summarised sweep) and ``sweep.md`` (one ``markdown_table`` per
    metric, stability after the first) never need matplotlib; without it the plots are
    skipped with a one-line notice on stderr.

    Returns:
      ``{"json": path, "markdown": path, <metric or "stability">: png path, ...}``.
    """
    present = [m for m in metrics if _has(sweep, m)]
    if not present:
        names = sorted({m for c in sweep["checkpoints"].values() for m in c.get("metrics", {})})
        raise ValueError(
            f"write_report: none of metrics={tuple(metrics)!r} is in the sweep; available: {names}."
        )
    summarised = summarise(sweep, present)
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "sweep.json")}
    with open(paths["json"], "w") as f:
        json.dump(summarised, f, indent=1, default=_json_default)
        f.write("\n")

    paths["markdown"] = os.path.join(out_dir, "sweep.md")
    tables = [
        markdown_table(summarised, m, stability=stability if i == 0 else ())
        for i, m in enumerate(present)
    ]
    with open(paths["markdown"], "w") as f:
        f.write("\n".join(tables))

    try:
        pngs = plot_curves(summarised, out_dir, metrics=present, stability=stability)
    except ImportError:
        print(
            f"robustjax.report: matplotlib not installed, plots skipped ({_PLOT_HINT}).",
            file=sys.stderr,
        )
        return paths
    keys = present + (["stability"] if len(pngs) > len(present) else [])
    paths.update(zip(keys, pngs))
    return paths


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
        for prefix, label in (("head/", "head items (most popular)"), ("tail/", "tail items")):
            if prefix + metric in m:
                row(path, label, "", m[prefix + metric])
        for label, g in ck.get("groups", {}).items():
            row(path, f"users {label}", g["num_users"], g["metrics"][metric])
    return "\n".join(lines) + "\n"
