"""Promotion of target items: HR@K and NDCG@K of the targets over unexposed real users.

For target items ``T`` and an eligible user ``u`` (a real user who never interacted with
any target, in train, valid or test), the rank of target ``t`` is its position in ``u``'s
full ranking of all items except ``u``'s training items::

    rank(u, t) = #{j : s_uj > s_ut} + #{j < t : s_uj = s_ut}     (0-based, ties by id)

``HR@K`` is the fraction of (user, target) pairs with ``rank < K``; ``NDCG@K`` averages
``1 / log2(rank + 2)`` over the same pairs (0 outside the top K): one relevant item, so
the ideal DCG is 1. Scores come from ``score_all`` in user batches on the device.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from robustjax.data.csr import user_item_csr
from robustjax.data.table import SplitData
from robustjax.eval import UserBatch, batch_capacity, check_csr, user_batch


def eligible_users(split: SplitData, targets, *, num_real_users: int | None = None) -> np.ndarray:
    """int64 ids of real users (``< num_real_users``, default all) who never interacted
    with any target in train, valid or test."""
    targets = np.asarray(targets)
    num_real = split.num_users if num_real_users is None else num_real_users
    exposed = np.zeros(split.num_users, bool)
    for part in (split.train, split.valid, split.test):
        exposed[part.user[np.isin(part.item, targets)]] = True
    return np.flatnonzero(~exposed[:num_real])


@functools.partial(jax.jit, static_argnames=("score_all", "k"))
def target_rank_step(
    params: Any,
    batch: UserBatch,
    targets: Int[Array, " T"],
    *,
    score_all: Callable,
    k: int,
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    """Sums of hits, NDCG and pair counts for one user batch (padding rows masked).

    COO exclusion entries with row ``B`` are padding and are dropped.
    """
    scores = score_all(params, batch.ids).astype(jnp.float32)  # [B, I]
    num_items = scores.shape[1]
    excl = batch.exclude.mask(scores.shape)
    scores = jnp.where(excl, -jnp.inf, scores)
    st = scores[:, targets]  # [B, T]
    above = scores[:, None, :] > st[:, :, None]  # [B, T, I]
    tie = (scores[:, None, :] == st[:, :, None]) & (
        jnp.arange(num_items)[None, None, :] < targets[None, :, None]
    )
    rank = jnp.sum(above | tie, axis=-1)  # [B, T]
    hit = (rank < k) & batch.mask[:, None]
    ndcg = jnp.where(hit, 1.0 / jnp.log2(rank.astype(jnp.float32) + 2.0), 0.0)
    pairs = jnp.sum(batch.mask.astype(jnp.float32)) * targets.shape[0]
    return jnp.sum(hit.astype(jnp.float32)), jnp.sum(ndcg), pairs


def _check_target_args(k: int, num_items: int, batch_size: int, targets) -> np.ndarray:
    """Checks ``target_metrics``'s options; returns ``targets`` as int32 ``[T]``."""
    if not isinstance(k, int) or not 1 <= k <= num_items:
        raise ValueError(
            f"target_metrics: k must be an int in [1, num_items={num_items}], got {k!r}."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"target_metrics: batch_size must be an int >= 1, got {batch_size!r}.")
    targets = np.asarray(targets, np.int32)
    if targets.ndim != 1 or targets.size == 0 or targets.min() < 0 or targets.max() >= num_items:
        raise ValueError(
            f"target_metrics: targets must be item ids in [0, {num_items}), got {targets.tolist()}."
        )
    return targets


def _rank_sums(
    score_all: Callable,
    params: Any,
    targets: np.ndarray,
    users: np.ndarray,
    excl: tuple[np.ndarray, np.ndarray],
    k: int,
    bsz: int,
) -> np.ndarray:
    """``target_rank_step`` over ``users`` in host batches of ``bsz``; the float64 sums."""
    cap = batch_capacity([excl], users, bsz)
    sums = []
    for start in range(0, users.size, bsz):
        batch = user_batch(users[start : start + bsz], [excl], cap, bsz)
        sums.append(target_rank_step(params, batch, targets, score_all=score_all, k=k))
    return np.asarray(jax.device_get(sums), np.float64).sum(axis=0)


def target_metrics(
    score_all: Callable,
    params: Any,
    *,
    targets,
    users: np.ndarray,
    exclude_csr: tuple[np.ndarray, np.ndarray],
    num_items: int,
    k: int = 50,
    batch_size: int = 256,
) -> dict[str, float]:
    """HR@K and NDCG@K of ``targets`` over ``users`` (module docstring).

    Args:
      score_all: ``(params, users int32 [B]) -> [B, I]``; pass the same function object
        every call to reuse the compiled step.
      params: the model parameters.
      targets: int ``[T]`` target items.
      users: int ``[N]`` user ids to evaluate (see :func:`eligible_users`).
      exclude_csr: the items removed from each user's ranking (training items), as a CSR
        over all users.
      num_items: I.
      k: cutoff, ``1 <= k <= num_items``.
      batch_size: users per device step (memory O(batch_size * T * I) booleans).

    Returns:
      ``{"hr@K", "ndcg@K", "num_users", "num_pairs"}``; 0 metrics when no user is given.
    """
    targets = _check_target_args(k, num_items, batch_size, targets)
    excl = check_csr("target_metrics: exclude_csr", exclude_csr, num_items)
    users = np.asarray(users, np.int64)
    n = users.size
    out = {f"hr@{k}": 0.0, f"ndcg@{k}": 0.0, "num_users": n, "num_pairs": n * targets.size}
    if n == 0:
        return out
    sums = _rank_sums(score_all, params, targets, users, excl, k, min(batch_size, n))
    out[f"hr@{k}"] = float(sums[0] / sums[2])
    out[f"ndcg@{k}"] = float(sums[1] / sums[2])
    return out


def split_target_metrics(
    score_all: Callable,
    params: Any,
    split: SplitData,
    targets,
    *,
    num_real_users: int,
    k: int = 50,
    batch_size: int = 256,
) -> dict[str, float]:
    """:func:`target_metrics` over the eligible real users of ``split``, excluding each
    user's training items (``split`` may be poisoned: fake users are never evaluated)."""
    users = eligible_users(split, targets, num_real_users=num_real_users)
    return target_metrics(
        score_all,
        params,
        targets=targets,
        users=users,
        exclude_csr=user_item_csr(split.train, split.num_users),
        num_items=split.num_items,
        k=k,
        batch_size=batch_size,
    )
