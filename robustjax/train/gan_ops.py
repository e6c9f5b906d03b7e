"""Building blocks of IRGAN-style training (:mod:`robustjax.train.gan`): the generator's
softmax over all items, on-device categorical draws (with optional importance mixing
toward the user's positives), and the REINFORCE and Gumbel-softmax generator losses."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from robustjax.data.negatives import TrainArrays
from robustjax.models.base import ModelFns

D_LOSSES = ("bce", "bpr")
REWARDS: dict[str, Callable[[Array], Array]] = {
    "log1pexp": jax.nn.softplus,  # log(1 + exp(f)), IRGAN paper
    "irgan": lambda f: 2.0 * jax.nn.sigmoid(f) - 1.0,  # IRGAN code: 2 (sigmoid(f) - 0.5)
}
ESTIMATORS = ("reinforce", "gumbel")
BASELINES = ("none", "loo", "expected")


def _choice(where: str, name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{where}: {name}={value!r} is unknown; expected one of {tuple(choices)}.")


def user_positives(data: TrainArrays) -> Int[Array, "U P"]:
    """Each user's training positives, padded with ``num_items`` to the largest degree.

    Built once on the host from the sampler's CSR (``item_t = shifted_t + t - indptr[u]``).
    """
    indptr = np.asarray(data.indptr)
    shifted = np.asarray(data.shifted)
    deg = np.diff(indptr)
    user = np.repeat(np.arange(data.num_users), deg)
    local = np.arange(shifted.size) - indptr[user]
    out = np.full((data.num_users, max(int(deg.max()), 1)), data.num_items, np.int32)
    out[user, local] = shifted + local
    return jnp.asarray(out)


def positive_mask(
    positives: Int[Array, "U P"], users: Int[Array, " B"], num_items: int
) -> Bool[Array, "B I"]:
    """Dense mask of each batch user's training positives."""
    rows = positives[users]
    mask = jnp.zeros((users.shape[0], num_items + 1), bool)
    mask = mask.at[jnp.arange(users.shape[0])[:, None], rows].set(True)
    return mask[:, :num_items]


def generator_log_probs(
    g_fns: ModelFns, g_params, users: Int[Array, " B"], *, temperature: float
) -> Float[Array, "B I"]:
    """``log p_theta(i | u) = log_softmax_i(g(u, i) / temperature)`` over all items."""
    return jax.nn.log_softmax(g_fns.score_all(g_params, users) / temperature, axis=-1)


def sample_categorical(log_p: Float[Array, "B I"], *, num: int, key: Array) -> Int[Array, "B N"]:
    """``num`` i.i.d. draws per row from ``softmax(log_p)`` by inverse CDF.

    One uniform per draw and a binary search in the row's cumulative sum (cheaper than
    Gumbel-max, which needs ``I`` random numbers per draw). Items of probability 0
    (``log_p = -inf``) are never returned.
    """
    probs = jax.nn.softmax(log_p, axis=-1)
    cdf = jnp.cumsum(probs, axis=-1)
    u = jax.random.uniform(key, (log_p.shape[0], num)) * cdf[:, -1:]
    idx = jax.vmap(lambda c, v: jnp.searchsorted(c, v, side="right"))(cdf, u)
    # float rounding can put u at the very top of the CDF: fall back to the last live item
    last = log_p.shape[1] - 1 - jnp.argmax(probs[:, ::-1] > 0, axis=-1)
    return jnp.minimum(idx, last[:, None]).astype(jnp.int32)


