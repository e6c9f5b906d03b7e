"""Discrete attacks on item sequences: substitute, insert, delete and truncate items.

Sequences are left-padded int ids ``[B, L]``: items are ``1..I``, 0 is padding, the real
items sit contiguously at the right end and the most recent one is at ``L - 1``. Every
attack keeps that layout and the shape ``[B, L]``, and only ever writes real item ids
``1..I`` at real positions. ``budget`` is a static Python int (it sets shapes and loop
counts) with ``0 <= budget < L``; ``budget = 0`` returns the input. Continuous
parameters (``step``, ``step_size``, ``init_logit``) may be traced. The inputs must be
left-padded (``is_left_padded``); that is not checked, as it depends on traced values.

Gradient attacks take ``loss_fn(rows [B, L, D], seq_ids [B, L]) -> [B]``, where ``rows``
are the raw item-table rows ``table[seq_ids]`` (the model's own scaling, e.g. SASRec's
``sqrt(D)``, is applied inside ``loss_fn``), and maximise it, e.g. the negative
log-likelihood of each user's held-out target. ``loss_fn`` must treat examples
independently. ``table`` is the ``[I + 1, D]`` item embedding table (row 0 = padding);
its gradient is stopped (the attacks return ids, which carry no gradient anyway).

``exclude`` (``[B, C]`` ids, or None) lists items that are never written, e.g. the
target and the evaluation candidates; ids outside ``1..I`` in it are ignored. Items
already in the sequence are kept even when excluded. Substitutions always change the
item. When no allowed item exists (tiny ``I``, large ``exclude``) the edit is skipped.
"""
import numbers
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, Scalar

SEQUENCE_ATTACKS = ("substitute_random", "substitute_gradient", "insert_random",
                    "insert_gradient", "delete_random", "delete_gradient", "truncate")
SUBSTITUTION_METHODS = ("nearest", "first_order")

LossFn = Callable[[Float[Array, "B L D"], Int[Array, "B L"]], Float[Array, " B"]]


# --------------------------------------------------------------------------- validation
def _check_seq(seq_ids, where: str) -> Array:
    seq = jnp.asarray(seq_ids)
    if seq.ndim != 2:
        raise ValueError(f"{where}: seq_ids must be [B, L] left-padded item ids, got shape "
                         f"{seq.shape}.")
    if not jnp.issubdtype(seq.dtype, jnp.integer):
        raise TypeError(f"{where}: seq_ids must be integer item ids, got dtype {seq.dtype}.")
    return seq


