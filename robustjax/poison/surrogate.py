"""The unrolled attack's surrogates: the shared MF trained with optax's Adam, differentiably.

Both surrogates are :class:`robustjax.models.mf.MatrixFactorization` behind its
:class:`~robustjax.models.base.ModelFns` (rows ``0..U-1`` of the user table are real users,
``U..U+F-1`` the fake ones), trained from a :class:`~robustjax.train.state.TrainState` by
:func:`inner_optimizer` inside ``lax.scan``. Every step is a deterministic function of the
relaxed profiles (its randomness comes from keys only), so ``jax.grad`` of anything computed
from the trained parameters reaches the profiles through every inner step.

- The dense surrogate (:func:`train_surrogate`) takes full-batch steps on the dense user x
  item matrix of real plus fake rows (:func:`surrogate_loss`).
- The victim surrogate (:func:`train_victim_surrogate`) repeats the victim's own mini-batch
  BPR-MF training, the relaxed fake rows entering each batch as weights
  (:func:`victim_step_loss`).
"""

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jaxtyping import Array, Float, Int

from robustjax.data.negatives import TrainArrays
from robustjax.losses import bpr
from robustjax.models.base import ModelFns, slot_scores
from robustjax.models.mf import MatrixFactorization, mf_fns
from robustjax.train.state import TrainState
from robustjax.train.step import apply_gradients, make_batch
from robustjax.types import Params

LOSSES = ("bpr", "wrmf", "bce")

# Inside Adam's square root: keeps its derivative finite where a gradient is exactly zero
# (the attack differentiates through the updates); negligible next to eps = 1e-8.
EPS_ROOT = 1e-30


def inner_optimizer(learning_rate) -> optax.GradientTransformation:
    """The surrogates' Adam (``b1 = 0.9``, ``b2 = 0.999``, ``eps = 1e-8``), differentiable.

    Per step ``t``: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``, and
    ``w -= lr * m_hat / (sqrt(v_hat + eps_root) + eps)`` with bias-corrected
    ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)`` and ``eps_root = 1e-30``.
    ``learning_rate`` may be traced.
    """
    return optax.adam(learning_rate, eps_root=EPS_ROOT)


def mf_surrogate(user: Float[Array, "U D"], item: Float[Array, "I D"]) -> tuple[ModelFns, Params]:
    """The shared MF (no bias) as ``(ModelFns, params)`` holding the given tables.

    The module is built abstractly (``nnx.eval_shape``): its own initialiser never runs, the
    attack draws the tables itself. Models of equal shapes share their ``ModelFns``
    behaviour, so one ``fns`` serves several parameter sets.
    """
    (num_users, dim), num_items = user.shape, item.shape[0]
    model = nnx.eval_shape(lambda: MatrixFactorization(num_users, num_items, dim, rngs=nnx.Rngs(0)))
    fns, abstract = mf_fns(model)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, user.dtype), abstract)
    return fns, fns.set_tables(zeros, {"user": user, "item": item})


# ----------------------------------------------------------------------------- dense surrogate


def init_surrogate(
    num_users: int, num_items: int, dim: int, *, key: Array, dtype=jnp.float32
) -> tuple[ModelFns, Params]:
    """The dense surrogate: MF with normal tables of std ``0.1``; pair it with
    ``init_state(params, inner_optimizer(lr))``."""
    ku, ki = jax.random.split(key)
    return mf_surrogate(
        0.1 * jax.random.normal(ku, (num_users, dim), dtype),
        0.1 * jax.random.normal(ki, (num_items, dim), dtype),
    )


def surrogate_loss(
    params: Params,
    x: Float[Array, "U I"],
    *,
    fns: ModelFns,
    alpha,
    l2,
    loss: str = "bpr",
    neg: Int[Array, "U I"] | None = None,
) -> Float[Array, ""]:
    """The dense surrogate's loss over the matrix ``x``, plus ``l2 (|P|^2 + |Q|^2)``, divided
    by U. With ``s = P Q^T`` (``fns.score_all`` of every user):

    - ``"bpr"``: full-batch BPR with one uniform negative ``neg[u, i]`` per entry (the
      victim's objective): ``sum_ui x_ui (1 - x_u,neg) softplus(s_u,neg - s_ui)``;
      ``alpha`` is unused.
    - ``"wrmf"``: ``sum_ui (1 + alpha x_ui) (x_ui - s_ui)^2`` (Hu et al., ICDM 2008).
    - ``"bce"``: ``sum_ui alpha x_ui softplus(-s_ui) + (1 - x_ui) softplus(s_ui)``.
    """
    if loss not in LOSSES:
        raise ValueError(f"surrogate_loss: loss={loss!r} is unknown; expected one of {LOSSES}.")
    s = fns.score_all(params, jnp.arange(x.shape[0]))
    if loss == "bpr":
        s_neg = jnp.take_along_axis(s, neg, axis=1)
        x_neg = jnp.take_along_axis(x, neg, axis=1)
        fit = jnp.sum(x * (1.0 - x_neg) * jax.nn.softplus(s_neg - s))
    elif loss == "wrmf":
        fit = jnp.sum((1.0 + alpha * x) * jnp.square(x - s))
    else:
        fit = jnp.sum(alpha * x * jax.nn.softplus(-s) + (1.0 - x) * jax.nn.softplus(s))
    tables = fns.get_tables(params)
    penalty = jnp.sum(jnp.square(tables["user"])) + jnp.sum(jnp.square(tables["item"]))
    return (fit + l2 * penalty) / x.shape[0]