def draw_for_generator(
    log_p: Float[Array, "B I"],
    positives_rows: Int[Array, "B P"],
    *,
    num: int,
    importance_mix: float,
    key: Array,
) -> tuple[Int[Array, "B N"], Float[Array, "B N"]]:
    """Draws for the REINFORCE step and their importance weights ``p / q``.

    With ``importance_mix = lambda > 0`` each draw comes from the user's positives
    (uniformly) with probability ``lambda``, else from ``p``; ``positives_rows`` are the
    padded positive lists of the batch users (pad value ``I``). Weights are 1 when
    ``lambda = 0``.
    """
    k_p, k_pick, k_mix = jax.random.split(key, 3)
    log_p = jax.lax.stop_gradient(log_p)
    items = sample_categorical(log_p, num=num, key=k_p)
    if importance_mix == 0.0:
        return items, jnp.ones(items.shape, log_p.dtype)
    num_items = log_p.shape[1]
    deg = jnp.sum(positives_rows < num_items, axis=-1)  # [B]
    deg1 = jnp.maximum(deg, 1)[:, None]
    degf = deg1.astype(log_p.dtype)
    j = jnp.minimum(
        jnp.floor(jax.random.uniform(k_pick, items.shape) * degf).astype(jnp.int32), deg1 - 1
    )
    pos_items = jnp.take_along_axis(positives_rows, j, axis=-1)
    use_pos = (jax.random.uniform(k_mix, items.shape) < importance_mix) & (deg[:, None] > 0)
    items = jnp.where(use_pos, pos_items, items)
    p = jnp.exp(jnp.take_along_axis(log_p, items, axis=-1))
    is_pos = jnp.any(positives_rows[:, None, :] == items[:, :, None], axis=-1)
    q = (1.0 - importance_mix) * p + importance_mix * is_pos.astype(p.dtype) / degf
    return items, p / q


def reinforce_loss(
    log_p: Float[Array, "B I"],
    items: Int[Array, "B K"],
    rewards: Float[Array, "B K"],
    *,
    baseline: str = "loo",
    weights: Float[Array, "B K"] | None = None,
    expected_reward: Float[Array, " B"] | None = None,
) -> Float[Array, " B"]:
    """Per-example REINFORCE surrogate: its gradient is minus the estimate of
    ``grad E_{i~p}[r(i)]``.

    ``-(1/K) sum_k sg(w_k (r_k - b_k)) log p(i_k)``; ``b_k`` is 0 (``"none"``), the mean
    reward of the other draws (``"loo"``, needs ``K >= 2``), or ``expected_reward``
    (``"expected"``). Every choice keeps the estimate unbiased: ``b_k`` does not depend on
    draw ``k`` and ``E_q[w grad log p] = 0``. Rewards, weights and baselines are constants
    (``stop_gradient``).
    """
    _choice("reinforce_loss", "baseline", baseline, BASELINES)
    r = jax.lax.stop_gradient(rewards)
    k = r.shape[-1]
    if baseline == "loo":
        if k < 2:
            raise ValueError(
                f"reinforce_loss: baseline='loo' needs >= 2 draws per example, "
                f"got K={k}; raise the number of samples or use baseline='none'."
            )
        b = (jnp.sum(r, axis=-1, keepdims=True) - r) / (k - 1)
    elif baseline == "expected":
        if expected_reward is None:
            raise ValueError("reinforce_loss: baseline='expected' needs expected_reward=[B].")
        b = jax.lax.stop_gradient(expected_reward)[:, None]
    else:
        b = jnp.zeros_like(r)
    adv = r - b if weights is None else jax.lax.stop_gradient(weights) * (r - b)
    logp_k = jnp.take_along_axis(log_p, items, axis=-1)
    return -jnp.mean(adv * logp_k, axis=-1)


def gumbel_loss(
    log_p: Float[Array, "B I"], reward_all: Float[Array, "B I"], *, num: int, tau: float, key: Array
) -> Float[Array, " B"]:
    """Per-example Gumbel-softmax surrogate ``-(1/K) sum_k sum_i y_ki r_i`` with
    ``y_k = softmax((log p + g_k) / tau)``; rewards are constants."""
    g = jax.random.gumbel(key, (log_p.shape[0], num, log_p.shape[1]), log_p.dtype)
    y = jax.nn.softmax((log_p[:, None, :] + g) / tau, axis=-1)
    r = jax.lax.stop_gradient(reward_all)[:, None, :]
    return -jnp.mean(jnp.sum(y * r, axis=-1), axis=-1)


__all__ = [
    "BASELINES",
    "D_LOSSES",
    "ESTIMATORS",
    "REWARDS",
    "draw_for_generator",
    "generator_log_probs",
    "gumbel_loss",
    "positive_mask",
    "reinforce_loss",
    "sample_categorical",
    "user_positives",
]
