"""Shared pieces of the sequence attacks: input checks and layout-preserving edits of
left-padded ``[B, L]`` id sequences (see :mod:`robustjax.attacks.sequence`)."""

import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

SUBSTITUTION_METHODS = ("nearest", "first_order")

LossFn = Callable[[Float[Array, "B L D"], Int[Array, "B L"]], Float[Array, " B"]]


# --------------------------------------------------------------------------- validation
def _check_seq(seq_ids, where: str) -> Array:
    seq = jnp.asarray(seq_ids)
    if seq.ndim != 2:
        raise ValueError(
            f"{where}: seq_ids must be [B, L] left-padded item ids, got shape {seq.shape}."
        )
    if not jnp.issubdtype(seq.dtype, jnp.integer):
        raise TypeError(f"{where}: seq_ids must be integer item ids, got dtype {seq.dtype}.")
    return seq


def _check_int(name: str, value, low: int, high: int | None, where: str, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{where}: {name} must be a Python int (it is static: it sets shapes "
            f"and loop counts), got {name}={value!r} of type "
            f"{type(value).__name__}."
        )
    if value < low or (high is not None and value >= high):
        bound = f"{low} <= {name}" + ("" if high is None else f" < {high}")
        raise ValueError(f"{where}: {name}={value} must satisfy {bound}; {hint}.")
    return int(value)


def _check_budget(budget, length: int, where: str) -> int:
    return _check_int(
        "budget",
        budget,
        0,
        length,
        where,
        f"the budget must be below the sequence length L={length}",
    )


def _check_table(table, where: str) -> Array:
    table = jnp.asarray(table)
    if table.ndim != 2 or table.shape[0] < 2:
        raise ValueError(
            f"{where}: table must be the [I + 1, D] item table with I >= 1 "
            f"(row 0 = padding), got shape {table.shape}."
        )
    if not jnp.issubdtype(table.dtype, jnp.floating):
        raise TypeError(f"{where}: table must be floating point, got dtype {table.dtype}.")
    return jax.lax.stop_gradient(table)


def _check_exclude(exclude, batch: int, where: str) -> Array | None:
    if exclude is None:
        return None
    exclude = jnp.asarray(exclude)
    if exclude.ndim != 2 or exclude.shape[0] != batch:
        raise ValueError(
            f"{where}: exclude must be [B, C] item ids with B={batch} (the "
            f"batch of seq_ids), got shape {exclude.shape}."
        )
    if not jnp.issubdtype(exclude.dtype, jnp.integer):
        raise TypeError(f"{where}: exclude must hold integer ids, got dtype {exclude.dtype}.")
    return exclude


def _check_random_edit(seq_ids, budget, num_items, exclude, where: str):
    """The checked ``(seq, budget, num_items, exclude)`` of a random substitution or
    insertion (``where`` names the attack in errors)."""
    seq = _check_seq(seq_ids, where)
    budget = _check_budget(budget, seq.shape[1], where)
    num_items = _check_int("num_items", num_items, 1, None, where, "pass I, the item count")
    exclude = _check_exclude(exclude, seq.shape[0], where)
    return seq, budget, num_items, exclude


def _check_gradient_edit(seq_ids, table, budget, exclude, where: str):
    """The checked ``(seq, table, budget, exclude)`` of a gradient substitution or
    insertion (``where`` names the attack in errors); ``table``'s gradient is stopped."""
    seq = _check_seq(seq_ids, where)
    table = _check_table(table, where)
    budget = _check_budget(budget, seq.shape[1], where)
    exclude = _check_exclude(exclude, seq.shape[0], where)
    return seq, table, budget, exclude


def _check_method(method: str, where: str) -> None:
    if method not in SUBSTITUTION_METHODS:
        raise ValueError(
            f"{where}: method={method!r} is unknown; expected one of {SUBSTITUTION_METHODS}."
        )


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
    order = jnp.argsort(keep.astype(jnp.int8), axis=1, stable=True)  # dropped ones first
    kept = jnp.take_along_axis(keep, order, axis=1)
    return jnp.where(kept, jnp.take_along_axis(seq, order, axis=1), jnp.zeros_like(seq))


def _sample_allowed(
    key: PRNGKeyArray, banned: Array, num_items: int, num_draws: int
) -> tuple[Array, Array]:
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
    r = jax.random.randint(
        key, free.shape + (num_draws,), 0, jnp.maximum(free, 1)[..., None], jnp.int32
    )
    k = jnp.arange(e.shape[-1], dtype=jnp.int32).reshape((1,) * (e.ndim - 1) + (-1,))
    below = (e - 1 - k)[..., None, :] <= r[..., None]  # [..., draws, E]
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
        raise ValueError(
            f"{where}: loss_fn must return one loss per sequence, shape "
            f"({seq.shape[0]},), got shape {jnp.shape(v)}."
        )
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
    if method == "first_order":  # argmax_j (table_j - table_orig) . g
        score = jnp.einsum("bkd,jd->bkj", grad, table)
    else:  # argmin_j |t - table_j|^2 = argmax_j 2 t.table_j - |table_j|^2
        n = jnp.linalg.norm(grad, axis=-1, keepdims=True)
        unit = grad / jnp.maximum(n, jnp.finfo(grad.dtype).tiny)
        t = rows + jnp.asarray(step).astype(rows.dtype) * unit
        sq = jnp.sum(jnp.square(table), axis=-1)
        score = 2.0 * jnp.einsum("bkd,jd->bkj", t, table) - sq[None, None, :]
    score = jnp.where(banned, -jnp.inf, score)
    return jnp.argmax(score, axis=-1), ~jnp.all(banned, axis=-1)