def train_surrogate(
    state: TrainState,
    x: Float[Array, "U I"],
    *,
    fns: ModelFns,
    tx: optax.GradientTransformation,
    key: Array,
    steps: int,
    alpha,
    l2,
    loss: str = "bpr",
    remat: bool = True,
) -> TrainState:
    """``steps`` full-batch ``tx`` steps on :func:`surrogate_loss` as one ``lax.scan``.

    Step ``t`` (``state.step``, which continues across calls) draws its BPR negatives from
    ``fold_in(key, t)``: the same negatives for the same ``key``, so the result is a
    deterministic function of ``x``, differentiable in ``x`` and ``state.params`` (no
    ``stop_gradient``). ``remat`` recomputes each step in the backward pass instead of
    storing its ``[U, I]`` residuals (memory holds one carry per step).
    """

    def body(state, _):
        neg = None
        if loss == "bpr":
            neg = jax.random.randint(jax.random.fold_in(key, state.step), x.shape, 0, x.shape[1])
        grads = jax.grad(surrogate_loss)(
            state.params, x, fns=fns, alpha=alpha, l2=l2, loss=loss, neg=neg
        )
        return apply_gradients(state, grads, tx), None

    if remat:
        body = jax.checkpoint(body)
    state, _ = jax.lax.scan(body, state, None, length=steps)
    return state


# ----------------------------------------------------------------------------- victim surrogate


def init_victim(
    num_users: int, num_items: int, dim: int, *, key: Array, dtype=jnp.float32
) -> tuple[ModelFns, Params]:
    """The victim surrogate: MF with Xavier-normal tables (std ``sqrt(2 / (rows + D))``, not
    truncated); pair it with ``init_state(params, inner_optimizer(lr))``."""
    ku, ki = jax.random.split(key)
    return mf_surrogate(
        jax.random.normal(ku, (num_users, dim), dtype)
        * jnp.sqrt(2.0 / (num_users + dim)).astype(dtype),
        jax.random.normal(ki, (num_items, dim), dtype)
        * jnp.sqrt(2.0 / (num_items + dim)).astype(dtype),
    )


def victim_step_loss(
    params: Params,
    x_fake: Float[Array, "F I"],
    batch: dict[str, Array],
    fake_neg: Int[Array, "F I"],
    *,
    fns: ModelFns,
    num_real: int,
    fake_scale,
) -> Float[Array, ""]:
    """One victim BPR batch plus the relaxed fake rows' expected share of it.

    The real part is the victim's batch (``batch`` from ``make_batch``: BPR of ``user``,
    ``pos`` and the uniform ``neg``, ``mask`` for padding). Each fake pair ``(f, i)`` would
    appear in one batch per epoch, so it enters every step with weight ``fake_scale * x_fi``
    (``1 / steps_per_epoch``), against a uniform negative ``fake_neg[f, i]`` weighted by
    ``1 - x_f,neg`` (a positive is never a negative). The sum is divided by the total
    weight, as the victim's masked mean.
    """
    mask = batch["mask"].astype(x_fake.dtype)
    s = slot_scores(fns, params, fns.embed(params, batch))
    real = jnp.sum(mask * bpr(s["pos"], s["neg"]))
    num_fake = x_fake.shape[0]
    s_f = fns.score_all(params, jnp.arange(num_real, num_real + num_fake))  # [F, I]
    w = x_fake * (1.0 - jnp.take_along_axis(x_fake, fake_neg, axis=1)) * fake_scale
    fake = jnp.sum(w * bpr(s_f, jnp.take_along_axis(s_f, fake_neg, axis=1)))
    return (real + fake) / (jnp.sum(mask) + jnp.sum(x_fake) * fake_scale)


def train_victim_surrogate(
    state: TrainState,
    x_fake: Float[Array, "F I"],
    data: TrainArrays,
    *,
    fns: ModelFns,
    tx: optax.GradientTransformation,
    key: Array,
    epochs: int,
    batch_size: int,
    remat: bool = True,
) -> TrainState:
    """``epochs`` epochs of the victim's own training (shuffled mini-batches of
    ``batch_size`` real interactions, exact uniform negatives from ``data``, ``tx``) with
    the relaxed fake rows ``x_fake`` as per-interaction weights (:func:`victim_step_loss`).

    Users ``0..U-1`` are ``data``'s real users; user rows ``U..U+F-1`` are the fake users.
    The batches and negatives depend only on ``key``, so the result is a deterministic,
    differentiable function of ``x_fake``. Nested ``lax.scan`` (epochs, then steps), both
    rematerialised: memory holds one carry per epoch plus one epoch's carries.
    """
    n = data.num_interactions
    steps = -(-n // batch_size)
    num_fake, num_items = x_fake.shape

    def step(state, xs):
        rows, k = xs
        k_u, k_f = jax.random.split(k)
        u01 = jax.random.uniform(k_u, rows.shape)
        batch = make_batch(data, rows, u01, sampler="uniform", key=k_u)  # key: unused
        fake_neg = jax.random.randint(k_f, (num_fake, num_items), 0, num_items)
        grads = jax.grad(victim_step_loss)(
            state.params,
            x_fake,
            batch,
            fake_neg,
            fns=fns,
            num_real=data.num_users,
            fake_scale=1.0 / steps,
        )
        return apply_gradients(state, grads, tx), None

    def epoch(state, k):
        k_perm, k_steps = jax.random.split(k)
        perm = jnp.concatenate(
            [
                jax.random.permutation(k_perm, n).astype(jnp.int32),
                jnp.full(steps * batch_size - n, n, jnp.int32),
            ]
        )
        xs = (perm.reshape(steps, batch_size), jax.random.split(k_steps, steps))
        state, _ = jax.lax.scan(jax.checkpoint(step) if remat else step, state, xs)
        return state, None

    if remat:
        epoch = jax.checkpoint(epoch)
    state, _ = jax.lax.scan(epoch, state, jax.random.split(key, epochs))
    return state
