"""Divergence checks of the host training loop (:func:`robustjax.train.loop.train_loop`).

After every epoch the epoch's loss terms and the state's parameters are checked on the
host (one reduction per epoch, outside the compiled step). A non-finite value raises
:class:`TrainingDiverged` naming the epoch, phase and term, before the epoch is validated,
selected or checkpointed, so a non-finite model is never selected or written. Divergence
that stays finite is flagged by the growth rule: a term whose absolute epoch mean exceeds
``GROWTH_FACTOR`` (1e3) times its value in the first epoch of its phase (floored at
``GROWTH_FLOOR``, 1e-2, so that terms starting near zero need to reach 10) gets a warning,
once per term and phase, in that epoch's record (``warnings``) and in
:attr:`robustjax.train.loop.LoopResult.warnings`; with ``strict=True`` it raises
:class:`TrainingDiverged`. An attack whose perturbation left its ball (the objective's
``check/budget_excess`` term) is flagged the same way.
"""

import math

import jax
import jax.numpy as jnp

from robustjax.attacks.budget import BUDGET_TOLERANCE
from robustjax.losses.combine import CHECK_PREFIX
from robustjax.train.checkpoint import leaf_name

GROWTH_FACTOR = 1e3
GROWTH_FLOOR = 1e-2


class TrainingDiverged(ValueError):
    """A loss term or parameter became non-finite (or, under ``strict``, grew by more
    than ``GROWTH_FACTOR``)."""


def check_epoch(prog, record: dict, state, phase: str, epoch: int, strict: bool, log) -> None:
    """Stops on a non-finite loss term or parameter; flags (or, strict, stops on) a term
    that grew by more than ``GROWTH_FACTOR`` since its phase's first epoch.

    ``prog`` is the loop's progress (``phase_start``, ``warnings``); ``log(record)`` writes
    the epoch's record before a :class:`TrainingDiverged` is raised."""
    terms = {k: v for k, v in record.items() if k not in ("epoch", "phase", "seconds")}
    bad = {k: v for k, v in terms.items() if not math.isfinite(v)}
    leaf = None if bad else _non_finite_leaf(state)
    if bad or leaf is not None:
        log(record)
        what = (
            "loss term " + ", ".join(f"{k!r} = {v}" for k, v in bad.items())
            if bad
            else f"parameter {leaf!r} holds non-finite values (losses: {terms})"
        )
        raise TrainingDiverged(
            f"training diverged in epoch {epoch + 1} (phase {phase!r}): {what}. The run "
            "stopped; no model of this epoch was selected or written. Lower "
            "train.learning_rate, or clip gradients (train.clip_norm)."
        )
    warnings = []
    for k, v in terms.items():
        tag = f"{phase}/{k}"
        if any(w.startswith(f"[{tag}]") for w in prog.warnings):
            continue  # once per term (or check) and phase
        if k.startswith(CHECK_PREFIX):
            msg = _budget_message(tag, epoch, v)
        else:
            start = prog.phase_start.setdefault(tag, abs(v))
            msg = _growth_message(tag, k, phase, epoch, start, v)
        if msg is None:
            continue
        if strict:
            log(record)
            raise TrainingDiverged(msg + " (strict: the run stopped.)")
        warnings.append(msg)
    if warnings:
        record["warnings"] = warnings
        prog.warnings.extend(warnings)


def _growth_message(tag, key, phase, epoch, start, value) -> str | None:
    """The warning for a loss term that grew by more than ``GROWTH_FACTOR`` since its
    phase's first epoch (None while it has not)."""
    if abs(value) <= GROWTH_FACTOR * max(start, GROWTH_FLOOR):
        return None
    return (
        f"[{tag}] loss term {key!r} grew from {start:.4g} (first epoch of phase "
        f"{phase!r}) to {value:.4g} in epoch {epoch + 1}, more than "
        f"{GROWTH_FACTOR:g}x: training is diverging."
    )


def _budget_message(tag, epoch, value) -> str | None:
    """The warning for an attack whose perturbation left its ball: ``value`` is the
    epoch's mean of ``check/budget_excess`` (:func:`robustjax.attacks.budget_excess`),
    above ``BUDGET_TOLERANCE`` only when some step's output was outside (None otherwise)."""
    if value <= BUDGET_TOLERANCE:
        return None
    return (
        f"[{tag}] the attack's perturbation exceeded its budget in epoch {epoch + 1}: "
        f"||delta|| was up to {1 + value:.4g}x its radius (mean over the epoch's steps of "
        "the largest excess). The attack does not project onto its ball; the adversarial "
        "loss is not measured at the configured eps."
    )


def _non_finite_leaf(state) -> str | None:
    """The tree path of the first floating leaf of ``state`` holding nan or inf."""
    pairs = [
        (p, x)
        for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
        if jnp.issubdtype(jnp.result_type(x), jnp.inexact)
    ]
    if not pairs:
        return None
    finite = jax.device_get(_all_finite([x for _, x in pairs]))
    for (p, _), ok in zip(pairs, finite):
        if not ok:
            return leaf_name(p)
    return None


@jax.jit
def _all_finite(leaves):
    return [jnp.all(jnp.isfinite(x)) for x in leaves]


__all__ = ["GROWTH_FACTOR", "GROWTH_FLOOR", "TrainingDiverged", "check_epoch"]
