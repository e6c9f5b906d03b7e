"""Full-ranking evaluation: every user's held-out items ranked against all candidate items.

Metrics come from the targets' ranks (:mod:`robustjax.eval.ranks`): a target's rank is the
count of candidates that beat it, so no row is sorted and no top-K list is built unless one
is asked for (``return_topk``). AUC comes from the same counts and costs about as much again.

Users are processed in batches of at most ``B``. Per batch, the host sends user ids, the
target/exclude entries as padded COO lists and the targets packed into slot rows of ``W``
items (a user with many targets spans several rows of the same batch), together a
:class:`~robustjax.eval.batches.FullBatch`. One jitted step
scores the users, scatters the lists into dense ``[B, I]`` masks, counts ranks over item
chunks and reduces per-user metrics to a ``MetricSums``. All batches share one shape, so
the step compiles once per call signature.

Memory per batch grows with ``B * I``: the compiled step's temporaries (XLA's
``memory_analysis`` on CPU) are about 19-21 bytes per user x item entry with AUC and about
10.5 without (scores, the dense masks and the rank and AUC counts over item chunks;
``B=1024, I=100k``: 1.98 GB vs 1.07 GB; ``B=256, I=1M``: 4.4 GB vs 2.6 GB). Top-N lists use
a chunked top-K merge over item blocks, so a 1M-item catalogue is evaluated in bounded
memory (``benchmarks/scale.py`` records the compiled step's peak). Lower ``batch_size``
(``EvalConfig.batch_size``) to bound memory, or switch AUC off (``eval.auc=false``).
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from robustjax.eval import _host
from robustjax.eval.batches import (
    SLOT_WIDTH,
    CooList,
    FullBatch,
    TargetSlots,
    coo_mask,
    user_batch,
)
from robustjax.eval.metrics import MetricSums, sum_metrics
from robustjax.eval.ranking import _check_ks, metric_keys
from robustjax.eval.ranks import slot_metrics
from robustjax.sharding import gather

CSR = tuple[np.ndarray, np.ndarray]  # (indptr int64 [U+1], indices int32 [nnz])


class TopK(NamedTuple):
    """Top-N recommendations (excluded items removed) of the evaluated users, best first."""

    users: np.ndarray  # int32 [U']
    items: np.ndarray  # int32 [U', N]
    scores: np.ndarray  # float32 [U', N]


@functools.partial(
    jax.jit,
    static_argnames=("score_users_fn", "num_items", "ks", "topn", "auc", "item_chunk"),
)
def eval_full_step(
    params: Any,
    batch: FullBatch,
    *,
    score_users_fn: Callable,
    num_items: int,
    ks: tuple[int, ...],
    topn: int = 0,
    auc: bool = True,
    item_chunk: int = 16384,
) -> tuple[MetricSums, tuple[Int[Array, "B N"], Float[Array, "B N"]] | None]:
    """One batch of ``evaluate_full``: scores, masks from COO lists, ranks of the target
    slots, metric sums, top-N.

    COO entries with row ``B`` are padding and are dropped. Returns ``(sums, top)`` where
    ``top`` is ``(items, scores)`` of the top ``topn`` non-excluded items, or None.
    """
    users = batch.users.ids
    scores = score_users_fn(params, users)
    shape = (users.shape[0], num_items)
    if scores.shape != shape:
        raise ValueError(
            f"evaluate_full: score_users_fn returned shape {scores.shape}, expected "
            f"[B, num_items] = {shape}; check num_items."
        )
    scores = scores.astype(jnp.float32)
    target = batch.target.mask(shape)
    exclude = batch.users.exclude.mask(shape)
    per_user = slot_metrics(
        scores, exclude, target, batch.slots, ks=ks, auc=auc, item_chunk=item_chunk
    )
    sums = sum_metrics(per_user, where=batch.users.mask)
    if not topn:
        return sums, None
    return sums, top_items(scores, exclude, topn, item_chunk=max(item_chunk, 4 * topn))


def top_items(
    scores: Float[Array, "B I"], exclude: Bool[Array, "B I"], topn: int, *, item_chunk: int
) -> tuple[Int[Array, "B N"], Float[Array, "B N"]]:
    """Top ``topn`` non-excluded ``(items, scores)`` per row, best first, ties by lower id
    (excluded items and NaN score -inf).

    Catalogues wider than ``item_chunk`` are merged block by block: the running top list
    and the next block's top list are concatenated (running list first, so ties keep the
    lower id) and cut again, so memory is ``O(B * (item_chunk + topn))``.
    """
    masked = jnp.where(exclude | jnp.isnan(scores), jnp.float32(-jnp.inf), scores)
    num_items = masked.shape[1]
    if num_items <= item_chunk:
        top_scores, top_ids = jax.lax.top_k(masked, topn)
        return top_ids, top_scores
    best_s, best_i = jax.lax.top_k(masked[:, :item_chunk], topn)
    for lo in range(item_chunk, num_items, item_chunk):
        block = masked[:, lo : lo + item_chunk]
        k = min(topn, block.shape[1])
        bs, bi = jax.lax.top_k(block, k)
        cat_s = jnp.concatenate([best_s, bs], axis=1)
        cat_i = jnp.concatenate([best_i, bi + lo], axis=1)
        best_s, pos = jax.lax.top_k(cat_s, topn)
        best_i = jnp.take_along_axis(cat_i, pos, axis=1)
    return best_i, best_s


@dataclasses.dataclass(frozen=True, eq=False)
class FullEvalPlan:
    """The host half of a full-ranking evaluation, done once for a fixed protocol (targets,
    exclusions, users, batch size): the checked CSRs packed into per-batch COO lists and
    slot rows, placed on the device. Evaluating the same split again (validation every
    epoch, several checkpoints on one split) reuses it and pays only the compiled steps. It holds
    every batch's lists at once: device memory of about 8 bytes per target and excluded
    entry (the split's size), besides the per-batch step.

    Build with :func:`plan_full`; run with :func:`evaluate_planned`.
    """

    num_items: int
    batch_size: int
    users: np.ndarray  # int64 [U']: the evaluated users (those with a target), in order
    batches: tuple[FullBatch, ...]  # per batch: the arrays of eval_full_step
    sizes: tuple[int, ...]  # real users per batch


def plan_full(
    *,
    target_csr: CSR,
    exclude_csrs: Sequence[CSR],
    num_items: int,
    batch_size: int = 512,
    users: np.ndarray | None = None,
) -> FullEvalPlan:
    """Checks the CSRs and packs every batch of :func:`evaluate_full` (arguments as there).

    One process: the batches are placed on the default device, uncommitted (a jitted step
    on a mesh still moves them where it needs). Several processes: they stay host arrays,
    which every process passes alike.
    """
    _check_batch_size(batch_size)
    target, excludes, num_users = _host.check_csrs(
        "evaluate_full", target_csr, exclude_csrs, num_items
    )
    eval_users = _users_with_target(users, target, num_users)
    bsz = max(min(batch_size, eval_users.size), 1)
    batches, sizes = _pack_batches(eval_users, target, excludes, bsz, num_items)
    if jax.process_count() == 1:
        batches = jax.device_put(batches)
    return FullEvalPlan(num_items, bsz, eval_users, tuple(batches), tuple(sizes))


def evaluate_planned(
    score_users_fn: Callable[[Any, Int[Array, " B"]], Float[Array, "B I"]],
    params: Any,
    plan: FullEvalPlan,
    *,
    ks: tuple[int, ...] = (10, 20, 50),
    return_topk: int | None = None,
    auc: bool = True,
) -> dict[str, float] | tuple[dict[str, float], TopK]:
    """:func:`evaluate_full` on a :func:`plan_full` plan (arguments and results as there)."""
    ks, topn = _check_full_args(ks, plan.num_items, return_topk)
    states, tops = [], []
    for batch in plan.batches:
        sums, top = eval_full_step(
            params, batch, score_users_fn=score_users_fn, num_items=plan.num_items, ks=ks,
            topn=topn, auc=auc,
        )  # fmt: skip
        states.append(sums)
        tops.append(top)
    metrics = _host.finish(states, metric_keys(ks) if auc else metric_keys(ks)[:-1])
    if not topn:
        return metrics
    return metrics, _gather_topk(tops, plan.sizes, plan.users, topn)


def evaluate_full(
    score_users_fn: Callable[[Any, Int[Array, " B"]], Float[Array, "B I"]],
    params: Any,
    *,
    target_csr: CSR,
    exclude_csrs: Sequence[CSR],
    num_items: int,
    ks: tuple[int, ...] = (10, 20, 50),
    batch_size: int = 512,
    users: np.ndarray | None = None,
    return_topk: int | None = None,
    auc: bool = True,
) -> dict[str, float] | tuple[dict[str, float], TopK]:
    """Means of the ranking metrics (definitions: ``rank_metrics``) over all users with at
    least one target item, computed from the targets' ranks.

    Evaluating the same protocol repeatedly: build its :func:`plan_full` once and call
    :func:`evaluate_planned`, which skips the host packing (this function does both).

    Args:
      score_users_fn: pure ``(params, users int32[B]) -> scores [B, num_items]``. Pass the
        same function object on every call to reuse the compiled step.
      params: pytree handed to ``score_users_fn``.
      target_csr: held-out items per user, ``(indptr [U+1], indices [nnz])``.
      exclude_csrs: CSRs of items to remove from each user's candidates (train; plus valid
        when scoring test). May be empty.
      num_items: I, the number of item columns.
      ks: cutoffs, each ``<= num_items``.
      batch_size: users per step (memory is O(batch_size * num_items)).
      users: optional int array of user ids to restrict to (default: all users).
      return_topk: if N > 0, also return the top-N non-excluded items of each user.
      auc: False skips AUC (it roughly doubles the counting work).

    Returns:
      ``{"recall@K", "ndcg@K", "hr@K", "precision@K", "mrr@K", "auc": float,
      "num_users": int}``; with ``return_topk`` a pair ``(metrics, TopK)``.
    """
    _check_full_args(ks, num_items, return_topk)  # before the host work
    plan = plan_full(
        target_csr=target_csr, exclude_csrs=exclude_csrs, num_items=num_items,
        batch_size=batch_size, users=users,
    )  # fmt: skip
    return evaluate_planned(score_users_fn, params, plan, ks=ks, return_topk=return_topk, auc=auc)


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"evaluate_full: batch_size must be an int >= 1, got {batch_size!r}.")


def _check_full_args(
    ks: tuple[int, ...], num_items: int, return_topk: int | None
) -> tuple[tuple[int, ...], int]:
    """Validated ``ks`` and the top-N count (0: no top-N) of ``evaluate_full``."""
    ks = _check_ks(ks, num_items)
    topn = int(return_topk or 0)
    if topn < 0 or topn > num_items:
        raise ValueError(
            f"evaluate_full: return_topk={return_topk!r} must be in [0, num_items={num_items}]."
        )
    return ks, topn


def _users_with_target(users: np.ndarray | None, target: CSR, num_users: int) -> np.ndarray:
    """The users to evaluate (``users``, default all) that have at least one target item."""
    all_users = np.arange(num_users) if users is None else np.asarray(users).astype(np.int64)
    bad = all_users.size and (all_users.min() < 0 or all_users.max() >= num_users)
    if all_users.ndim != 1 or bad:
        raise ValueError(
            f"evaluate_full: users must be a 1-D array of ids in [0, {num_users}), got shape "
            f"{all_users.shape}."
        )
    has_target = target[0][all_users + 1] > target[0][all_users]
    return all_users[has_target]


def _slot_capacity(counts: np.ndarray, bsz: int, width: int) -> int:
    """Slot rows per batch: room for the heaviest user and for ``bsz`` users of the mean
    row count, rounded up to a multiple of 8."""
    rows = -(-counts // width)
    cap = max(int(rows.max(initial=1)), int(np.ceil(bsz * rows.mean())) if rows.size else 1)
    return -(-cap // 8) * 8


def _plan_batches(counts: np.ndarray, bsz: int, width: int, row_cap: int) -> list[tuple]:
    """Consecutive user ranges ``(start, end)`` holding at most ``bsz`` users and at most
    ``row_cap`` slot rows (a user's rows never straddle two batches)."""
    cum = np.cumsum(-(-counts // width))
    out, start, n = [], 0, counts.size
    while start < n:
        before = int(cum[start - 1]) if start else 0
        end = min(int(np.searchsorted(cum, before + row_cap, side="right")), start + bsz, n)
        end = max(end, start + 1)
        out.append((start, end))
        start = end
    return out


def _slot_rows(
    target: CSR, chunk: np.ndarray, width: int, row_cap: int, num_items: int
) -> TargetSlots:
    """The batch's targets packed ``width`` per row (``row_cap`` rows of host arrays);
    duplicate entries of a user count once, as in the dense mask."""
    rows, cols = _host.gather_rows(target, chunk)
    keys = np.unique(rows.astype(np.int64) * num_items + cols)
    rows, cols = (keys // num_items).astype(np.int32), (keys % num_items).astype(np.int32)
    counts = np.bincount(rows, minlength=chunk.size)
    first = np.cumsum(counts) - counts
    rank_in_user = np.arange(rows.size) - first[rows]
    user_rows = -(-counts // width)
    row_start = np.cumsum(user_rows) - user_rows
    slot_row = row_start[rows] + rank_in_user // width
    slot_user = np.zeros(row_cap, np.int32)
    slot_user[: user_rows.sum()] = np.repeat(np.arange(chunk.size, dtype=np.int32), user_rows)
    slot_items = np.zeros((row_cap, width), np.int32)
    slot_real = np.zeros((row_cap, width), bool)
    slot_items[slot_row, rank_in_user % width] = cols
    slot_real[slot_row, rank_in_user % width] = True
    return TargetSlots(slot_user, slot_items, slot_real)


def _pack_batches(
    eval_users: np.ndarray,
    target: CSR,
    excludes: Sequence[CSR],
    bsz: int,
    num_items: int,
    width: int = SLOT_WIDTH,
) -> tuple[list[FullBatch], list[int]]:
    """The arrays of ``eval_full_step`` for each host batch of at most ``bsz`` of
    ``eval_users`` (padded to one shape), and the real users per batch."""
    counts = target[0][eval_users + 1] - target[0][eval_users]
    row_cap = _slot_capacity(counts, bsz, width)
    batches = _plan_batches(counts, bsz, width, row_cap)
    t_cap = max(max((int(counts[a:b].sum()) for a, b in batches), default=1), 1)
    x_cap = max(
        (_host.batch_capacity(excludes, eval_users[a:b], bsz) for a, b in batches), default=1
    )
    packed, sizes = [], []
    for a, b in batches:
        chunk = eval_users[a:b]
        packed.append(
            FullBatch(
                user_batch(chunk, excludes, x_cap, bsz),
                CooList(*_host.coo_batch([target], chunk, t_cap, pad_row=bsz)),
                _slot_rows(target, chunk, width, row_cap, num_items),
            )
        )
        sizes.append(chunk.size)
    return packed, sizes


def _gather_topk(tops: list, sizes: list, eval_users: np.ndarray, topn: int) -> TopK:
    """Concatenates the per-batch ``(items, scores)`` of ``eval_full_step`` (the first
    ``sizes[b]`` rows of batch ``b``) into a ``TopK``."""
    tops = gather(tops)  # host copies, from every process in a multi-host run
    if not eval_users.size:
        return TopK(
            eval_users.astype(np.int32),
            np.zeros((0, topn), np.int32),
            np.zeros((0, topn), np.float32),
        )
    items = np.concatenate([t[0][:m] for t, m in zip(tops, sizes, strict=True)])
    scores = np.concatenate([t[1][:m] for t, m in zip(tops, sizes, strict=True)])
    return TopK(eval_users.astype(np.int32), items, scores)


__all__ = [  # SLOT_WIDTH and coo_mask live in robustjax.eval.batches, importable here too
    "SLOT_WIDTH",
    "FullEvalPlan",
    "TopK",
    "coo_mask",
    "eval_full_step",
    "evaluate_full",
    "evaluate_planned",
    "plan_full",
    "top_items",
]
