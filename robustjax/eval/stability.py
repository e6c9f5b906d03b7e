"""Stability of recommendations under perturbation: clean vs perturbed top-K lists and scores.

Pure jax, jittable and vmappable; every function returns one value per user (``[B]``).

Padding
-------
Top-K lists are ``int32[B, K]`` item ids in rank order, each list holding distinct items.
A user with fewer than ``K`` candidates has ``-1`` ("no item") in the trailing slots. Any
negative id is padding: it never matches anything (not even another ``-1``) and is not
counted in a list's size, so it adds nothing to an intersection or a union.
"""

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

_F32 = jnp.float32


def _check_lists(name: str, clean_top, pert_top) -> None:
    if clean_top.ndim != 2 or clean_top.shape != pert_top.shape:
        raise ValueError(
            f"{name}: clean_top and pert_top must both be [B, K] with the same shape, got "
            f"clean_top{tuple(clean_top.shape)} and pert_top{tuple(pert_top.shape)}."
        )
    for arg, x in (("clean_top", clean_top), ("pert_top", pert_top)):
        if not jnp.issubdtype(x.dtype, jnp.integer):
            raise TypeError(
                f"{name}: {arg} must hold integer item ids, got dtype {x.dtype}; pass the "
                "indices from jax.lax.top_k, not the scores."
            )


def _matches(a: Int[Array, "B K"], b: Int[Array, "B L"]) -> Bool[Array, "B K L"]:
    """``m[u, i, j] = a[u, i] == b[u, j]`` for real items (padding ``< 0`` never matches)."""
    return (a[:, :, None] == b[:, None, :]) & (a >= 0)[:, :, None]


def jaccard_at_k(clean_top: Int[Array, "B K"], pert_top: Int[Array, "B K"]) -> Float[Array, " B"]:
    """Per-user Jaccard similarity of the clean and perturbed top-K item sets.

    ``J = |A ∩ B| / |A ∪ B|`` with ``A``, ``B`` the sets of real (non-negative) items of each
    list; order is ignored and ``J`` is symmetric. ``J = 1`` when both lists are empty
    (identical, nothing changed), so the result is never NaN.

    Args:
      clean_top: Int[Array, "B K"] clean top-K item ids, ``-1`` for padding.
      pert_top: Int[Array, "B K"] perturbed top-K item ids, ``-1`` for padding.

    Returns:
      Float[Array, " B"] float32 in ``[0, 1]``.
    """
    _check_lists("jaccard_at_k", clean_top, pert_top)
    inter = jnp.sum(jnp.any(_matches(clean_top, pert_top), axis=2), axis=1, dtype=jnp.int32)
    size_a = jnp.sum(clean_top >= 0, axis=1, dtype=jnp.int32)
    size_b = jnp.sum(pert_top >= 0, axis=1, dtype=jnp.int32)
    union = size_a + size_b - inter
    ratio = inter.astype(_F32) / jnp.maximum(union, 1).astype(_F32)
    return jnp.where(union > 0, ratio, _F32(1.0))


def _prefix_overlaps(clean_top, pert_top):
    """``X_d`` for d = 1..K [B, K], each list's real length ``L`` [B] (the larger one)."""
    # X_d = #{(i, j) : match, i < d, j < d}: the diagonal of the 2-D prefix sum of matches.
    matches = _matches(clean_top, pert_top).astype(jnp.int32)
    prefix = jnp.cumsum(jnp.cumsum(matches, axis=1), axis=2)
    overlap = jnp.diagonal(prefix, axis1=1, axis2=2).astype(_F32)  # [B, K], X_1 .. X_K
    length = jnp.maximum(
        jnp.sum(clean_top >= 0, axis=1, dtype=jnp.int32),
        jnp.sum(pert_top >= 0, axis=1, dtype=jnp.int32),
    )
    return overlap, length


def _check_p(where: str, p) -> None:
    if isinstance(p, (int, float)) and not 0.0 < p <= 1.0:
        raise ValueError(
            f"{where}: p must lie in (0, 1], got p={p!r}; typical values are 0.9 (the top 10 "
            "ranks carry ~65% of the weight) or 0.98."
        )


