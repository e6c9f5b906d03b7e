"""Objectives built from named, weighted terms (in the style of optax's ``chain``).

A term is ``fn(params, batch, *, key) -> [B]`` per-example values (or a scalar). ``combine``
returns an objective ``(params, batch, *, key) -> (total, parts)`` where ``parts`` maps each
term name to its (masked) mean, so every piece is logged by name. A new loss is a new
``fn``: no trainer subclass.

Example::

    objective = combine(bpr=Term(clean_bpr), l2=Term(l2_term, 1e-4))
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from robustjax.types import Array, Batch, Params

TermFn = Callable[..., Array]

# parts named ``check/<what>`` are diagnostics (e.g. ``check/budget_excess``): logged as
# ``check/<what>/<term>``, weight 0, never part of the total (the training loop reads them)
CHECK_PREFIX = "check/"


class Term(NamedTuple):
    """A named piece of an objective: ``fn(params, batch, *, key) -> [B] | scalar``.

    A term whose pieces share computation (e.g. a clean and an adversarial loss from one
    backward pass) may return a dict ``{part: [B]}``; each entry is then logged as its
    own part, weighted by ``weight[part]`` when ``weight`` is a dict (default 1). In a
    dict, the part ``""`` is logged under the term's own name, and parts named
    ``check/<what>`` are diagnostics (``CHECK_PREFIX``): logged as ``check/<what>/<term>``,
    never weighted into the total.
    """

    fn: TermFn
    weight: float | Array | dict = 1.0


def masked_mean(values: Array, mask: Array | None) -> Array:
    """Mean of ``values`` over examples where ``mask`` is set; 0 (not NaN) when none is."""
    if values.ndim == 0:
        return values
    if mask is None:
        return jnp.mean(values)
    mask = mask.astype(values.dtype)
    while mask.ndim < values.ndim:
        mask = mask[..., None]
    count = jnp.maximum(jnp.sum(jnp.broadcast_to(mask, values.shape)), 1.0)
    return jnp.sum(values * mask) / count


def combine(**terms: Term):
    """Weighted sum of term means.

    Args:
      **terms: ``name=Term(fn, weight)``. Names become the keys of ``parts``.

    Returns:
      ``objective(params, batch, *, key) -> (total, parts)``. Each term receives its own
      key (split from ``key`` in argument order). Per-example values are averaged over
      ``batch["mask"]`` when present (padding rows of a partial last batch).
    """
    if not terms:
        raise ValueError("combine: give at least one term, e.g. combine(bpr=Term(fn)).")
    for name, term in terms.items():
        if not isinstance(term, Term):
            raise TypeError(
                f"combine: term {name!r} must be a Term(fn, weight), got {type(term).__name__}."
            )

    def objective(params: Params, batch: Batch, *, key: Array):
        keys = dict(zip(terms, jax.random.split(key, len(terms))))
        mask = batch.get("mask")
        parts, total = {}, 0.0
        for n, t in terms.items():
            out = t.fn(params, batch, key=keys[n])
            named = out if isinstance(out, dict) else {n: out}
            for part, values in named.items():
                if part.startswith(CHECK_PREFIX):  # a diagnostic: logged, never optimised
                    check = f"{part}/{n}"
                    parts[check] = jax.lax.stop_gradient(masked_mean(values, mask))
                    continue
                part = part or n  # "" names the term's own value
                if part in parts:
                    raise ValueError(f"combine: part name {part!r} is produced twice.")
                w = t.weight.get(part, 1.0) if isinstance(t.weight, dict) else t.weight
                parts[part] = masked_mean(values, mask)
                total = total + w * parts[part]
        return total, parts

    objective.terms = dict(terms)
    return objective
