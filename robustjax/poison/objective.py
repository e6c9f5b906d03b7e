"""The unrolled attack's objective and the constraint set of its relaxed profiles.

The attacker objective promotes the targets for real users who have none of them in
training, a smoothed Carlini-Wagner margin against each user's K-th best other item::

    A(X) = mean_{u, t} tau * softplus((s_u[K] - s_ut) / tau),

with ``s_u[K]`` the K-th highest score among items that are neither ``u``'s training items
nor targets (Tang et al., RecSys 2020, "Revisiting adversarially learned injection
attacks"), computed on a surrogate trained on real plus relaxed fake rows
(:mod:`robustjax.poison.surrogate`). Relaxed profiles live in
``{x in [0, 1]^I : sum of fillers = filler_size}`` (:func:`project_budget`) and are rounded
to binary profiles by :func:`binarise`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int

from robustjax.data.negatives import TrainArrays
from robustjax.models.base import ModelFns
from robustjax.poison.surrogate import train_surrogate, train_victim_surrogate
from robustjax.train.state import TrainState


def promotion_loss(
    scores: Float[Array, "U I"],
    targets: Int[Array, " T"],
    exclude: Bool[Array, "U I"],
    eligible: Float[Array, " U"],
    *,
    k: int,
    temperature,
    kind: str = "cw",
) -> Float[Array, ""]:
    """Mean over eligible users (weights ``eligible``) and targets of a function of the
    margin ``m = s_u[K] - s_ut``: ``"cw"`` the smoothed CW margin ``tau softplus(m / tau)``,
    ``"hit"`` the smoothed miss indicator ``sigmoid(m / tau)`` (1 - a soft HR@K). Lower
    means more promotion."""
    is_target = jnp.zeros(scores.shape[1], jnp.bool_).at[targets].set(True)
    masked = jnp.where(exclude | is_target[None, :], -jnp.inf, scores)
    kth = jax.lax.top_k(masked, k)[0][:, k - 1]  # [U]
    margin = kth[:, None] - scores[:, targets]  # [U, T]
    if kind == "cw":
        per = temperature * jax.nn.softplus(margin / temperature)
    else:
        per = jax.nn.sigmoid(margin / temperature)
    den = jnp.maximum(jnp.sum(eligible) * targets.shape[0], 1.0)
    return jnp.sum(per * eligible[:, None]) / den


def unrolled_objective(
    x_fake: Float[Array, "F I"],
    x_real: Float[Array, "U I"],
    base: TrainState,
    targets: Int[Array, " T"],
    eligible: Float[Array, " U"],
    *,
    fns: ModelFns,
    tx: optax.GradientTransformation,
    key: Array,
    steps: int,
    alpha,
    l2,
    k: int,
    temperature,
    loss: str = "bpr",
    kind: str = "hit",
    remat: bool = True,
) -> Float[Array, ""]:
    """The attacker objective after ``steps`` dense-surrogate steps on real + fake rows.

    ``base`` holds parameters and optimizer state for all ``U + F`` user rows (the warm
    start; it does not depend on ``x_fake``). Scores of real users exclude their training
    items (``x_real > 0``) from the K-th-item margin.
    """
    x = jnp.concatenate([x_real, x_fake.astype(x_real.dtype)])
    state = train_surrogate(
        base,
        x,
        fns=fns,
        tx=tx,
        key=key,
        steps=steps,
        alpha=alpha,
        l2=l2,
        loss=loss,
        remat=remat,
    )
    scores = fns.score_all(state.params, jnp.arange(x_real.shape[0]))
    return promotion_loss(
        scores, targets, x_real > 0, eligible, k=k, temperature=temperature, kind=kind
    )


def victim_objective(
    x_fake: Float[Array, "F I"],
    data: TrainArrays,
    exclude: Bool[Array, "U I"],
    base: TrainState,
    targets: Int[Array, " T"],
    eligible: Float[Array, " U"],
    *,
    fns: ModelFns,
    tx: optax.GradientTransformation,
    key: Array,
    epochs: int,
    batch_size: int,
    k: int,
    temperature,
    kind: str = "cw",
    remat: bool = True,
) -> Float[Array, ""]:
    """The attacker objective after ``epochs`` epochs of the victim's own training
    (:func:`~robustjax.poison.surrogate.train_victim_surrogate`) from ``base`` (all
    ``U + F`` user rows)."""
    state = train_victim_surrogate(
        base,
        x_fake,
        data,
        fns=fns,
        tx=tx,
        key=key,
        epochs=epochs,
        batch_size=batch_size,
        remat=remat,
    )
    scores = fns.score_all(state.params, jnp.arange(data.num_users))
    return promotion_loss(
        scores, targets, exclude, eligible, k=k, temperature=temperature, kind=kind
    )


# ----------------------------------------------------------------------------- profiles


def project_budget(
    x: Float[Array, "F I"], free: Bool[Array, " I"], budget: int, *, iters: int = 50
) -> Float[Array, "F I"]:
    """Per row, the Euclidean projection of the ``free`` entries onto
    ``{z in [0, 1] : sum z = budget}`` (bisection on the shift ``tau`` of
    ``clip(x - tau, 0, 1)``); the other entries (targets) are set to 1."""
    xf = jnp.where(free[None, :], x, -jnp.inf)
    lo = jnp.min(jnp.where(free[None, :], x, jnp.inf), axis=1) - 1.0
    hi = jnp.max(xf, axis=1)

    def total(tau):
        return jnp.sum(jnp.where(free[None, :], jnp.clip(x - tau[:, None], 0.0, 1.0), 0.0), 1)

    def body(_, lh):
        lo, hi = lh
        mid = 0.5 * (lo + hi)
        big = total(mid) > budget
        return jnp.where(big, mid, lo), jnp.where(big, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iters, body, (lo, hi))
    z = jnp.clip(x - (0.5 * (lo + hi))[:, None], 0.0, 1.0)
    return jnp.where(free[None, :], z, 1.0)


def binarise(x: np.ndarray, targets: np.ndarray, filler_size: int) -> np.ndarray:
    """int32 ``[F, T + filler_size]``: targets then each row's ``filler_size`` largest
    non-target entries (ties by lower item id)."""
    x = np.array(x, np.float64)
    x[:, targets] = -np.inf
    order = np.argsort(-x, axis=1, kind="stable")[:, :filler_size]
    return np.concatenate(
        [np.broadcast_to(targets, (x.shape[0], targets.size)), order], axis=1
    ).astype(np.int32)


def dense_profiles(items: np.ndarray, num_items: int) -> np.ndarray:
    """float32 ``[F, I]`` 0/1 rows of the int ``[F, L]`` profiles ``items``."""
    out = np.zeros((items.shape[0], num_items), np.float32)
    np.put_along_axis(out, items, 1.0, axis=1)
    return out
