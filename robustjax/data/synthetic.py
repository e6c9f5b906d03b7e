"""Synthetic interactions with planted low-rank preferences and Zipf-like popularity."""

import numpy as np

from robustjax.data.table import InteractionTable

_SIGNAL = 3.0  # std of the preference logits; large enough for a model to beat popularity


def _check_synthetic_args(
    num_users: int, num_items: int, dim: int, interactions_per_user: int, popularity_skew: float
) -> None:
    for name, v in (
        ("num_users", num_users),
        ("num_items", num_items),
        ("dim", dim),
        ("interactions_per_user", interactions_per_user),
    ):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"synthetic: {name} must be a positive int, got {name}={v!r}.")
    if interactions_per_user > num_items:
        raise ValueError(
            f"synthetic: interactions_per_user={interactions_per_user} exceeds "
            f"num_items={num_items}; items are sampled without replacement."
        )
    if popularity_skew < 0:
        raise ValueError(f"synthetic: popularity_skew must be >= 0, got {popularity_skew!r}.")


def synthetic(
    *,
    num_users: int = 500,
    num_items: int = 800,
    dim: int = 8,
    interactions_per_user: int = 30,
    popularity_skew: float = 1.0,
    seed: int = 0,
) -> InteractionTable:
    """Samples a learnable synthetic data set.

    Each user's logits over items are ``3 * <p_u, q_i> / sqrt(dim) + skew * log pop_i`` with
    standard normal factors ``p_u, q_i`` and ``pop_i = 1 / rank_i`` (a random permutation of
    ranks 1..num_items, Zipf with exponent 1). Items are drawn without replacement from the
    softmax of the logits (Gumbel top-k); the draw order is the time order. Ratings in 1..5
    grow with the preference term; timestamps increase within each user and interleave
    across users, so temporal splits work too. Rows are grouped by user.

    Args:
        num_users: number of users (U).
        num_items: number of items (I); must be >= interactions_per_user.
        dim: latent dimension D of the planted factors.
        interactions_per_user: items per user.
        popularity_skew: weight of log popularity; 0 gives no popularity bias.
        seed: numpy Generator seed.

    Returns:
        Table with U * interactions_per_user rows, ratings and timestamps.
    """
    _check_synthetic_args(num_users, num_items, dim, interactions_per_user, popularity_skew)
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((num_users, dim), dtype=np.float32)
    q = rng.standard_normal((num_items, dim), dtype=np.float32)
    pref = (_SIGNAL / np.sqrt(dim)) * (p @ q.T)  # [U, I]
    log_pop = -np.log(rng.permutation(num_items) + 1.0).astype(np.float32)
    logits = pref + np.float32(popularity_skew) * log_pop
    perturbed = logits + rng.gumbel(size=logits.shape).astype(np.float32)
    k = interactions_per_user
    top = np.argpartition(-perturbed, k - 1, axis=1)[:, :k]  # [U, k] unordered
    order = np.argsort(-np.take_along_axis(perturbed, top, axis=1), axis=1, kind="stable")
    items = np.take_along_axis(top, order, axis=1)  # draw order = time
    users = np.repeat(np.arange(num_users), k)
    chosen_pref = np.take_along_axis(pref, items, axis=1).reshape(-1)
    noisy = chosen_pref + rng.standard_normal(chosen_pref.shape)
    rating = np.clip(np.rint(3.0 + noisy / _SIGNAL * 1.5), 1, 5).astype(np.float32)
    span = 1e7
    times = np.sort(rng.uniform(0.0, span, size=(num_users, k)), axis=1)
    timestamp = (1.6e9 + times).reshape(-1).astype(np.float64)
    return InteractionTable(
        user=users.astype(np.int32),
        item=items.reshape(-1).astype(np.int32),
        rating=rating,
        timestamp=timestamp,
        user_tokens=np.arange(num_users).astype(str),
        item_tokens=np.arange(num_items).astype(str),
    )