def _check_int(name: str, value, low: int, high: int | None, where: str, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be a Python int (it is static: it sets shapes "
                        f"and loop counts), got {name}={value!r} of type "
                        f"{type(value).__name__}.")
    if value < low or (high is not None and value >= high):
        bound = f"{low} <= {name}" + ("" if high is None else f" < {high}")
        raise ValueError(f"{where}: {name}={value} must satisfy {bound}; {hint}.")
    return int(value)


def _check_budget(budget, length: int, where: str) -> int:
    return _check_int("budget", budget, 0, length, where,
                      f"the budget must be below the sequence length L={length}")


def _check_table(table, where: str) -> Array:
    table = jnp.asarray(table)
    if table.ndim != 2 or table.shape[0] < 2:
        raise ValueError(f"{where}: table must be the [I + 1, D] item table with I >= 1 "
                         f"(row 0 = padding), got shape {table.shape}.")
    if not jnp.issubdtype(table.dtype, jnp.floating):
        raise TypeError(f"{where}: table must be floating point, got dtype {table.dtype}.")
    return jax.lax.stop_gradient(table)


def _check_exclude(exclude, batch: int, where: str) -> Array | None:
    if exclude is None:
        return None
    exclude = jnp.asarray(exclude)
    if exclude.ndim != 2 or exclude.shape[0] != batch:
        raise ValueError(f"{where}: exclude must be [B, C] item ids with B={batch} (the "
                         f"batch of seq_ids), got shape {exclude.shape}.")
    if not jnp.issubdtype(exclude.dtype, jnp.integer):
        raise TypeError(f"{where}: exclude must hold integer ids, got dtype {exclude.dtype}.")
    return exclude


def _check_method(method: str, where: str) -> None:
    if method not in SUBSTITUTION_METHODS:
        raise ValueError(f"{where}: method={method!r} is unknown; expected one of "
                         f"{SUBSTITUTION_METHODS}.")


# --------------------------------------------------------------------------- helpers
def is_left_padded(seq_ids: Int[Array, "B L"]) -> Bool[Array, " B"]:
    """True for rows whose zeros all lie left of all their items (the layout kept here)."""
    real = jnp.asarray(seq_ids) != 0
    return jnp.all(real[:, 1:] >= real[:, :-1], axis=1)


def _lengths(seq: Array) -> Array:
    return jnp.sum(seq != 0, axis=1, dtype=jnp.int32)


def _top_positions(scores: Array, allowed: Array, k: int) -> tuple[Array, Array]:
    """The k largest ``scores`` per row among ``allowed``: distinct ids [B, k] (descending)
    and whether each is allowed (False when a row has fewer than k allowed positions)."""
    _, idx = jax.lax.top_k(jnp.where(allowed, scores, -jnp.inf), k)
    return idx, jnp.take_along_axis(allowed, idx, axis=1)


def _mask_at(shape, idx: Array, ok: Array) -> Array:
    rows = jnp.arange(shape[0])[:, None]
    return jnp.zeros(shape, bool).at[rows, idx].set(ok)


def _scatter(seq: Array, idx: Array, items: Array, ok: Array) -> Array:
    cur = jnp.take_along_axis(seq, idx, axis=1)
    rows = jnp.arange(seq.shape[0])[:, None]
    return seq.at[rows, idx].set(jnp.where(ok, items.astype(seq.dtype), cur))


def _compact(seq: Array, keep: Array) -> Array:
    """Keeps the ``keep`` entries in order, right-aligned; zeros fill the left."""
    order = jnp.argsort(keep.astype(jnp.int8), axis=1, stable=True)   # dropped ones first
    kept = jnp.take_along_axis(keep, order, axis=1)
    return jnp.where(kept, jnp.take_along_axis(seq, order, axis=1), jnp.zeros_like(seq))


def _sample_allowed(key: PRNGKeyArray, banned: Array, num_items: int,
                    num_draws: int) -> tuple[Array, Array]:
    """Uniform draws from ``1..I`` minus the ids in ``banned [..., E]``, exactly.

    Returns items ``[..., num_draws]`` and ``ok [...]`` (False when nothing is allowed).
    With the banned ids sorted and deduplicated, ``e_0 < e_1 < ...``, the r-th allowed
    item (0-based) is ``r + 1 + #{k : e_k - 1 - k <= r}``: ``e_k - 1 - k`` counts the
    allowed items below ``e_k``. Costs O(E) per draw instead of O(I).
    """
    big = num_items + 1
    e = jnp.where((banned >= 1) & (banned <= num_items), banned, big).astype(jnp.int32)
    e = jnp.sort(e, axis=-1)
    dup = jnp.concatenate([jnp.zeros_like(e[..., :1], bool), e[..., 1:] == e[..., :-1]], -1)
    e = jnp.sort(jnp.where(dup, big, e), axis=-1)
    valid = e < big
    free = num_items - jnp.sum(valid, axis=-1, dtype=jnp.int32)
    r = jax.random.randint(key, free.shape + (num_draws,), 0,
                           jnp.maximum(free, 1)[..., None], jnp.int32)
    k = jnp.arange(e.shape[-1], dtype=jnp.int32).reshape((1,) * (e.ndim - 1) + (-1,))
    below = (e - 1 - k)[..., None, :] <= r[..., None]               # [..., draws, E]
    shift = jnp.sum(valid[..., None, :] & below, axis=-1, dtype=jnp.int32)
    return r + 1 + shift, free > 0


def _banned_items(exclude: Array | None, batch: int, num_items: int) -> Array:
    """Dense ``[B, I + 1]`` mask of ids never written: padding and ``exclude``."""
    ban = jnp.zeros((batch, num_items + 1), bool).at[:, 0].set(True)
    if exclude is None:
        return ban
    ids = jnp.where((exclude >= 0) & (exclude <= num_items), exclude, jnp.zeros_like(exclude))
    return ban.at[jnp.arange(batch)[:, None], ids].set(True)


def _call_loss(loss_fn: LossFn, rows: Array, seq: Array, where: str) -> Array:
    v = loss_fn(rows, seq)
    if jnp.shape(v) != (seq.shape[0],):
        raise ValueError(f"{where}: loss_fn must return one loss per sequence, shape "
                         f"({seq.shape[0]},), got shape {jnp.shape(v)}.")
    return v


def _loss_grad(loss_fn: LossFn, rows: Array, seq: Array, where: str) -> tuple[Array, Array]:
    """Per-example losses [B] and the gradient of their sum w.r.t. ``rows``."""
    def total(r):
        v = _call_loss(loss_fn, r, seq, where)
        return jnp.sum(v), v
    (_, v), g = jax.value_and_grad(total, has_aux=True)(rows)
    return v, g


def _pick_items(table, rows, grad, orig, ban, step, method: str) -> tuple[Array, Array]:
    """Replacement items [B, K] for rows/grads [B, K, D]; ok is False if all are banned."""
    banned = ban[:, None, :] | (orig[..., None] == jnp.arange(table.shape[0])[None, None, :])
    if method == "first_order":   # argmax_j (table_j - table_orig) . g
        score = jnp.einsum("bkd,jd->bkj", grad, table)
    else:                         # argmin_j |t - table_j|^2 = argmax_j 2 t.table_j - |table_j|^2
        n = jnp.linalg.norm(grad, axis=-1, keepdims=True)
        unit = grad / jnp.maximum(n, jnp.finfo(grad.dtype).tiny)
        t = rows + jnp.asarray(step).astype(rows.dtype) * unit
        sq = jnp.sum(jnp.square(table), axis=-1)
        score = 2.0 * jnp.einsum("bkd,jd->bkj", t, table) - sq[None, None, :]
    score = jnp.where(banned, -jnp.inf, score)
    return jnp.argmax(score, axis=-1), ~jnp.all(banned, axis=-1)


# --------------------------------------------------------------------------- substitution
def substitute_random(seq_ids: Int[Array, "B L"], budget: int, num_items: int, *,
                      key: PRNGKeyArray, exclude: Int[Array, "B C"] | None = None
                      ) -> Int[Array, "B L"]:
    """Replaces ``budget`` distinct real positions (all, if fewer) by uniform random items
    from ``1..I`` other than the original item and ``exclude``."""
    where = "substitute_random"
    seq = _check_seq(seq_ids, where)
    budget = _check_budget(budget, seq.shape[1], where)
    num_items = _check_int("num_items", num_items, 1, None, where, "pass I, the item count")
    exclude = _check_exclude(exclude, seq.shape[0], where)
    if budget == 0:
        return seq
    k_pos, k_item = jax.random.split(key)
    idx, ok = _top_positions(jax.random.uniform(k_pos, seq.shape), seq != 0, budget)
    orig = jnp.take_along_axis(seq, idx, axis=1)[..., None]           # [B, K, 1]
    banned = orig if exclude is None else jnp.concatenate(
        [orig, jnp.broadcast_to(exclude[:, None, :], (*idx.shape, exclude.shape[1]))], -1)
    items, free = _sample_allowed(k_item, banned, num_items, 1)
    return _scatter(seq, idx, items[..., 0], ok & free)


def substitute_gradient(loss_fn: LossFn, table: Float[Array, "I1 D"],
                        seq_ids: Int[Array, "B L"], budget: int, *,
                        exclude: Int[Array, "B C"] | None = None,
                        step: float | Scalar = 1.0, method: str = "nearest",
                        iterative: bool = False) -> Int[Array, "B L"]:
    """Substitutes the ``budget`` real positions with the largest ``|d loss / d row|``.

    One gradient ``g`` of ``loss_fn`` at the clean rows chooses all positions jointly
    (first-order: the positions where the loss is most sensitive). Each chosen position
    with row ``r`` and original item ``o`` gets, among ``1..I`` minus ``o`` and
    ``exclude``:

    * ``method="nearest"``: the item nearest (Euclidean) to ``r + step * g / |g|``;
    * ``method="first_order"``: ``argmax_j (table_j - r) . g`` (HotFlip, Ebrahimi et
      al., 2018): the best item under the first-order expansion of the loss.

    ``iterative=True`` is the greedy variant: ``budget`` rounds (a ``fori_loop``), each
    recomputing the gradient on the current sequence and substituting the one untouched
    position of largest gradient norm; costlier, but later picks see earlier edits.

    Args:
      loss_fn: ``loss_fn(rows [B, L, D], seq_ids) -> [B]``, maximised.
      table: ``[I + 1, D]`` item table (row 0 = padding).
      seq_ids: ``[B, L]`` left-padded ids.
      budget: static number of positions to change per sequence.
      exclude: ``[B, C]`` ids never written.
      step: traced step length for ``"nearest"`` (unused by ``"first_order"``).
      method: ``"nearest"`` or ``"first_order"`` (static).
      iterative: static; greedy re-gradient per substitution.

    Returns:
      ``[B, L]`` ids; at most ``budget`` positions differ from ``seq_ids``.
    """
    where = "substitute_gradient"
    seq = _check_seq(seq_ids, where)
    table = _check_table(table, where)
    budget = _check_budget(budget, seq.shape[1], where)
    exclude = _check_exclude(exclude, seq.shape[0], where)
    _check_method(method, where)
    if budget == 0:
        return seq
    ban = _banned_items(exclude, seq.shape[0], table.shape[0] - 1)

    def one_round(seq, touched, k):
        rows = table[seq]
        _, g = _loss_grad(loss_fn, rows, seq, where)
        idx, ok = _top_positions(jnp.linalg.norm(g, axis=-1), (seq != 0) & ~touched, k)
        take = lambda x: jnp.take_along_axis(x, idx[..., None], axis=1)
        orig = jnp.take_along_axis(seq, idx, axis=1)
        items, found = _pick_items(table, take(rows), take(g), orig, ban, step, method)
        ok = ok & found
        return _scatter(seq, idx, items, ok), touched | _mask_at(seq.shape, idx, ok)

    touched = jnp.zeros(seq.shape, bool)
    if not iterative:
        return one_round(seq, touched, budget)[0]
    return jax.lax.fori_loop(0, budget, lambda _, c: one_round(*c, 1), (seq, touched))[0]


# --------------------------------------------------------------------------- insertion
def insert_random(seq_ids: Int[Array, "B L"], budget: int, num_items: int, *,
                  key: PRNGKeyArray, exclude: Int[Array, "B C"] | None = None
                  ) -> Int[Array, "B L"]:
    """Inserts ``budget`` uniform random items (from ``1..I`` minus ``exclude``), each in
    a uniform random gap of the original sequence (before any item or after the last).

    The order of the original items is kept; full sequences drop their oldest items.
    """
    where = "insert_random"
    seq = _check_seq(seq_ids, where)
    batch, length = seq.shape
    budget = _check_budget(budget, length, where)
    num_items = _check_int("num_items", num_items, 1, None, where, "pass I, the item count")
    exclude = _check_exclude(exclude, batch, where)
    if budget == 0:
        return seq
    k_gap, k_item = jax.random.split(key)
    banned = jnp.zeros((batch, 1), jnp.int32) if exclude is None else exclude
    items, free = _sample_allowed(k_item, banned, num_items, budget)       # [B, K], [B]
    gap = jax.random.randint(k_gap, (batch, budget), (length - _lengths(seq))[:, None],
                             length + 1, jnp.int32)
    # Sort keys: item at position p -> 2p, insertion into gap g (before position g) ->
    # 2g - 1, padding and skipped insertions -> -1 (leftmost, so padding stays left).
    pos = jnp.arange(length, dtype=jnp.int32)[None, :]
    ok = jnp.broadcast_to(free[:, None], gap.shape)
    keys = jnp.concatenate([jnp.where(seq != 0, 2 * pos, -1), jnp.where(ok, 2 * gap - 1, -1)],
                           axis=1)
    ids = jnp.concatenate([seq, jnp.where(ok, items, 0).astype(seq.dtype)], axis=1)
    order = jnp.argsort(keys, axis=1, stable=True)
    return jnp.take_along_axis(ids, order, axis=1)[:, budget:]


def insert_gradient(loss_fn: LossFn, table: Float[Array, "I1 D"], seq_ids: Int[Array, "B L"],
                    budget: int, *, exclude: Int[Array, "B C"] | None = None
                    ) -> Int[Array, "B L"]:
    """Appends ``budget`` items at the most recent end, chosen greedily by gradient.

    Insertion is at the end because the most recent items drive a next-item model's
    prediction most. Each of ``budget`` rounds (a ``fori_loop``) shifts the sequence left
    by one (a full sequence drops its oldest item), appends a placeholder copy of the
    current last item ``h`` (item 1 for an empty sequence; only its row matters), takes
    the gradient ``g`` of the loss w.r.t. that new row, and writes the first-order best
    item ``argmax_j (table_j - table_h) . g`` over ``1..I`` minus ``exclude``.
    """
    where = "insert_gradient"
    seq = _check_seq(seq_ids, where)
    table = _check_table(table, where)
    budget = _check_budget(budget, seq.shape[1], where)
    exclude = _check_exclude(exclude, seq.shape[0], where)
    if budget == 0:
        return seq
    ban = _banned_items(exclude, seq.shape[0], table.shape[0] - 1)

    def one_round(_, seq):
        last = seq[:, -1]
        holder = jnp.where(last != 0, last, jnp.ones_like(last))
        cand = jnp.concatenate([seq[:, 1:], holder[:, None]], axis=1)
        _, g = _loss_grad(loss_fn, table[cand], cand, where)
        score = jnp.where(ban, -jnp.inf, g[:, -1] @ table.T)             # [B, I + 1]
        new = cand.at[:, -1].set(jnp.argmax(score, axis=-1).astype(seq.dtype))
        return jnp.where(jnp.all(ban, axis=-1)[:, None], seq, new)

    return jax.lax.fori_loop(0, budget, one_round, seq)


# --------------------------------------------------------------------------- deletion
def _delete_top(seq: Array, scores: Array, budget: int) -> Array:
    """Deletes the ``budget`` best-scoring items, at most ``length - 1`` of them."""
    idx, ok = _top_positions(scores, seq != 0, budget)
    ok = ok & (jnp.arange(budget)[None, :] < (_lengths(seq) - 1)[:, None])
    return _compact(seq, (seq != 0) & ~_mask_at(seq.shape, idx, ok))


def delete_random(seq_ids: Int[Array, "B L"], budget: int, *, key: PRNGKeyArray
                  ) -> Int[Array, "B L"]:
    """Deletes ``budget`` uniformly chosen items per sequence, shifting the older items
    right. A sequence always keeps at least one item (so at most ``length - 1`` go)."""
    seq = _check_seq(seq_ids, "delete_random")
    budget = _check_budget(budget, seq.shape[1], "delete_random")
    if budget == 0:
        return seq
    return _delete_top(seq, jax.random.uniform(key, seq.shape), budget)


def delete_gradient(loss_fn: LossFn, table: Float[Array, "I1 D"], seq_ids: Int[Array, "B L"],
                    budget: int) -> Int[Array, "B L"]:
    """Deletes the ``budget`` items with the largest ``|d loss / d row|`` (one gradient at
    the clean rows), shifting the older items right; at least one item always remains."""
    where = "delete_gradient"
    seq = _check_seq(seq_ids, where)
    table = _check_table(table, where)
    budget = _check_budget(budget, seq.shape[1], where)
    if budget == 0:
        return seq
    _, g = _loss_grad(loss_fn, table[seq], seq, where)
    return _delete_top(seq, jnp.linalg.norm(g, axis=-1), budget)


def truncate_recent(seq_ids: Int[Array, "B L"], budget: int) -> Int[Array, "B L"]:
    """Drops the ``budget`` most recent items (``min(budget, length - 1)``: one item always
    remains), shifting the rest right."""
    seq = _check_seq(seq_ids, "truncate_recent")
    budget = _check_budget(budget, seq.shape[1], "truncate_recent")
    drop = jnp.minimum(budget, jnp.maximum(_lengths(seq) - 1, 0))
    src = jnp.arange(seq.shape[1])[None, :] - drop[:, None]
    out = jnp.take_along_axis(seq, jnp.maximum(src, 0), axis=1)
    return jnp.where(src >= 0, out, jnp.zeros_like(out))


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


def convex_hull_perturbation(loss_fn: LossFn, table: Float[Array, "I1 D"],
                             seq_ids: Int[Array, "B L"], *, num_candidates: int, steps: int,
                             step_size: float | Scalar, key: PRNGKeyArray,
                             budget: int | None = None, init_logit: float | Scalar = 0.0,
                             exclude: Int[Array, "B C"] | None = None) -> HullPerturbation:
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
    num_items = table.shape[0] - 1
    n_cand = _check_int("num_candidates", num_candidates, 1, None, where, "use at least 1")
    steps = _check_int("steps", steps, 0, None, where, "use 0 or more ascent steps")
    exclude = _check_exclude(exclude, seq.shape[0], where)
    base = table[seq]
    real = seq != 0
    if budget is None:
        clean_loss, sel = _call_loss(loss_fn, base, seq, where), real
    else:
        budget = _check_budget(budget, seq.shape[1], where)
        clean_loss, g = _loss_grad(loss_fn, base, seq, where)
        idx, ok = _top_positions(jnp.linalg.norm(g, axis=-1), real, budget)
        sel = _mask_at(seq.shape, idx, ok)
    banned = seq[..., None] if exclude is None else jnp.concatenate(
        [seq[..., None], jnp.broadcast_to(exclude[:, None, :], (*seq.shape, exclude.shape[1]))],
        -1)
    draws, free = _sample_allowed(key, banned, num_items, n_cand)         # [B, L, N]
    orig = jnp.broadcast_to(seq[..., None], draws.shape)
    draws = jnp.where((sel & free)[..., None], draws.astype(seq.dtype), orig)
    cands = jnp.concatenate([seq[..., None], draws], axis=-1)              # [B, L, M]
    cand_rows = table[cands]
    m = n_cand + 1
    one_hot = jnp.broadcast_to((jnp.arange(m) == 0).astype(table.dtype), cands.shape)

    def mix(w):
        return jnp.where(sel[..., None], jnp.einsum("blm,blmd->bld", w, cand_rows), base)

    def loss_of(z):
        w = jax.nn.softmax(z, axis=-1)
        v = _call_loss(loss_fn, mix(w), seq, where)
        return jnp.sum(v), (v, w)

    def keep_best(best_w, best_v, w, v):
        better = v > best_v
        return jnp.where(better[:, None, None], w, best_w), jnp.where(better, v, best_v)

    z0 = jnp.zeros(cands.shape, table.dtype).at[..., 0].set(
        jnp.asarray(init_logit).astype(table.dtype))
    lr = jnp.asarray(step_size).astype(table.dtype)

    def step(_, carry):
        z, best_w, best_v = carry
        (_, (v, w)), gz = jax.value_and_grad(loss_of, has_aux=True)(z)
        best_w, best_v = keep_best(best_w, best_v, w, v)
        return z + lr * gz, best_w, best_v

    z, best_w, best_v = jax.lax.fori_loop(0, steps, step, (z0, one_hot, clean_loss))
    _, (v, w) = loss_of(z)
    best_w, _ = keep_best(best_w, best_v, w, v)
    weights = jax.lax.stop_gradient(jnp.where(sel[..., None], best_w, one_hot))
    rows = jnp.where(sel[..., None], jnp.einsum("blm,blmd->bld", weights, live_table[cands]),
                     live_table[seq])
    return HullPerturbation(rows, weights, cands)


# --------------------------------------------------------------------------- registry
def apply_sequence_attack(kind: str, seq_ids: Int[Array, "B L"], budget: int, *,
                          num_items: int, key: PRNGKeyArray, loss_fn: LossFn | None = None,
                          table: Float[Array, "I1 D"] | None = None,
                          exclude: Int[Array, "B C"] | None = None,
                          method: str = "nearest", step: float | Scalar = 1.0,
                          iterative: bool = False) -> Int[Array, "B L"]:
    """Runs the attack ``kind`` (one of ``SEQUENCE_ATTACKS``) with a static ``budget``.

    ``loss_fn`` and ``table`` are required by the ``*_gradient`` kinds; ``method``,
    ``step`` and ``iterative`` go to ``substitute_gradient``. ``key`` is used by the
    ``*_random`` kinds only; ``exclude`` by substitution and insertion only.
    """
    where = f"apply_sequence_attack(kind={kind!r})"
    if kind not in SEQUENCE_ATTACKS:
        raise ValueError(f"apply_sequence_attack: kind={kind!r} is unknown; expected one of "
                         f"{SEQUENCE_ATTACKS}.")
    seq = _check_seq(seq_ids, where)
    budget = _check_budget(budget, seq.shape[1], where)
    num_items = _check_int("num_items", num_items, 1, None, where, "pass I, the item count")
    if kind.endswith("_gradient"):
        missing = [n for n, v in (("loss_fn", loss_fn), ("table", table)) if v is None]
        if missing:
            raise ValueError(f"{where}: a gradient attack needs {' and '.join(missing)}=; "
                             f"pass them or use a *_random kind.")
        if jnp.shape(table)[0] != num_items + 1:
            raise ValueError(f"{where}: table has {jnp.shape(table)[0]} rows but "
                             f"num_items={num_items} needs num_items + 1 = {num_items + 1}.")
    if kind == "substitute_random":
        return substitute_random(seq, budget, num_items, key=key, exclude=exclude)
    if kind == "substitute_gradient":
        return substitute_gradient(loss_fn, table, seq, budget, exclude=exclude, step=step,
                                   method=method, iterative=iterative)
    if kind == "insert_random":
        return insert_random(seq, budget, num_items, key=key, exclude=exclude)
    if kind == "insert_gradient":
        return insert_gradient(loss_fn, table, seq, budget, exclude=exclude)
    if kind == "delete_random":
        return delete_random(seq, budget, key=key)
    if kind == "delete_gradient":
        return delete_gradient(loss_fn, table, seq, budget)
    return truncate_recent(seq, budget)


__all__ = ["SEQUENCE_ATTACKS", "SUBSTITUTION_METHODS", "HullPerturbation",
           "apply_sequence_attack", "convex_hull_perturbation", "delete_gradient",
           "delete_random", "insert_gradient", "insert_random", "is_left_padded",
           "substitute_gradient", "substitute_random", "truncate_recent"]
