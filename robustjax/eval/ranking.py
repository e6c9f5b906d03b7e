"""Per-user top-K ranking metrics and AUC on the device (pure jax, jittable, static ``ks``).

Candidates, ties and targets
----------------------------
For one user with scores ``s`` over items ``0..I-1``, the *candidates* are the items that are
not excluded (``exclude`` holds train items, and valid items when scoring test). Excluded
items are removed from the candidate list entirely: they neither occupy ranks nor count as
negatives. NaN scores are treated as ``-inf``.

The rank of candidate ``i`` is::

    rank(i) = 1 + #{candidates j : s_j > s_i} + #{candidates j : s_j == s_i and j < i}

i.e. ties are broken by the lower item id (column) first. This is exactly the order of
``jax.lax.top_k`` and of a stable descending sort, so the metrics are deterministic.

``T`` is the set of target items (``target[u, i]``), ``|T|`` counts *all* of them. A target that
is excluded, or whose score is ``-inf``, is never a hit (it still counts in ``|T|``). Users with
``|T| = 0`` get ``valid = 0`` and every metric 0 (finite), so masked means ignore them.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

METRIC_NAMES = ("recall", "ndcg", "hr", "precision", "mrr")


def metric_keys(ks: tuple[int, ...]) -> tuple[str, ...]:
    """The keys of ``rank_metrics``'s output (without ``valid``), e.g. ``"ndcg@20"``."""
    return tuple(f"{m}@{k}" for k in ks for m in METRIC_NAMES) + ("auc",)


def single_target_metrics(
    rank: Int[Array, "*B"], k: int
) -> tuple[Float[Array, "*B"], Float[Array, "*B"]]:
    """HR@k and NDCG@k of one target per row from its 0-based ``rank`` (the number of
    candidates ranked above it): ``hr = 1[rank < k]``, ``ndcg = hr / log2(rank + 2)``. With
    one target, recall@k equals hr@k and IDCG is 1."""
    hit = rank < k
    gain = 1.0 / jnp.log2(rank.astype(jnp.float32) + 2.0)
    return hit.astype(jnp.float32), jnp.where(hit, gain, jnp.zeros_like(gain))


def _check_ks(ks, num_candidates: int) -> tuple[int, ...]:
    if isinstance(ks, int) or not isinstance(ks, (tuple, list)) or len(ks) == 0:
        raise TypeError(f"rank_metrics: ks must be a non-empty tuple of ints, got ks={ks!r}.")
    for k in ks:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"rank_metrics: every K must be an int >= 1, got ks={ks!r}.")
    if max(ks) > num_candidates:
        raise ValueError(
            f"rank_metrics: K={max(ks)} exceeds the number of candidate items per user "
            f"({num_candidates}); lower ks={tuple(ks)!r} or score more candidates."
        )
    return tuple(ks)


