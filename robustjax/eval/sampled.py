"""Sampled-negatives protocol: each held-out item ranked against N fixed sampled negatives.

Used by NCF-style papers (He et al. 2017: 1 positive + 99 negatives). Note that sampled
metrics are not consistent with full-ranking ones and can even reorder models (Krichene and
Rendle, "On Sampled Metrics for Item Recommendation", KDD 2020); prefer ``evaluate_full``
and report sampled numbers only for comparison with such papers.

Ties: candidates are ranked with the tie rule of ``rank_metrics`` (equal scores are ordered by
column), and the positive is column 0, so a positive tied with negatives ranks *before*
them (optimistic). Some papers break ties pessimistically (positive after equal negatives);
a model that outputs constant scores gets HR@K = 1 here, so check for degenerate scores.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from robustjax.eval import _host
from robustjax.eval.metrics import MetricSums, sum_metrics
from robustjax.eval.ranking import _check_ks, metric_keys, rank_metrics

CSR = tuple[np.ndarray, np.ndarray]
_CHUNK_ENTRIES = 1 << 22  # random keys drawn per host chunk (16 MiB of float32)


class SampledCandidates(NamedTuple):
    """One row per held-out (user, item): column 0 the positive, then N negatives."""

    users: np.ndarray  # int32 [R]
    items: np.ndarray  # int32 [R, 1+N]


def make_sampled_candidates(
    heldout_csr: CSR,
    exclude_csrs: Sequence[CSR],
    *,
    num_items: int,
    num_negatives: int = 99,
    seed: int,
) -> SampledCandidates:
    """Fixed candidate lists: each held-out item plus N uniform negatives without replacement.

    Negatives are drawn from the items in none of the user's CSRs (held-out, and all of
    ``exclude_csrs``: train, valid, test), by keeping the N smallest of i.i.d. uniform keys.
    The result depends only on the data and ``seed``, so every model is scored on the same
    negatives. Rows are ordered by user, then by the held-out CSR order.

    Args:
      heldout_csr: ``(indptr [U+1], indices [nnz])`` positives to rank, one row per entry.
      exclude_csrs: other positives of each user, never drawn as negatives.
      num_items: I.
      num_negatives: N negatives per row.
      seed: seed of the ``numpy.random.Generator``.

    Returns:
      ``SampledCandidates(users int32[R], items int32[R, 1+N])``, R = nnz of ``heldout_csr``.
    """
    if not isinstance(num_negatives, int) or num_negatives < 1:
        raise ValueError(
            f"make_sampled_candidates: num_negatives must be an int >= 1, got {num_negatives!r}."
        )
    heldout, others, num_users = _host.check_csrs(
        "make_sampled_candidates", heldout_csr, exclude_csrs, num_items, main_name="heldout_csr"
    )
    row_users = np.repeat(np.arange(num_users), np.diff(heldout[0]))
    positives = heldout[1]
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ENTRIES // num_items)
    negatives = np.empty((row_users.size, num_negatives), np.int32)
    for start in range(0, row_users.size, chunk):
        users = row_users[start : start + chunk]
        seen = np.zeros((users.size, num_items), bool)
        for csr in (heldout, *others):
            rows, cols = _host.gather_rows(csr, users)
            seen[rows, cols] = True
        allowed = num_items - seen.sum(axis=1)
        if allowed.min() < num_negatives:
            bad = int(users[np.argmin(allowed)])
            raise ValueError(
                f"make_sampled_candidates: user {bad} has only {allowed.min()} non-positive "
                f"items, fewer than num_negatives={num_negatives}; lower num_negatives."
            )
        keys = rng.random((users.size, num_items), dtype=np.float32)
        keys[seen] = 2.0  # above every uniform key: never among the N smallest
        picked = np.argpartition(keys, num_negatives - 1, axis=1)[:, :num_negatives]
        negatives[start : start + users.size] = np.sort(picked, axis=1)
    items = np.concatenate([positives[:, None], negatives], axis=1).astype(np.int32)
    return SampledCandidates(row_users.astype(np.int32), items)


@functools.partial(jax.jit, static_argnames=("score_items_fn", "ks"))
def eval_sampled_step(
    params: Any,
    users: Int[Array, " B"],
    items: Int[Array, "B C"],
    row_mask: Bool[Array, " B"],
    *,
    score_items_fn: Callable,
    ks: tuple[int, ...],
) -> MetricSums:
    """One batch of ``evaluate_sampled``: the target is column 0, nothing is excluded."""
    scores = score_items_fn(params, users, items)
    if scores.shape != items.shape:
        raise ValueError(
            f"evaluate_sampled: score_items_fn returned shape {scores.shape}, expected the "
            f"candidate shape {items.shape}."
        )
    column = jnp.arange(items.shape[1])[None, :]
    target = jnp.broadcast_to(column == 0, items.shape)
    exclude = jnp.zeros(items.shape, jnp.bool_)
    return sum_metrics(rank_metrics(scores, target, exclude, ks=ks), where=row_mask)


def evaluate_sampled(
    score_items_fn: Callable[[Any, Int[Array, " B"], Int[Array, "B C"]], Float[Array, "B C"]],
    params: Any,
    candidates: SampledCandidates,
    *,
    ks: tuple[int, ...] = (1, 5, 10),
    batch_size: int = 1024,
) -> dict[str, float]:
    """Means of ``rank_metrics`` over the rows of ``candidates`` (positive = column 0).

    Args:
      score_items_fn: pure ``(params, users int32[B], items int32[B, C]) -> scores [B, C]``.
        Pass the same function object on every call to reuse the compiled step.
      params: pytree handed to ``score_items_fn``.
      candidates: from ``make_sampled_candidates``.
      ks: cutoffs, each ``<= C = 1 + N``.
      batch_size: rows per step.

    Returns:
      ``{"hr@K", "ndcg@K", ..., "auc": float, "num_rows": int, "num_users": int}``; with one
      positive per row, recall@K = hr@K and auc is the fraction of negatives beaten.
    """
    users, items = np.asarray(candidates.users), np.asarray(candidates.items)
    if items.ndim != 2 or users.shape != items.shape[:1]:
        raise ValueError(
            f"evaluate_sampled: candidates must be users[R] and items[R, C], got "
            f"{users.shape} and {items.shape}."
        )
    ks = _check_ks(ks, items.shape[1])
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"evaluate_sampled: batch_size must be an int >= 1, got {batch_size!r}.")
    n = users.shape[0]
    bsz = max(min(batch_size, n), 1)
    states = []
    for start in range(0, n, bsz):
        u = users[start : start + bsz].astype(np.int32)
        states.append(
            eval_sampled_step(
                params,
                _host.pad_rows(u, bsz),
                _host.pad_rows(items[start : start + bsz].astype(np.int32), bsz),
                np.arange(bsz) < u.size,
                score_items_fn=score_items_fn,
                ks=ks,
            )
        )
    out = _host.finish(states, metric_keys(ks))
    out["num_rows"] = out.pop("num_users")
    out["num_users"] = int(np.unique(users).size)
    return out
