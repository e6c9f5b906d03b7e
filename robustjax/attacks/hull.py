"""Convex-hull relaxation of item substitution (a training-time sequence perturbation):
each perturbed position becomes a convex combination of the original item and candidate
items, the weights ascended to maximise the loss. Layout as in
:mod:`robustjax.attacks.sequence`."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, Scalar

from robustjax.attacks._seq_ops import (
    LossFn,
    _call_loss,
    _check_budget,
    _check_exclude,
    _check_int,
    _check_seq,
    _check_table,
    _loss_grad,
    _mask_at,
    _sample_allowed,
    _top_positions,
)


# --------------------------------------------------------------------------- convex hull
class HullPerturbation(NamedTuple):
    """Result of ``convex_hull_perturbation``; ``M = 1 + num_candidates``.

    Attributes:
      rows: ``[B, L, D]`` perturbed rows, ``einsum("blm,blmd->bld", weights,
        table[cands])`` at perturbed positions and exactly ``table[seq_ids]`` elsewhere.
      weights: ``[B, L, M]`` on the simplex (one-hot on column 0 where not perturbed).
      cands: ``[B, L, M]`` ids; column 0 is the original item; every column equals it
        where the position is not perturbed (padding included).
    """

    rows: Float[Array, "B L D"]
    weights: Float[Array, "B L M"]
    cands: Int[Array, "B L M"]


def convex_hull_perturbation(
    loss_fn: LossFn,
    table: Float[Array, "I1 D"],
    seq_ids: Int[Array, "B L"],
    *,
    num_candidates: int,
    steps: int,
    step_size: float | Scalar,
    key: PRNGKeyArray,
    budget: int | None = None,
    init_logit: float | Scalar = 0.0,
    exclude: Int[Array, "B C"] | None = None,
) -> HullPerturbation:
    """Soft substitution inside the convex hull of item embeddings (training relaxation).

    Each perturbed position (every real one, or the ``budget`` with the largest clean
    gradient norm) gets the row ``softmax(z) @ table[cands]``, where ``cands`` are the
    original item and ``num_candidates`` uniform random items (from ``1..I`` minus the
    original and ``exclude``, with replacement) and the logits start at ``init_logit``
    for the original and 0 for the others (0: uniform start; large: near the clean row).
    ``steps`` (static) of plain gradient ascent, ``z += step_size * dloss/dz`` (traced
    ``step_size``), maximise ``loss_fn``. Each sequence keeps its best iterate, the
    clean rows included, so its loss never falls below the clean loss or the start.

    Gradients: the weights (and the discrete choices) are ``stop_gradient``-ed, but the
    returned rows stay differentiable w.r.t. ``table`` through ``table[cands]``. This is
    Danskin's theorem for the hull parametrised by weights on a fixed simplex: the
    gradient of ``max_w loss(w @ table[cands])`` w.r.t. the table is the gradient at the
    maximising ``w``, which flows into the original and the candidate rows. Stopping the
    rows entirely would hide the perturbed positions from the table's update.

    Args:
      loss_fn: ``loss_fn(rows [B, L, D], seq_ids) -> [B]``, maximised.
      table: ``[I + 1, D]`` item table.
      seq_ids: ``[B, L]`` left-padded ids.
      num_candidates: static number of random candidates per position (>= 1).
      steps: static number of ascent steps (>= 0).
      step_size: traced ascent step on the logits.
      key: PRNG key for the candidates.
      budget: None (every real position) or a static number of positions.
      init_logit: traced initial logit of the original item.
      exclude: ``[B, C]`` ids never used as candidates.

    Returns:
      A ``HullPerturbation(rows, weights, cands)``.
    """
    where = "convex_hull_perturbation"
    seq = _check_seq(seq_ids, where)
    live_table = jnp.asarray(table)
    table = _check_table(table, where)
    n_cand = _check_int("num_candidates", num_candidates, 1, None, where, "use at least 1")
    steps = _check_int("steps", steps, 0, None, where, "use 0 or more ascent steps")
    exclude = _check_exclude(exclude, seq.shape[0], where)
    base = table[seq]
    clean_loss, sel = _hull_positions(loss_fn, base, seq, budget, where)
    cands = _hull_candidates(key, seq, sel, exclude, table.shape[0] - 1, n_cand)
    cand_rows = table[cands]
    one_hot = jnp.broadcast_to((jnp.arange(n_cand + 1) == 0).astype(table.dtype), cands.shape)
    best_w = _ascend_weights(
        loss_fn, base, seq, sel, cand_rows, one_hot, clean_loss, steps, step_size, init_logit,
        where,
    )  # fmt: skip
    weights = jax.lax.stop_gradient(jnp.where(sel[..., None], best_w, one_hot))
    rows = jnp.where(
        sel[..., None], jnp.einsum("blm,blmd->bld", weights, live_table[cands]), live_table[seq]
    )
    return HullPerturbation(rows, weights, cands)


def _banned_with(orig: Int[Array, "B K 1"], exclude: Int[Array, "B C"] | None) -> Array:
    """``[B, K, 1 + C]`` ids a sampled item must avoid: the original item, then ``exclude``
    (shared with :func:`robustjax.attacks.sequence.substitute_random`)."""
    if exclude is None:
        return orig
    return jnp.concatenate(
        [orig, jnp.broadcast_to(exclude[:, None, :], (*orig.shape[:-1], exclude.shape[1]))], -1
    )


def _hull_positions(loss_fn, base, seq, budget, where):
    """The clean loss ``[B]`` and the ``[B, L]`` mask of perturbed positions: every real
    one, or the ``budget`` with the largest clean gradient norm."""
    real = seq != 0
    if budget is None:
        return _call_loss(loss_fn, base, seq, where), real
    budget = _check_budget(budget, seq.shape[1], where)
    clean_loss, g = _loss_grad(loss_fn, base, seq, where)
    idx, ok = _top_positions(jnp.linalg.norm(g, axis=-1), real, budget)
    return clean_loss, _mask_at(seq.shape, idx, ok)


def _hull_candidates(key, seq, sel, exclude, num_items, n_cand):
    """``[B, L, 1 + n_cand]`` candidate ids: the original item, then ``n_cand`` allowed
    random items at perturbed positions (the original elsewhere or when none is allowed)."""
    draws, free = _sample_allowed(key, _banned_with(seq[..., None], exclude), num_items, n_cand)
    orig = jnp.broadcast_to(seq[..., None], draws.shape)
    draws = jnp.where((sel & free)[..., None], draws.astype(seq.dtype), orig)
    return jnp.concatenate([seq[..., None], draws], axis=-1)  # [B, L, M]


def _ascend_weights(
    loss_fn, base, seq, sel, cand_rows, one_hot, clean_loss, steps, step_size, init_logit, where
):
    """``steps`` of gradient ascent on the candidate logits (``[B, L, M]``, started at
    ``init_logit`` on the original); returns each sequence's best weights, ``one_hot``
    when no iterate beats ``clean_loss``."""

    def mix(w):
        return jnp.where(sel[..., None], jnp.einsum("blm,blmd->bld", w, cand_rows), base)

    def loss_of(z):
        w = jax.nn.softmax(z, axis=-1)
        v = _call_loss(loss_fn, mix(w), seq, where)
        return jnp.sum(v), (v, w)

    def keep_best(best_w, best_v, w, v):
        better = v > best_v
        return jnp.where(better[:, None, None], w, best_w), jnp.where(better, v, best_v)

    z0 = (
        jnp.zeros(one_hot.shape, base.dtype)
        .at[..., 0]
        .set(jnp.asarray(init_logit).astype(base.dtype))
    )
    lr = jnp.asarray(step_size).astype(base.dtype)

    def step(_, carry):
        z, best_w, best_v = carry
        (_, (v, w)), gz = jax.value_and_grad(loss_of, has_aux=True)(z)
        best_w, best_v = keep_best(best_w, best_v, w, v)
        return z + lr * gz, best_w, best_v

    z, best_w, best_v = jax.lax.fori_loop(0, steps, step, (z0, one_hot, clean_loss))
    _, (v, w) = loss_of(z)
    return keep_best(best_w, best_v, w, v)[0]


__all__ = ["HullPerturbation", "convex_hull_perturbation"]
