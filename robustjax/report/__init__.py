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

Modules by purpose: ``summary`` (curve summaries), ``tables`` (Markdown), ``plots`` (PNG),
``intervals`` (means with 95% intervals over seeds, paired differences);
this package re-exports their public names and writes whole reports (``write_report``).
"""

import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from robustjax.report.intervals import excludes_zero, fmt_ci, mean_ci, paired_diff
from robustjax.report.plots import _PLOT_HINT, plot_bands, plot_curves
from robustjax.report.summary import _has, curve_summary, summarise
from robustjax.report.tables import markdown_table, shift_table


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


__all__ = [
    "curve_summary",
    "excludes_zero",
    "fmt_ci",
    "markdown_table",
    "mean_ci",
    "paired_diff",
    "plot_bands",
    "plot_curves",
    "shift_table",
    "summarise",
    "write_report",
]
