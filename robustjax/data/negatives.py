"""On-device negative sampling that never returns one of the user's training positives.

Uniform sampling is exact and rejection-free: for user ``u`` with sorted positives
``p_0 < p_1 < ...``, draw ``r`` uniformly in ``[0, I - deg(u))`` and return the ``r``-th
item that is not a positive, ``r + #{t : p_t - t <= r}``. The count is a binary search in
the user's CSR segment of ``q_t = p_t - t`` (non-decreasing), so the cost is one uniform
and ``ceil(log2(max_deg + 1))`` gathers per sample, independent of the density.

Popularity sampling draws from ``pop(i)**alpha`` by inverse CDF, rejects positives, and
retries a fixed number of rounds; a sample still colliding after those rounds falls back to
the exact uniform draw (documented bias, negligible unless a user owns most of the mass).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.types import Array

SAMPLERS = ("uniform", "popularity")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=("user", "item", "indptr", "shifted", "keys", "cdf", "weight"),
    meta_fields=("num_users", "num_items", "search_steps"),
)
@dataclasses.dataclass(frozen=True)
class TrainArrays:
    """Device arrays of the training interactions, built once.

    Attributes:
      user, item: int32 ``[n]`` training pairs (row order of the table).
      indptr: int32 ``[U + 1]`` CSR offsets of each user's positives.
      shifted: int32 ``[n]`` ``p_t - t`` within each user's sorted positives.
      keys: int32 ``[n]`` ``user * I + shifted`` (globally sorted), so one
        ``searchsorted`` replaces the per-segment search; empty when ``U * I >= 2**31``.
      cdf: float32 ``[I]`` popularity CDF (``pop**alpha``, normalised).
      weight: optional float32 ``[n]`` per-interaction weights (row order of ``user``);
        batches multiply their ``mask`` by them, so masked means become weighted means
        (robust training that down-weights suspicious users). None: unweighted.
    """

    user: Array
    item: Array
    indptr: Array
    shifted: Array
    keys: Array
    cdf: Array
    num_users: int
    num_items: int
    search_steps: int
    weight: Array | None = None

    @property
    def num_interactions(self) -> int:
        return int(self.user.shape[0])


def _check_train_pairs(
    user: np.ndarray, item: np.ndarray, num_users: int, num_items: int, weight: np.ndarray | None
) -> np.ndarray | None:
    """Checks the int64 training pairs and returns ``weight`` as float32 (or None)."""
    if user.size == 0:
        raise ValueError("build_train_arrays: the training set is empty.")
    if user.min() < 0 or user.max() >= num_users:
        raise ValueError(
            f"build_train_arrays: user ids must lie in [0, {num_users}), got "
            f"range [{user.min()}, {user.max()}]."
        )
    if item.min() < 0 or item.max() >= num_items:
        raise ValueError(
            f"build_train_arrays: item ids must lie in [0, {num_items}), got "
            f"range [{item.min()}, {item.max()}]."
        )
    if weight is not None:
        weight = np.asarray(weight, np.float32)
        if weight.shape != user.shape:
            raise ValueError(
                f"build_train_arrays: weight must have shape {user.shape} (one "
                f"per training pair), got {weight.shape}."
            )
        if not np.all(np.isfinite(weight)) or weight.min() < 0:
            raise ValueError(
                "build_train_arrays: weight must be finite and >= 0, got range "
                f"[{weight.min()}, {weight.max()}]."
            )
    return weight


def build_train_arrays(
    user: np.ndarray,
    item: np.ndarray,
    num_users: int,
    num_items: int,
    *,
    popularity_alpha: float = 0.75,
    global_keys: bool | None = None,
    weight: np.ndarray | None = None,
) -> TrainArrays:
    """Builds the sampler tables from training pairs (duplicates are ignored).

    ``global_keys`` forces (True) or disables (False) the single-``searchsorted`` path;
    by default it is used whenever ``num_users * num_items < 2**31``. ``weight`` (float
    ``[n]``, >= 0, aligned with ``user``/``item``) adds per-interaction loss weights; the
    default None keeps training bit-identical to the unweighted version.
    """
    user = np.asarray(user, np.int64)
    item = np.asarray(item, np.int64)
    weight = _check_train_pairs(user, item, num_users, num_items, weight)
    if num_users * num_items >= 2**62:
        raise ValueError("build_train_arrays: catalog too large for 64-bit pair keys.")
    keys = np.unique(user * num_items + item)
    su, si = keys // num_items, keys % num_items
    counts = np.bincount(su, minlength=num_users)
    if counts.max() >= num_items:
        bad = int(np.argmax(counts))
        raise ValueError(
            f"build_train_arrays: user {bad} has interacted with every item "
            f"({num_items}); no negative exists. Remove such users (kcore) first."
        )
    indptr = np.concatenate([[0], np.cumsum(counts)])
    shifted = si - (np.arange(keys.size) - indptr[su])
    pop = np.bincount(item, minlength=num_items).astype(np.float64) ** popularity_alpha
    pop = pop + 1e-12
    cdf = np.cumsum(pop / pop.sum())
    fits = num_users * num_items < 2**31 if global_keys is None else global_keys
    if fits and num_users * num_items >= 2**31:
        raise ValueError(
            "build_train_arrays: global_keys=True needs num_users * num_items "
            f"< 2**31, got {num_users} * {num_items}."
        )
    global_keys = (su * num_items + shifted) if fits else np.zeros(0, np.int64)
    return TrainArrays(
        user=jnp.asarray(user, jnp.int32),
        item=jnp.asarray(item, jnp.int32),
        indptr=jnp.asarray(indptr, jnp.int32),
        shifted=jnp.asarray(shifted, jnp.int32),
        keys=jnp.asarray(global_keys, jnp.int32),
        cdf=jnp.asarray(cdf, jnp.float32),
        num_users=num_users,
        num_items=num_items,
        search_steps=int(np.ceil(np.log2(counts.max() + 1))) + 1,
        weight=None if weight is None else jnp.asarray(weight, jnp.float32),
    )


def _count_le(data: TrainArrays, user: Array, value: Array) -> Array:
    """``#{t in segment(user) : shifted[t] <= value}``: one ``searchsorted`` in the global
    keys when they fit in int32, else a batched binary search inside each segment."""
    if data.keys.shape[0]:
        pos = jnp.searchsorted(data.keys, user * data.num_items + value, side="right")
        return pos.astype(jnp.int32) - data.indptr[user]
    lo = data.indptr[user]
    hi = data.indptr[user + 1]
    start = lo

    def body(_, carry):
        lo, hi = carry
        mid = (lo + hi) // 2
        go_right = (mid < hi) & (data.shifted[jnp.minimum(mid, data.shifted.shape[0] - 1)] <= value)
        return jnp.where(go_right, mid + 1, lo), jnp.where(go_right, hi, mid)

    lo, _ = jax.lax.fori_loop(0, data.search_steps, body, (lo, hi), unroll=True)
    return lo - start


def is_positive(data: TrainArrays, user: Array, item: Array) -> Array:
    """Whether ``(user, item)`` is a training pair: binary search of the sorted positives
    ``p_t = shifted_t + t`` in the user's segment."""
    lo = data.indptr[user]
    hi = data.indptr[user + 1]

    def body(_, carry):
        lo, hi = carry
        mid = (lo + hi) // 2
        idx = jnp.minimum(mid, data.shifted.shape[0] - 1)
        p_mid = data.shifted[idx] + (idx - data.indptr[user])
        go_right = (mid < hi) & (p_mid < item)
        return jnp.where(go_right, mid + 1, lo), jnp.where(go_right, hi, mid)

    lo, _ = jax.lax.fori_loop(0, data.search_steps, body, (lo, hi), unroll=True)
    idx = jnp.minimum(lo, data.shifted.shape[0] - 1)
    p_lo = data.shifted[idx] + (idx - data.indptr[user])
    return (lo < data.indptr[user + 1]) & (p_lo == item)


