"""PNG plots of a sweep (matplotlib, imported lazily: ``pip install 'robustjax[plot]'``)."""

import os
import re
from collections.abc import Sequence

from robustjax.report.summary import _curves, _eps, _has, _mean_std
from robustjax.report.tables import _level_name, _title

_PLOT_HINT = "pip install 'robustjax[plot]'"


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
    level = str(sweep.get("attack", {}).get("level", ""))
    xlabel = (
        (level if level.startswith("budget (") else "budget (items edited per history)")
        if _level_name(sweep) == "budget"
        else "eps (perturbation budget)"
    )
    written = [_plot_metric(Figure, sweep, eps, metric, xlabel, title, path) for metric in metrics]
    present = [m for m in stability if _has(sweep, m)]
    if present:
        written.append(_plot_stability(Figure, sweep, eps, present, xlabel, title, path))
    return written


def _plot_metric(Figure, sweep: dict, eps, metric: str, xlabel: str, title: str, path: str) -> str:
    """Writes the ``metric``-vs-eps figure (seed mean, +-1 std band per checkpoint)."""
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for name in sweep["checkpoints"]:
        mean, std = _mean_std(_curves(sweep, name, metric))
        (line,) = ax.plot(eps, mean, marker="o", markersize=3, label=name)
        ax.fill_between(eps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set(xlabel=xlabel, ylabel=metric, title=f"{metric} under {title}")
    ax.grid(alpha=0.3)
    ax.legend()
    out = os.path.join(path, _file_name(metric))
    fig.savefig(out, dpi=120)
    return out


def _plot_stability(
    Figure, sweep: dict, eps, present: list[str], xlabel: str, title: str, path: str
) -> str:
    """Writes ``stability.png``: the seed means of the ``present`` stability metrics."""
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    for c, name in enumerate(sweep["checkpoints"]):
        for s, m in enumerate(present):
            if m not in sweep["checkpoints"][name].get("metrics", {}):
                continue
            mean, _ = _mean_std(_curves(sweep, name, m))
            ax.plot(
                eps,
                mean,
                color=f"C{c}",
                linestyle=styles[s % 4],
                label=f"{name}: {m}",
            )
    ax.set(
        xlabel=xlabel,
        ylabel="overlap with clean top-K",
        title=f"Stability under {title}",
        ylim=(0.0, 1.05),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    out = os.path.join(path, "stability.png")
    fig.savefig(out, dpi=120)
    return out


__all__ = ["plot_curves"]


def plot_bands(
    curves: dict,
    path: str,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> str:
    """Writes one PNG of curves with their 95% confidence bands.

    Args:
      curves: ``{name: {"eps": [E], "mean": [E], "lo": [E], "hi": [E], "n": int}}``, e.g.
        a study's per-method curves (mean over training seeds, Student-t band).
      path: the PNG file to write (its folder is created if needed).

    Returns:
      ``path``.

    Raises:
      ImportError: matplotlib is not installed (``pip install 'robustjax[plot]'``).
    """
    Figure = _import_matplotlib()
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for name, c in curves.items():
        (line,) = ax.plot(
            c["eps"], c["mean"], marker="o", markersize=3, label=f"{name} (n={c['n']})"
        )
        if c.get("lo") is not None:
            ax.fill_between(c["eps"], c["lo"], c["hi"], color=line.get_color(), alpha=0.18)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
