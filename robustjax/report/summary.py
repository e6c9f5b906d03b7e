"""Curve summaries of a sweep: area under the curve, eps at half, relative drops."""

import copy
import math
from collections.abc import Sequence

import numpy as np


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


__all__ = ["curve_summary", "summarise"]