def sample_uniform(data: TrainArrays, user: Array, u01: Array) -> Array:
    """Exact uniform non-positive items for ``user`` given uniforms ``u01`` in [0, 1).

    ``u01`` may have extra trailing dims (``[B, N]`` for ``N`` negatives per example).
    """
    if u01.ndim > user.ndim:
        user = jnp.broadcast_to(user[..., None], u01.shape)
    deg = data.indptr[user + 1] - data.indptr[user]
    free = data.num_items - deg
    r = jnp.minimum(jnp.floor(u01 * free).astype(jnp.int32), free - 1)
    return r + _count_le(data, user, r)


def sample_popularity(
    data: TrainArrays, user: Array, key: Array, shape: tuple[int, ...], *, rounds: int = 4
) -> Array:
    """Popularity-weighted non-positive items (``pop**alpha``), ``rounds`` rejection tries."""
    if shape[: user.ndim] != user.shape:
        raise ValueError(
            f"sample_popularity: shape {shape} must start with user.shape {user.shape}."
        )
    if len(shape) > user.ndim:
        user = jnp.broadcast_to(user[..., None], shape)
    k_fallback, k_rounds = jax.random.split(key)
    out = sample_uniform(data, user, jax.random.uniform(k_fallback, shape))
    found = jnp.zeros(shape, bool)
    u = jax.random.uniform(k_rounds, (rounds, *shape))
    for r in range(rounds):
        cand = jnp.minimum(
            jnp.searchsorted(data.cdf, u[r], side="right"), data.num_items - 1
        ).astype(jnp.int32)
        ok = (~found) & ~is_positive(data, user, cand)
        out = jnp.where(ok, cand, out)
        found = found | ok
    return out


def sample_negatives(
    data: TrainArrays, user: Array, key: Array, *, num: int = 1, kind: str = "uniform"
) -> Array:
    """``num`` negatives per user (``[B]`` if ``num == 1`` else ``[B, num]``)."""
    shape = user.shape if num == 1 else (*user.shape, num)
    if kind == "uniform":
        return sample_uniform(data, user, jax.random.uniform(key, shape))
    if kind == "popularity":
        return sample_popularity(data, user, key, shape)
    raise ValueError(f"sample_negatives: kind={kind!r} is unknown; expected one of {SAMPLERS}.")