def rank_metrics(
    scores: Float[Array, "B I"],
    target: Bool[Array, "B I"],
    exclude: Bool[Array, "B I"],
    *,
    ks: tuple[int, ...],
    auc: bool = True,
) -> dict[str, Float[Array, " B"]]:
    """Per-user Recall, NDCG, HR, Precision, MRR at each K, and AUC.

    With ``hit_r = 1`` if the candidate at rank ``r`` is a target (ranks as in the module
    docstring), ``hits@K = sum_{r<=K} hit_r`` and ``n = |T|``:

    - ``recall@K    = hits@K / n``  (not ``/ min(n, K)``)
    - ``ndcg@K      = DCG@K / IDCG@K``, ``DCG@K = sum_{r<=K} hit_r / log2(r + 1)``,
      ``IDCG@K = sum_{r<=min(n, K)} 1 / log2(r + 1)`` (binary relevance, Jarvelin and
      Kekalainen 2002)
    - ``hr@K        = 1[hits@K > 0]``
    - ``precision@K = hits@K / K``
    - ``mrr@K       = 1 / r_1`` if the first hit has rank ``r_1 <= K``, else 0
    - ``auc = 1/(n * |N|) * sum_{t in T} sum_{j in N} (1[s_t > s_j] + 1/2 * 1[s_t == s_j])``
      where ``N`` is the non-excluded non-target candidates; an excluded target loses all its
      pairs; ``auc = 0`` when ``N`` is empty. Exact: each row is sorted once and every
      target located by binary search, so memory is O(B * I), time O(B * I * log I).

    Args:
      scores: Float[Array, "B I"] scores; higher is better.
      target: Bool[Array, "B I"] held-out positives.
      exclude: Bool[Array, "B I"] items removed from the candidate list.
      ks: static cutoffs, each ``1 <= K <= I``.
      auc: static; False skips AUC (its per-row sort dominates the cost on CPU), for
        sweeps over many perturbation levels.

    Returns:
      ``{"recall@K", "ndcg@K", "hr@K", "precision@K", "mrr@K" for K in ks, "auc",
      "valid"}``, each Float[Array, " B"] float32; ``valid`` is 1.0 for users with a target.
    """
    if scores.ndim != 2 or target.shape != scores.shape or exclude.shape != scores.shape:
        raise ValueError(
            "rank_metrics: scores, target and exclude must all be [B, I], got "
            f"scores{scores.shape}, target{target.shape}, exclude{exclude.shape}."
        )
    if target.dtype != jnp.bool_ or exclude.dtype != jnp.bool_:
        raise TypeError(
            f"rank_metrics: target and exclude must be bool, got target.dtype={target.dtype}, "
            f"exclude.dtype={exclude.dtype}; pass masks such as `x > 0`."
        )
    ks = _check_ks(ks, scores.shape[1])
    scores = scores.astype(jnp.float32)
    top_scores, top_items = top_candidates(scores, exclude, max(ks))
    out = metrics_from_top(top_items, top_scores, target, ks=ks)
    valid = out["valid"] > 0
    num_targets = jnp.sum(target, axis=1, dtype=jnp.int32)
    zero = jnp.float32(0.0)
    if auc:
        out["auc"] = jnp.where(valid, _auc(scores, target, exclude, num_targets), zero)
    return out


def top_candidates(
    scores: Float[Array, "B I"], exclude: Bool[Array, "B I"], k: int
) -> tuple[Float[Array, "B K"], Int[Array, "B K"]]:
    """Top-``k`` (scores, items) among the non-excluded candidates; ties by lower item id.

    Excluded items (and NaN scores) are -inf and never count as hits.
    """
    masked = jnp.where(
        exclude | jnp.isnan(scores), jnp.float32(-jnp.inf), scores.astype(jnp.float32)
    )
    return jax.lax.top_k(masked, k)