def rbo_at_k(
    clean_top: Int[Array, "B K"], pert_top: Int[Array, "B K"], *, p: float | Array = 0.9
) -> Float[Array, " B"]:
    """Per-user extrapolated rank-biased overlap ``RBO_ext`` of two top-K lists (Webber,
    Moffat and Zobel, ACM TOIS 28(4), 2010, eq. 32), for lists evaluated to depth ``L``::

        RBO_ext = X_L / L * p^L + (1 - p) * sum_{d=1..L} p^(d-1) * X_d / d

    with ``X_d`` the overlap of the two length-``d`` prefixes: the agreement seen down to
    ``L`` is assumed to continue below it. Identical lists give 1, disjoint ones 0.
    ``L`` is the larger number of real (non ``-1``) items of the two lists; both empty
    gives 1. ``p`` in ``(0, 1)``, may be traced.

    Args:
      clean_top: Int[Array, "B K"] clean top-K item ids in rank order, ``-1`` for padding.
      pert_top: Int[Array, "B K"] perturbed top-K item ids in rank order, ``-1`` for padding.
      p: persistence; smaller values weight the top more.

    Returns:
      Float[Array, " B"] float32 in ``[0, 1]``.
    """
    _check_lists("rbo_at_k", clean_top, pert_top)
    _check_p("rbo_at_k", p)
    if isinstance(p, (int, float)) and p == 1.0:
        raise ValueError("rbo_at_k: p must be < 1 for RBO_ext (p = 1 gives no extrapolation).")
    overlap, length = _prefix_overlaps(clean_top, pert_top)
    k = clean_top.shape[1]
    depth = jnp.arange(1, k + 1, dtype=_F32)
    pp = jnp.asarray(p, _F32)
    in_depth = jnp.arange(1, k + 1, dtype=jnp.int32)[None, :] <= length[:, None]
    weight = jnp.where(in_depth, (1 - pp) * jnp.power(pp, depth - 1)[None, :], _F32(0.0))
    head = jnp.sum(weight * overlap / depth[None, :], axis=1)
    last = jnp.take_along_axis(overlap, jnp.maximum(length - 1, 0)[:, None], axis=1)[:, 0]
    tail = last / jnp.maximum(length, 1).astype(_F32) * jnp.power(pp, length.astype(_F32))
    return jnp.where(length > 0, head + tail, _F32(1.0))


def rbo_normalized_at_k(
    clean_top: Int[Array, "B K"], pert_top: Int[Array, "B K"], *, p: float | Array = 0.9
) -> Float[Array, " B"]:
    """Per-user normalised truncated rank-biased overlap of two top-K lists (reported as
    ``rbo_norm@K``; :func:`rbo_at_k` is Webber et al.'s extrapolated ``RBO_ext``).

    Rank-biased overlap (Webber, Moffat and Zobel, "A similarity measure for indefinite
    rankings", ACM TOIS 28(4), 2010) weights the agreement at each depth ``d`` geometrically.
    With ``X_d = |A_{1:d} ∩ B_{1:d}|`` the overlap of the two length-``d`` prefixes::

        RBO@K = (1 - p) / (1 - p^K) * sum_{d=1..K} p^(d-1) * X_d / d

    The plain truncated sum ``(1 - p) * sum_{d=1..K} p^(d-1) * X_d / d`` (Webber et al.'s
    ``RBO@k`` lower bound) is only ``1 - p^K`` for two identical finite lists, because the
    weight of the depths beyond ``K`` is missing. Dividing by that total weight,
    ``sum_{d<=K} p^(d-1) = (1 - p^K) / (1 - p)``, gives 1 for identical lists and 0 for
    disjoint ones, and makes the value a weighted mean of the prefix agreements ``X_d / d``.

    Padding: with ``L`` the larger number of real items of the two lists, the depths run
    to ``L`` instead of ``K`` (the normaliser is ``(1 - p) / (1 - p^L)``), so two identical
    lists padded to ``K`` still score 1. Both lists empty gives 1 (identical), never NaN.
    ``p = 1`` gives the unweighted mean of ``X_d / d`` (average overlap).

    Cost: one ``[B, K, K]`` equality tensor and two cumulative sums, ``O(B K^2)``; meant for
    ``K <= ~100``.

    Args:
      clean_top: Int[Array, "B K"] clean top-K item ids in rank order, ``-1`` for padding.
      pert_top: Int[Array, "B K"] perturbed top-K item ids in rank order, ``-1`` for padding.
      p: persistence in ``(0, 1]``, may be traced; smaller values weight the top more.
        Webber et al.: the top ``d`` ranks carry ``1 - p^d`` of the (infinite-list) weight.

    Returns:
      Float[Array, " B"] float32 in ``[0, 1]``.
    """
    _check_lists("rbo_normalized_at_k", clean_top, pert_top)
    _check_p("rbo_normalized_at_k", p)
    k = clean_top.shape[1]
    overlap, length = _prefix_overlaps(clean_top, pert_top)
    depth = jnp.arange(1, k + 1, dtype=_F32)
    in_depth = jnp.arange(1, k + 1, dtype=jnp.int32)[None, :] <= length[:, None]  # [B, K]
    decay = jnp.power(jnp.asarray(p, _F32), depth - _F32(1.0))  # p^(d-1)
    weight = jnp.where(in_depth, decay[None, :], _F32(0.0))
    total = jnp.sum(weight, axis=1)
    rbo = jnp.sum(weight * overlap / depth[None, :], axis=1) / jnp.where(
        total > 0, total, _F32(1.0)
    )
    return jnp.where(length > 0, rbo, _F32(1.0))


