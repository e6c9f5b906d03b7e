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

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, Scalar

from robustjax.attacks._seq_ops import (
    SUBSTITUTION_METHODS,
    LossFn,
    _banned_items,
    _check_budget,
    _check_gradient_edit,
    _check_int,
    _check_method,
    _check_random_edit,
    _check_seq,
    _check_table,
    _compact,
    _lengths,
    _loss_grad,
    _mask_at,
    _pick_items,
    _sample_allowed,
    _scatter,
    _top_positions,
    is_left_padded,
)
from robustjax.attacks.hull import HullPerturbation, _banned_with, convex_hull_perturbation


# --------------------------------------------------------------------------- substitution
def substitute_random(
    seq_ids: Int[Array, "B L"],
    budget: int,
    num_items: int,
    *,
    key: PRNGKeyArray,
    exclude: Int[Array, "B C"] | None = None,
) -> Int[Array, "B L"]:
    """Replaces ``budget`` distinct real positions (all, if fewer) by uniform random items
    from ``1..I`` other than the original item and ``exclude``."""
    seq, budget, num_items, exclude = _check_random_edit(
        seq_ids, budget, num_items, exclude, "substitute_random"
    )
    if budget == 0:
        return seq
    k_pos, k_item = jax.random.split(key)
    idx, ok = _top_positions(jax.random.uniform(k_pos, seq.shape), seq != 0, budget)
    orig = jnp.take_along_axis(seq, idx, axis=1)[..., None]  # [B, K, 1]
    items, free = _sample_allowed(k_item, _banned_with(orig, exclude), num_items, 1)
    return _scatter(seq, idx, items[..., 0], ok & free)


def substitute_gradient(
    loss_fn: LossFn,
    table: Float[Array, "I1 D"],
    seq_ids: Int[Array, "B L"],
    budget: int,
    *,
    exclude: Int[Array, "B C"] | None = None,
    step: float | Scalar = 1.0,
    method: str = "nearest",
    iterative: bool = False,
) -> Int[Array, "B L"]:
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
    seq, table, budget, exclude = _check_gradient_edit(seq_ids, table, budget, exclude, where)
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
def insert_random(
    seq_ids: Int[Array, "B L"],
    budget: int,
    num_items: int,
    *,
    key: PRNGKeyArray,
    exclude: Int[Array, "B C"] | None = None,
) -> Int[Array, "B L"]:
    """Inserts ``budget`` uniform random items (from ``1..I`` minus ``exclude``), each in
    a uniform random gap of the original sequence (before any item or after the last).

    The order of the original items is kept; full sequences drop their oldest items.
    """
    seq, budget, num_items, exclude = _check_random_edit(
        seq_ids, budget, num_items, exclude, "insert_random"
    )
    if budget == 0:
        return seq
    batch, length = seq.shape
    k_gap, k_item = jax.random.split(key)
    banned = jnp.zeros((batch, 1), jnp.int32) if exclude is None else exclude
    items, free = _sample_allowed(k_item, banned, num_items, budget)  # [B, K], [B]
    gap = jax.random.randint(
        k_gap, (batch, budget), (length - _lengths(seq))[:, None], length + 1, jnp.int32
    )
    # Sort keys: item at position p -> 2p, insertion into gap g (before position g) ->
    # 2g - 1, padding and skipped insertions -> -1 (leftmost, so padding stays left).
    pos = jnp.arange(length, dtype=jnp.int32)[None, :]
    ok = jnp.broadcast_to(free[:, None], gap.shape)
    keys = jnp.concatenate(
        [jnp.where(seq != 0, 2 * pos, -1), jnp.where(ok, 2 * gap - 1, -1)], axis=1
    )
    ids = jnp.concatenate([seq, jnp.where(ok, items, 0).astype(seq.dtype)], axis=1)
    order = jnp.argsort(keys, axis=1, stable=True)
    return jnp.take_along_axis(ids, order, axis=1)[:, budget:]