def metrics_from_top(
    top_items: Int[Array, "B K"],
    top_scores: Float[Array, "B K"],
    target: Bool[Array, "B I"],
    *,
    ks: tuple[int, ...],
) -> dict[str, Float[Array, " B"]]:
    """Recall/NDCG/HR/Precision/MRR at each K (<= the list length) from a top list.

    Lets one ``top_k`` serve several target sets (e.g. head and tail items) and the
    stability metrics. Same definitions as :func:`rank_metrics`; no AUC.
    """
    kmax = max(ks)
    if kmax > top_items.shape[1]:
        raise ValueError(
            f"metrics_from_top: ks={ks} exceed the top-list length {top_items.shape[1]}."
        )
    top_items, top_scores = top_items[:, :kmax], top_scores[:, :kmax]
    neg_inf = jnp.float32(-jnp.inf)
    num_targets = jnp.sum(target, axis=1, dtype=jnp.int32)  # [B]
    valid = num_targets > 0
    n = jnp.maximum(num_targets, 1).astype(jnp.float32)
    # Hits and DCG at every K are one small matmul with a constant
    # [Kmax, len(ks)] "rank r <= K" table (cheaper to compile than cumsums). HIGHEST
    # precision keeps the f32 discounts exact on accelerators (no TF32/bf16 passes).
    hit = jnp.take_along_axis(target, top_items, axis=1) & (top_scores > neg_inf)
    hitf = hit.astype(jnp.float32)
    discount = 1.0 / np.log2(np.arange(2, kmax + 2))  # [Kmax], gain at rank r is 1/log2(r+1)
    within = np.arange(kmax)[:, None] < np.asarray(ks)[None, :]  # [Kmax, len(ks)]
    dot = functools.partial(jnp.dot, precision=jax.lax.Precision.HIGHEST)
    hits_k = dot(hitf, jnp.asarray(within, jnp.float32))  # [B, len(ks)]
    dcg_k = dot(hitf, jnp.asarray(discount[:, None] * within, jnp.float32))
    cum_ideal = jnp.asarray(np.cumsum(discount), jnp.float32)
    first_hit = jnp.argmax(hit, axis=1)  # 0 when there is no hit; guarded by any_hit
    any_hit = jnp.any(hit, axis=1)

    k_arr = jnp.asarray(ks, jnp.int32)[None, :]
    ideal = cum_ideal[jnp.clip(jnp.minimum(num_targets[:, None], k_arr), 1, kmax) - 1]
    stacked = {
        "recall": hits_k / n[:, None],
        "ndcg": dcg_k / ideal,
        "hr": (hits_k > 0).astype(jnp.float32),
        "precision": hits_k / k_arr.astype(jnp.float32),
        "mrr": jnp.where(
            any_hit[:, None] & (first_hit[:, None] < k_arr),
            1.0 / (first_hit + 1).astype(jnp.float32)[:, None],
            jnp.float32(0.0),
        ),
    }
    zero = jnp.float32(0.0)
    stacked = {m: jnp.where(valid[:, None], v, zero) for m, v in stacked.items()}
    out = {f"{m}@{k}": stacked[m][:, j] for j, k in enumerate(ks) for m in METRIC_NAMES}
    out["valid"] = valid.astype(jnp.float32)
    return out


def _auc(scores, target, exclude, num_targets):
    """Exact per-user AUC with ties counted 1/2 (see ``rank_metrics``).

    Each row's negative scores are sorted once and every item is located in them by binary
    search (left side: negatives strictly below; right side: at or below). Scores are
    sorted as order-preserving int32 keys: XLA:CPU sorts a single int32 operand several
    times faster than floats or multi-operand sorts. Non-negatives get the key INT32_MAX,
    above every real key (+inf included), and are cut off by clipping at the negative count.
    """
    negative = ~(exclude | target)
    num_neg = jnp.sum(negative, axis=1, dtype=jnp.int32)  # [B]
    keys = _order_keys(scores)
    neg_sorted = jnp.sort(jnp.where(negative, keys, jnp.iinfo(jnp.int32).max), axis=1)
    below = jnp.minimum(_search_left(neg_sorted, keys), num_neg[:, None])
    at_or_below = jnp.minimum(_search_right(neg_sorted, keys), num_neg[:, None])
    pairs = (below + at_or_below).astype(jnp.float32) * jnp.float32(0.5)
    won = jnp.sum(jnp.where(target & ~exclude, pairs, jnp.float32(0.0)), axis=1)
    denom = num_targets.astype(jnp.float32) * num_neg.astype(jnp.float32)
    return jnp.where(denom > 0, won / jnp.maximum(denom, 1.0), jnp.float32(0.0))


def _order_keys(scores: Float[Array, "B I"]) -> Array:
    """int32 keys with ``key(a) < key(b)`` iff ``a < b`` (NaN as -inf, -0.0 as +0.0)."""
    scores = jnp.where(jnp.isnan(scores), jnp.float32(-jnp.inf), scores)
    scores = jnp.where(scores == 0, jnp.float32(0.0), scores)
    bits = jax.lax.bitcast_convert_type(scores, jnp.int32)
    # Negative floats order in reverse as sign-magnitude ints: flip their magnitude bits.
    return jnp.where(bits < 0, bits ^ jnp.int32(0x7FFFFFFF), bits)


_search_left = jax.vmap(functools.partial(jnp.searchsorted, side="left"))
_search_right = jax.vmap(functools.partial(jnp.searchsorted, side="right"))
