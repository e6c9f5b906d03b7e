"""Means with 95% confidence intervals over seeds, and paired differences.

Every figure a study reports over n training seeds is ``{"mean", "ci95": [lo, hi],
"values": [...], "n"}``: the sample mean and the two-sided 95% Student-t interval
``mean +- t_{0.975, n-1} * s / sqrt(n)`` (``s`` the sample standard deviation). Methods
trained on the same seeds are compared by their per-seed differences (a paired interval),
which removes the variance the seeds share.
"""

import math
from collections.abc import Sequence

import numpy as np

# t_{0.975, df} for df = 1..30 (two-sided 95%).
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (table for
    df <= 30; above, the Cornish-Fisher expansion around the normal quantile, error < 1e-4)."""
    if df < 1:
        raise ValueError(f"t_quantile_975: df must be >= 1, got {df}.")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> dict:
    """``{"mean", "ci95": [lo, hi], "values", "n"}`` of ``values`` (one per seed).

    With a single value the interval is ``[None, None]``: one run has no spread to report.
    Non-finite values are an error (a diverged run must not be averaged in silently).
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("mean_ci: no values (expected one per seed).")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"mean_ci: non-finite values {v.tolist()}.")
    mean = float(v.mean())
    if v.size == 1:
        ci = [None, None]
    else:
        half = t_quantile_975(v.size - 1) * float(v.std(ddof=1)) / math.sqrt(v.size)
        ci = [mean - half, mean + half]
    return {"mean": mean, "ci95": ci, "values": [float(x) for x in v], "n": int(v.size)}


def paired_diff(a: Sequence[float], b: Sequence[float]) -> dict:
    """``mean_ci`` of the per-seed differences ``a[i] - b[i]`` (same seeds, same order)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(
            f"paired_diff: need one value per shared seed in both, got {a.size} and {b.size}."
        )
    return mean_ci(a - b)


def excludes_zero(entry: dict) -> bool:
    """Whether a ``mean_ci`` entry's interval lies strictly on one side of 0."""
    lo, hi = entry["ci95"]
    return lo is not None and (lo > 0 or hi < 0)


def fmt_ci(entry: dict, digits: int = 4, *, signed: bool = False) -> str:
    """``0.3201 [0.3150, 0.3252]`` (or ``+0.0120 [...]`` with ``signed``)."""
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    lo, hi = entry["ci95"]
    if lo is None:
        return f.format(entry["mean"]) + " (n=1)"
    return f"{f.format(entry['mean'])} [{f.format(lo)}, {f.format(hi)}]"