def insert_gradient(
    loss_fn: LossFn,
    table: Float[Array, "I1 D"],
    seq_ids: Int[Array, "B L"],
    budget: int,
    *,
    exclude: Int[Array, "B C"] | None = None,
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
    seq, table, budget, exclude = _check_gradient_edit(seq_ids, table, budget, exclude, where)
    if budget == 0:
        return seq
    ban = _banned_items(exclude, seq.shape[0], table.shape[0] - 1)

    def one_round(_, seq):
        last = seq[:, -1]
        holder = jnp.where(last != 0, last, jnp.ones_like(last))
        cand = jnp.concatenate([seq[:, 1:], holder[:, None]], axis=1)
        _, g = _loss_grad(loss_fn, table[cand], cand, where)
        score = jnp.where(ban, -jnp.inf, g[:, -1] @ table.T)  # [B, I + 1]
        new = cand.at[:, -1].set(jnp.argmax(score, axis=-1).astype(seq.dtype))
        return jnp.where(jnp.all(ban, axis=-1)[:, None], seq, new)

    return jax.lax.fori_loop(0, budget, one_round, seq)


# --------------------------------------------------------------------------- deletion
def _delete_top(seq: Array, scores: Array, budget: int) -> Array:
    """Deletes the ``budget`` best-scoring items, at most ``length - 1`` of them."""
    idx, ok = _top_positions(scores, seq != 0, budget)
    ok = ok & (jnp.arange(budget)[None, :] < (_lengths(seq) - 1)[:, None])
    return _compact(seq, (seq != 0) & ~_mask_at(seq.shape, idx, ok))


def delete_random(
    seq_ids: Int[Array, "B L"], budget: int, *, key: PRNGKeyArray
) -> Int[Array, "B L"]:
    """Deletes ``budget`` uniformly chosen items per sequence, shifting the older items
    right. A sequence always keeps at least one item (so at most ``length - 1`` go)."""
    seq = _check_seq(seq_ids, "delete_random")
    budget = _check_budget(budget, seq.shape[1], "delete_random")
    if budget == 0:
        return seq
    return _delete_top(seq, jax.random.uniform(key, seq.shape), budget)


def delete_gradient(
    loss_fn: LossFn, table: Float[Array, "I1 D"], seq_ids: Int[Array, "B L"], budget: int
) -> Int[Array, "B L"]:
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


# --------------------------------------------------------------------------- registry
class HistoryAttack(NamedTuple):
    """An entry of ``HISTORY_ATTACKS``.

    Attributes:
      fn: ``fn(seq_ids, budget, *, num_items, key, loss_fn, table, exclude, method, step,
        iterative) -> seq_ids`` (every option as a keyword; unused ones are ignored).
      gradient: needs ``loss_fn`` and ``table`` (checked by ``apply_sequence_attack``).
    """

    fn: Callable[..., Int[Array, "B L"]]
    gradient: bool = False


def _substitute_random(seq, budget, *, num_items, key, exclude, **_):
    return substitute_random(seq, budget, num_items, key=key, exclude=exclude)


def _substitute_gradient(seq, budget, *, loss_fn, table, exclude, step, method, iterative, **_):
    return substitute_gradient(
        loss_fn, table, seq, budget, exclude=exclude, step=step, method=method, iterative=iterative
    )


def _insert_random(seq, budget, *, num_items, key, exclude, **_):
    return insert_random(seq, budget, num_items, key=key, exclude=exclude)


def _insert_gradient(seq, budget, *, loss_fn, table, exclude, **_):
    return insert_gradient(loss_fn, table, seq, budget, exclude=exclude)


def _delete_random(seq, budget, *, key, **_):
    return delete_random(seq, budget, key=key)


def _delete_gradient(seq, budget, *, loss_fn, table, **_):
    return delete_gradient(loss_fn, table, seq, budget)


def _truncate(seq, budget, **_):
    return truncate_recent(seq, budget)


# The registry of history attacks (``robustjax.attacks.registry``): a new entry is
# available to ``apply_sequence_attack``, ``SeqSweepConfig`` and ``robustjax sweep``.
HISTORY_ATTACKS: dict[str, HistoryAttack] = {
    "substitute_random": HistoryAttack(_substitute_random),
    "substitute_gradient": HistoryAttack(_substitute_gradient, gradient=True),
    "insert_random": HistoryAttack(_insert_random),
    "insert_gradient": HistoryAttack(_insert_gradient, gradient=True),
    "delete_random": HistoryAttack(_delete_random),
    "delete_gradient": HistoryAttack(_delete_gradient, gradient=True),
    "truncate": HistoryAttack(_truncate),
}
# The built-in kinds (a snapshot taken at import; ``HISTORY_ATTACKS`` is the registry).
SEQUENCE_ATTACKS = tuple(HISTORY_ATTACKS)


def apply_sequence_attack(
    kind: str,
    seq_ids: Int[Array, "B L"],
    budget: int,
    *,
    num_items: int,
    key: PRNGKeyArray,
    loss_fn: LossFn | None = None,
    table: Float[Array, "I1 D"] | None = None,
    exclude: Int[Array, "B C"] | None = None,
    method: str = "nearest",
    step: float | Scalar = 1.0,
    iterative: bool = False,
) -> Int[Array, "B L"]:
    """Runs the attack ``kind`` (a key of ``HISTORY_ATTACKS``) with a static ``budget``.

    ``loss_fn`` and ``table`` are required by the gradient kinds; ``method``, ``step``
    and ``iterative`` go to ``substitute_gradient``. ``key`` is used by the ``*_random``
    kinds only; ``exclude`` by substitution and insertion only.
    """
    where = f"apply_sequence_attack(kind={kind!r})"
    if kind not in HISTORY_ATTACKS:
        raise ValueError(
            f"apply_sequence_attack: kind={kind!r} is unknown; expected one of "
            f"{tuple(HISTORY_ATTACKS)}."
        )
    attack = HISTORY_ATTACKS[kind]
    seq = _check_seq(seq_ids, where)
    budget = _check_budget(budget, seq.shape[1], where)
    num_items = _check_int("num_items", num_items, 1, None, where, "pass I, the item count")
    if attack.gradient:
        missing = [n for n, v in (("loss_fn", loss_fn), ("table", table)) if v is None]
        if missing:
            raise ValueError(
                f"{where}: a gradient attack needs {' and '.join(missing)}=; "
                f"pass them or use a *_random kind."
            )
        if jnp.shape(table)[0] != num_items + 1:
            raise ValueError(
                f"{where}: table has {jnp.shape(table)[0]} rows but "
                f"num_items={num_items} needs num_items + 1 = {num_items + 1}."
            )
    return attack.fn(
        seq,
        budget,
        num_items=num_items,
        key=key,
        loss_fn=loss_fn,
        table=table,
        exclude=exclude,
        method=method,
        step=step,
        iterative=iterative,
    )


__all__ = [
    "HISTORY_ATTACKS",
    "SEQUENCE_ATTACKS",
    "SUBSTITUTION_METHODS",
    "HistoryAttack",
    "HullPerturbation",
    "apply_sequence_attack",
    "convex_hull_perturbation",
    "delete_gradient",
    "delete_random",
    "insert_gradient",
    "insert_random",
    "is_left_padded",
    "substitute_gradient",
    "substitute_random",
    "truncate_recent",
]