def _check_scores(name: str, clean_scores, pert_scores, where) -> None:
    if clean_scores.ndim != 2 or clean_scores.shape != pert_scores.shape:
        raise ValueError(
            f"{name}: clean_scores and pert_scores must both be [B, I] with the same shape, "
            f"got clean_scores{tuple(clean_scores.shape)} and pert_scores"
            f"{tuple(pert_scores.shape)}."
        )
    if where is not None:
        if where.shape != clean_scores.shape:
            raise ValueError(
                f"{name}: where must match the scores' shape {tuple(clean_scores.shape)}, got "
                f"where{tuple(where.shape)}."
            )
        if where.dtype != jnp.bool_:
            raise TypeError(f"{name}: where must be bool, got dtype {where.dtype}.")


def _masked_mean(values, where):
    if where is None:
        return jnp.mean(values, axis=1)
    count = jnp.sum(where, axis=1, dtype=jnp.int32)
    total = jnp.sum(values, axis=1, where=where)
    return total / jnp.maximum(count, 1).astype(values.dtype)


def prediction_shift(
    clean_scores: Float[Array, "B I"],
    pert_scores: Float[Array, "B I"],
    where: Bool[Array, "B I"] | None = None,
) -> Float[Array, " B"]:
    """Per-user mean absolute score change over the candidate items.

    ``shift_u = sum_{i in C_u} |s'_ui - s_ui| / |C_u|`` with ``C_u = {i : where[u, i]}``
    (all items when ``where`` is None). Users without candidates get 0, never NaN. Masked
    entries may hold ``-inf``/NaN (e.g. excluded items); they are never read into the sum.

    Args:
      clean_scores: Float[Array, "B I"] scores before the perturbation.
      pert_scores: Float[Array, "B I"] scores after it.
      where: optional Bool[Array, "B I"] candidate mask.

    Returns:
      Float[Array, " B"] in the scores' float dtype, ``>= 0``.
    """
    _check_scores("prediction_shift", clean_scores, pert_scores, where)
    return _masked_mean(jnp.abs(pert_scores - clean_scores), where)


def mean_score_change(
    clean_scores: Float[Array, "B I"],
    pert_scores: Float[Array, "B I"],
    where: Bool[Array, "B I"] | None = None,
) -> Float[Array, " B"]:
    """Per-user mean signed score change ``sum_{i in C_u} (s'_ui - s_ui) / |C_u|``.

    The signed counterpart of ``prediction_shift`` (same arguments and masking): negative
    when the perturbation lowers scores on average. Users without candidates get 0.

    Returns:
      Float[Array, " B"] in the scores' float dtype.
    """
    _check_scores("mean_score_change", clean_scores, pert_scores, where)
    return _masked_mean(pert_scores - clean_scores, where)


def target_hit_ratio(pert_top: Int[Array, "B K"], targets: Int[Array, " T"]) -> Float[Array, " B"]:
    """Per-user fraction of the attack's target items that reach the (perturbed) top-K.

    ``ratio_u = |top_u ∩ T| / |T|``, for targeted (promotion) attacks. Negative ids are
    padding in both arguments: they never match and do not count in ``|T|``, so a
    fixed-size ``targets`` array may be padded with ``-1``. ``|T| = 0`` gives 0.

    Args:
      pert_top: Int[Array, "B K"] perturbed top-K item ids, ``-1`` for padding.
      targets: Int[Array, " T"] distinct target item ids, ``-1`` for padding.

    Returns:
      Float[Array, " B"] float32 in ``[0, 1]``.
    """
    if pert_top.ndim != 2 or targets.ndim != 1:
        raise ValueError(
            "target_hit_ratio: pert_top must be [B, K] and targets [T], got "
            f"pert_top{tuple(pert_top.shape)} and targets{tuple(targets.shape)}."
        )
    for arg, x in (("pert_top", pert_top), ("targets", targets)):
        if not jnp.issubdtype(x.dtype, jnp.integer):
            raise TypeError(f"target_hit_ratio: {arg} must hold item ids, got dtype {x.dtype}.")
    real = targets >= 0  # [T]
    hit = (pert_top[:, :, None] == targets[None, None, :]) & real[None, None, :]  # [B, K, T]
    hits = jnp.sum(jnp.any(hit, axis=1), axis=1, dtype=jnp.int32)  # [B]
    num_targets = jnp.maximum(jnp.sum(real, dtype=jnp.int32), 1).astype(_F32)
    return hits.astype(_F32) / num_targets
