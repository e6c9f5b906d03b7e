"""Optimisation-based data poisoning: gradients through an unrolled surrogate's training.

The fake profiles are relaxed to ``X in [0, 1]^{F x I}`` (targets fixed at 1). A surrogate
MF (``P [U+F, D]``, ``Q [I, D]``) minimises a WRMF-style weighted squared loss over the
dense user x item matrix of real plus fake rows::

    L(P, Q; X) = [ sum_ui w_ui (x_ui - p_u . q_i)^2 + l2 (|P|^2 + |Q|^2) ] / U,
    w_ui = 1 + alpha * x_ui                       (Hu et al., ICDM 2008)

It is first pre-trained on the real rows (no gradient), then trained ``unroll_steps`` Adam
steps on real + fake rows inside ``lax.scan``; ``jax.grad`` differentiates the attacker
objective through those steps with respect to ``X`` (each step is rematerialised with
``jax.checkpoint``, so memory holds one carry per step, not the dense residuals). The
attacker objective promotes the targets for real users who have none of them in training,
a smoothed Carlini-Wagner margin against each user's K-th best other item::

    A(X) = mean_{u, t} tau * softplus((s_u[K] - s_ut) / tau),

with ``s_u[K]`` the K-th highest score among items that are neither ``u``'s training items
nor targets (Tang et al., RecSys 2020, "Revisiting adversarially learned injection
attacks"). Outer projected-gradient steps move ``X`` along the row-normalised gradient and
project each row onto ``{x in [0, 1]^I : sum of fillers = filler_size}``; every iterate is
rounded to a binary profile (targets + its ``filler_size`` largest fillers), and the binary
profile with the lowest surrogate objective is returned.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int
from tqdm.auto import tqdm

from robustjax.data.csr import user_item_csr
from robustjax.data.table import InteractionTable
from robustjax.poison.heuristic import average_attack, bandwagon_attack, random_attack
from robustjax.poison.profiles import FakeProfiles
from robustjax.train.sampler import TrainArrays, build_train_arrays, sample_uniform

INITS = ("average", "random", "bandwagon")
SURROGATES = ("dense", "victim")
OBJECTIVES = ("hit", "cw")


@dataclasses.dataclass(frozen=True, kw_only=True)
class UnrolledConfig:
    """The surrogate and the outer optimisation of :func:`unrolled_attack`.

    Attributes:
      dim: surrogate embedding size D.
      pretrain_steps: Adam steps on the real rows before the unrolled part (not
        differentiated).
      unroll_steps: Adam steps on real + fake rows that are differentiated (static).
      outer_steps: projected-gradient steps on the relaxed profiles.
      inner_lr: Adam learning rate of the surrogate.
      alpha: WRMF confidence of observed entries (``w = 1 + alpha * x``).
      l2: L2 weight of the surrogate.
      outer_lr: step of the outer update, in units of ``sqrt(filler_size)`` per row.
      k: the cutoff of the attacker's margin (the K-th best other item).
      temperature: tau of the softplus margin (in surrogate score units).
      init: the binary profiles the optimisation starts from: ``"average"`` (fillers ~
        popularity) or ``"random"``.
      remat: rematerialise each unrolled step (memory O(steps * params), not dense).
      surrogate: ``"dense"`` (the full-batch surrogate above, steps counted in Adam steps)
        or ``"victim"``: the victim's own mini-batch BPR-MF training (Xavier init, uniform
        negatives, Adam ``inner_lr``, ``batch_size``), warm-started ``warm_epochs`` epochs
        on real + current fake rows (not differentiated), then ``unroll_epochs`` epochs
        differentiated; ``dim``, ``inner_lr`` and ``objective`` apply, ``pretrain_steps``,
        ``unroll_steps``, ``alpha``, ``l2`` and ``loss`` do not.
      warm_epochs, unroll_epochs, batch_size: the ``"victim"`` surrogate's schedule.
      surrogates: ``"victim"`` only: how many independently initialised surrogates (own
        init, batches and negatives) the objective and gradient are averaged over, so the
        profiles target the victim's training rather than one initialisation of it (the
        attacker does not know the victim's seed). Cost grows linearly.
    """

    dim: int = 64
    pretrain_steps: int = 300
    unroll_steps: int = 20
    outer_steps: int = 10
    inner_lr: float = 0.01
    alpha: float = 10.0
    l2: float = 0.0
    outer_lr: float = 1.0
    k: int = 50
    temperature: float = 1.0
    init: str = "average"
    loss: str = "bpr"
    objective: str = "hit"
    remat: bool = True
    surrogate: str = "dense"
    warm_epochs: int = 0
    unroll_epochs: int = 10
    batch_size: int = 2048
    surrogates: int = 1

    def __post_init__(self):
        for name in (
            "dim",
            "unroll_steps",
            "outer_steps",
            "k",
            "unroll_epochs",
            "batch_size",
            "surrogates",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"UnrolledConfig.{name} must be an int >= 1, got {v!r}.")
        if not isinstance(self.pretrain_steps, int) or self.pretrain_steps < 0:
            raise ValueError(
                f"UnrolledConfig.pretrain_steps must be an int >= 0, got {self.pretrain_steps!r}."
            )
        for name in ("inner_lr", "outer_lr", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"UnrolledConfig.{name} must be > 0, got {getattr(self, name)!r}.")
        for name in ("alpha", "l2"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"UnrolledConfig.{name} must be >= 0, got {getattr(self, name)!r}."
                )
        if self.loss not in LOSSES:
            raise ValueError(
                f"UnrolledConfig.loss={self.loss!r} is unknown; expected one of {LOSSES}."
            )
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"UnrolledConfig.objective={self.objective!r} is unknown; "
                f"expected one of {OBJECTIVES}."
            )
        if not isinstance(self.warm_epochs, int) or self.warm_epochs < 0:
            raise ValueError(
                f"UnrolledConfig.warm_epochs must be an int >= 0, got {self.warm_epochs!r}."
            )
        if self.surrogate not in SURROGATES:
            raise ValueError(
                f"UnrolledConfig.surrogate={self.surrogate!r} is unknown; "
                f"expected one of {SURROGATES}."
            )
        if self.surrogates > 1 and self.surrogate != "victim":
            raise ValueError(
                f"UnrolledConfig.surrogates={self.surrogates} needs "
                f"surrogate='victim', got surrogate={self.surrogate!r}."
            )
        if self.init not in INITS:
            raise ValueError(
                f"UnrolledConfig.init={self.init!r} is unknown; expected one of {INITS}."
            )


# ----------------------------------------------------------------------------- surrogate

LOSSES = ("bpr", "wrmf", "bce")


def surrogate_loss(
    params: dict,
    x: Float[Array, "U I"],
    *,
    alpha,
    l2,
    loss: str = "bpr",
    neg: Int[Array, "U I"] | None = None,
) -> Float[Array, ""]:
    """The surrogate's training loss over the dense matrix, plus ``l2 (|P|^2 + |Q|^2)``,
    divided by U. With ``s = P Q^T``:

    - ``"bpr"``: full-batch BPR with one uniform negative ``neg[u, i]`` per entry (the
      victim's objective): ``sum_ui x_ui (1 - x_u,neg) softplus(s_u,neg - s_ui)``;
      ``alpha`` is unused.
    - ``"wrmf"``: ``sum_ui (1 + alpha x_ui) (x_ui - s_ui)^2`` (module docstring).
    - ``"bce"``: ``sum_ui alpha x_ui softplus(-s_ui) + (1 - x_ui) softplus(s_ui)``.
    """
    p, q = params["user"], params["item"]
    s = p @ q.T
    if loss == "bpr":
        s_neg = jnp.take_along_axis(s, neg, axis=1)
        x_neg = jnp.take_along_axis(x, neg, axis=1)
        fit = jnp.sum(x * (1.0 - x_neg) * jax.nn.softplus(s_neg - s))
    elif loss == "wrmf":
        fit = jnp.sum((1.0 + alpha * x) * jnp.square(x - s))
    else:
        fit = jnp.sum(alpha * x * jax.nn.softplus(-s) + (1.0 - x) * jax.nn.softplus(s))
    return (fit + l2 * (jnp.sum(jnp.square(p)) + jnp.sum(jnp.square(q)))) / x.shape[0]


def init_surrogate(
    num_users: int, num_items: int, dim: int, *, key: Array, dtype=jnp.float32
) -> tuple[dict, tuple]:
    """Surrogate parameters (normal, std ``0.1``) and a zero Adam state ``(m, v, t)``."""
    ku, ki = jax.random.split(key)
    params = {
        "user": 0.1 * jax.random.normal(ku, (num_users, dim), dtype),
        "item": 0.1 * jax.random.normal(ki, (num_items, dim), dtype),
    }
    zeros = jax.tree.map(jnp.zeros_like, params)
    return params, (zeros, zeros, jnp.zeros((), dtype))


def train_surrogate(
    params: dict,
    opt: tuple,
    x: Float[Array, "U I"],
    *,
    key: Array,
    steps: int,
    lr,
    alpha,
    l2,
    loss: str = "bpr",
    remat: bool = True,
) -> tuple[dict, tuple]:
    """``steps`` full-batch Adam steps on ``surrogate_loss`` as one ``lax.scan``.

    Step ``t`` draws its BPR negatives from ``fold_in(key, t)`` (the same negatives for the
    same ``key``, so the result is a deterministic, differentiable function of ``x``).

    Differentiable in ``x`` (and ``params``); Adam's square root gets ``1e-30`` inside so
    its derivative stays finite at zero gradients. ``remat`` recomputes each step in the
    backward pass instead of storing its ``[U, I]`` residuals.

    Returns:
      ``(params, (m, v, t))`` after the steps.
    """

    def body(carry, _):
        params, (m, v, t) = carry
        neg = None
        if loss == "bpr":
            k = jax.random.fold_in(key, t.astype(jnp.int32))
            neg = jax.random.randint(k, x.shape, 0, x.shape[1])
        g = jax.grad(surrogate_loss)(params, x, alpha=alpha, l2=l2, loss=loss, neg=neg)
        return _adam(params, g, m, v, t, lr), None

    if remat:
        body = jax.checkpoint(body)
    (params, opt), _ = jax.lax.scan(body, (params, opt), None, length=steps)
    return params, opt


# ----------------------------------------------------------------------------- victim surrogate


def _adam(params, g, m, v, t, lr):
    b1, b2, eps = 0.9, 0.999, 1e-8
    t = t + 1
    m = jax.tree.map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
    v = jax.tree.map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
    c1, c2 = 1 - b1**t, 1 - b2**t
    params = jax.tree.map(
        lambda w, a, b: w - lr * (a / c1) / (jnp.sqrt(b / c2 + 1e-30) + eps), params, m, v
    )
    return params, (m, v, t)


def init_victim(
    num_users: int, num_items: int, dim: int, *, key: Array, dtype=jnp.float32
) -> tuple[dict, tuple]:
    """Victim-like MF parameters (Xavier-normal, as ``robustjax.models.mf``) and a zero Adam
    state ``(m, v, t)``."""
    ku, ki = jax.random.split(key)
    params = {
        "user": jax.random.normal(ku, (num_users, dim), dtype)
        * jnp.sqrt(2.0 / (num_users + dim)).astype(dtype),
        "item": jax.random.normal(ki, (num_items, dim), dtype)
        * jnp.sqrt(2.0 / (num_items + dim)).astype(dtype),
    }
    zeros = jax.tree.map(jnp.zeros_like, params)
    return params, (zeros, zeros, jnp.zeros((), dtype))


def victim_step_loss(
    params: dict,
    x_fake: Float[Array, "F I"],
    user,
    pos,
    neg,
    mask,
    fake_neg: Int[Array, "F I"],
    *,
    num_real: int,
    fake_scale,
) -> Float[Array, ""]:
    """One victim BPR batch plus the relaxed fake rows' expected share of it.

    The real part is the victim's batch (``softplus(s_un - s_ui)`` with the sampler's
    uniform negative, ``mask`` for padding). Each fake pair ``(f, i)`` would appear in one
    batch per epoch, so it enters every step with weight ``fake_scale * x_fi`` (``1 /
    steps_per_epoch``), against a uniform negative ``fake_neg[f, i]`` weighted by ``1 -
    x_f,neg`` (a positive is never a negative). The sum is divided by the total weight, as
    the victim's masked mean.
    """
    p, q = params["user"], params["item"]
    s_pos = jnp.sum(p[user] * q[pos], axis=-1)
    s_neg = jnp.sum(p[user] * q[neg], axis=-1)
    real = jnp.sum(mask * jax.nn.softplus(s_neg - s_pos))
    s_f = p[num_real:] @ q.T  # [F, I]
    w = x_fake * (1.0 - jnp.take_along_axis(x_fake, fake_neg, axis=1)) * fake_scale
    fake = jnp.sum(w * jax.nn.softplus(jnp.take_along_axis(s_f, fake_neg, axis=1) - s_f))
    return (real + fake) / (jnp.sum(mask) + jnp.sum(x_fake) * fake_scale)


def train_victim_surrogate(
    params: dict,
    opt: tuple,
    x_fake: Float[Array, "F I"],
    data: TrainArrays,
    *,
    key: Array,
    epochs: int,
    batch_size: int,
    lr,
    remat: bool = True,
) -> tuple[dict, tuple]:
    """``epochs`` epochs of the victim's own training (shuffled mini-batches of
    ``batch_size`` real interactions, exact uniform negatives from ``data``, Adam) with the
    relaxed fake rows ``x_fake`` as per-interaction weights (:func:`victim_step_loss`).

    Users ``0..U-1`` are ``data``'s real users; rows ``U..U+F-1`` of ``params["user"]`` are
    the fake users. The batches and negatives depend only on ``key``, so the result is a
    deterministic, differentiable function of ``x_fake``. Nested ``lax.scan`` (epochs, then
    steps), both rematerialised: memory holds one carry per epoch plus one epoch's carries.
    """
    n = data.num_interactions
    steps = -(-n // batch_size)
    num_real = data.num_users
    num_fake, num_items = x_fake.shape

    def step(carry, xs):
        params, (m, v, t) = carry
        rows, k = xs
        k_u, k_f = jax.random.split(k)
        mask = (rows < n).astype(x_fake.dtype)
        rows = jnp.where(rows < n, rows, 0)
        user, pos = data.user[rows], data.item[rows]
        neg = sample_uniform(data, user, jax.random.uniform(k_u, rows.shape))
        fake_neg = jax.random.randint(k_f, (num_fake, num_items), 0, num_items)
        g = jax.grad(victim_step_loss)(
            params,
            x_fake,
            user,
            pos,
            neg,
            mask,
            fake_neg,
            num_real=num_real,
            fake_scale=1.0 / steps,
        )
        return _adam(params, g, m, v, t, lr), None

    def epoch(carry, k):
        k_perm, k_steps = jax.random.split(k)
        perm = jnp.concatenate(
            [
                jax.random.permutation(k_perm, n).astype(jnp.int32),
                jnp.full(steps * batch_size - n, n, jnp.int32),
            ]
        )
        xs = (perm.reshape(steps, batch_size), jax.random.split(k_steps, steps))
        carry, _ = jax.lax.scan(jax.checkpoint(step) if remat else step, carry, xs)
        return carry, None

    if remat:
        epoch = jax.checkpoint(epoch)
    (params, opt), _ = jax.lax.scan(epoch, (params, opt), jax.random.split(key, epochs))
    return params, opt


# ----------------------------------------------------------------------------- objective


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
    base: dict,
    base_opt: tuple,
    targets: Int[Array, " T"],
    eligible: Float[Array, " U"],
    *,
    key: Array,
    steps: int,
    lr,
    alpha,
    l2,
    k: int,
    temperature,
    loss: str = "bpr",
    kind: str = "hit",
    remat: bool = True,
) -> Float[Array, ""]:
    """The attacker objective after ``steps`` surrogate steps on real + fake rows.

    ``base``/``base_opt`` hold parameters and Adam state for all ``U + F`` user rows (the
    warm start; it does not depend on ``x_fake``). Scores of real users exclude their
    training items (``x_real > 0``) from the K-th-item margin.
    """
    x = jnp.concatenate([x_real, x_fake.astype(x_real.dtype)])
    params, _ = train_surrogate(
        base, base_opt, x, key=key, steps=steps, lr=lr, alpha=alpha, l2=l2, loss=loss, remat=remat
    )
    num_real = x_real.shape[0]
    scores = params["user"][:num_real] @ params["item"].T
    return promotion_loss(
        scores, targets, x_real > 0, eligible, k=k, temperature=temperature, kind=kind
    )


def victim_objective(
    x_fake: Float[Array, "F I"],
    data: TrainArrays,
    exclude: Bool[Array, "U I"],
    base: dict,
    base_opt: tuple,
    targets: Int[Array, " T"],
    eligible: Float[Array, " U"],
    *,
    key: Array,
    epochs: int,
    batch_size: int,
    lr,
    k: int,
    temperature,
    kind: str = "cw",
    remat: bool = True,
) -> Float[Array, ""]:
    """The attacker objective after ``epochs`` epochs of the victim's own training
    (:func:`train_victim_surrogate`) from ``base``/``base_opt`` (all ``U + F`` user rows)."""
    params, _ = train_victim_surrogate(
        base,
        base_opt,
        x_fake,
        data,
        key=key,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        remat=remat,
    )
    scores = params["user"][: data.num_users] @ params["item"].T
    return promotion_loss(
        scores, targets, exclude, eligible, k=k, temperature=temperature, kind=kind
    )


# ----------------------------------------------------------------------------- projections


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


def _dense(items: np.ndarray, num_items: int) -> np.ndarray:
    out = np.zeros((items.shape[0], num_items), np.float32)
    np.put_along_axis(out, items, 1.0, axis=1)
    return out


# ----------------------------------------------------------------------------- attack


def unrolled_attack(
    train,
    targets,
    num_fake: int,
    filler_size: int,
    *,
    key: Array,
    config: UnrolledConfig = UnrolledConfig(),
    num_items: int | None = None,
    progress: bool = False,
) -> FakeProfiles:
    """Fake profiles optimised through an unrolled surrogate (module docstring).

    Args:
      train: the training interactions (``InteractionTable``; the attacker's knowledge).
      targets: int ``[T]`` items to promote.
      num_fake: F, the number of fake users.
      filler_size: fillers per profile (besides all targets).
      key: PRNG key (surrogate init, fake-row init, initial profiles).
      config: :class:`UnrolledConfig`.
      num_items: unused for tables (kept for the common attack signature).
      progress: show a tqdm bar over outer steps.

    Returns:
      ``FakeProfiles`` with ``attack="unrolled"``; ``params`` records the config, the seed
      material and the surrogate objective of the initial and of the returned profiles.
    """
    if not isinstance(train, InteractionTable):
        raise TypeError(
            f"unrolled_attack: train must be an InteractionTable, got {type(train).__name__}."
        )
    del num_items
    cfg = config
    num_users, n_items = train.num_users, train.num_items
    indptr, indices = user_item_csr(train)
    x_real = np.zeros((num_users, n_items), np.float32)
    x_real[np.repeat(np.arange(num_users), np.diff(indptr)), indices] = 1.0
    targets = np.unique(np.asarray(targets, np.int32))
    if cfg.k > n_items - targets.size:
        raise ValueError(
            f"unrolled_attack: config.k={cfg.k} exceeds the non-target items "
            f"({n_items - targets.size}); lower UnrolledConfig.k."
        )
    eligible = (x_real[:, targets].sum(axis=1) == 0).astype(np.float32)
    k_sur, k_init, k_pre, k_unroll = jax.random.split(key, 4)
    init_seed = int(jax.random.randint(k_init, (), 0, 2**31 - 1))
    init_fn = {"average": average_attack, "random": random_attack, "bandwagon": bandwagon_attack}[
        cfg.init
    ]
    start = init_fn(train, targets, num_fake, filler_size, seed=init_seed)

    xr, tj, ej = jnp.asarray(x_real), jnp.asarray(targets), jnp.asarray(eligible)
    if cfg.surrogate == "victim":
        data = build_train_arrays(train.user, train.item, num_users, n_items)
        # surrogate 0 uses the attack's keys as before; more surrogates fold in their index
        members = [(k_sur, k_pre, k_unroll)] + [
            tuple(jax.random.fold_in(k, m) for k in (k_sur, k_pre, k_unroll))
            for m in range(1, cfg.surrogates)
        ]
        inits = [
            init_victim(num_users + num_fake, n_items, cfg.dim, key=ks) for ks, _, _ in members
        ]
        sched = {"batch_size": cfg.batch_size, "lr": cfg.inner_lr}
        pre = jax.jit(
            lambda p, o, xf, kp: train_victim_surrogate(
                p, o, xf, data, key=kp, epochs=cfg.warm_epochs, remat=False, **sched
            )
        )
        value_and_grad = jax.jit(
            jax.value_and_grad(
                functools.partial(
                    victim_objective,
                    data=data,
                    exclude=xr > 0,
                    targets=tj,
                    eligible=ej,
                    epochs=cfg.unroll_epochs,
                    k=cfg.k,
                    temperature=cfg.temperature,
                    kind=cfg.objective,
                    remat=cfg.remat,
                    **sched,
                )
            )
        )

        def evaluate(items):
            """The victim surrogates' mean objective and gradient at binary profiles
            ``items`` (each: warm start on real + these fake rows, then the differentiated
            epochs)."""
            xb = jnp.asarray(_dense(items, n_items))
            total, grad = 0.0, None
            for (p0, o0), (_, kp, ku) in zip(inits, members):
                base, base_opt = (p0, o0) if cfg.warm_epochs == 0 else pre(p0, o0, xb, kp)
                v, g = value_and_grad(xb, base=base, base_opt=base_opt, key=ku)
                total += float(v) / len(members)
                grad = g / len(members) if grad is None else grad + g / len(members)
            return total, grad
    else:
        hyper = {"lr": cfg.inner_lr, "alpha": cfg.alpha, "l2": cfg.l2, "loss": cfg.loss}
        init_params, init_opt = init_surrogate(num_users + num_fake, n_items, cfg.dim, key=k_sur)
        pre = jax.jit(
            functools.partial(
                train_surrogate, steps=cfg.pretrain_steps, remat=False, key=k_pre, **hyper
            )
        )
        dense_vg = jax.jit(
            jax.value_and_grad(
                functools.partial(
                    unrolled_objective,
                    key=k_unroll,
                    steps=cfg.unroll_steps,
                    k=cfg.k,
                    temperature=cfg.temperature,
                    kind=cfg.objective,
                    remat=cfg.remat,
                    **hyper,
                )
            )
        )

        def evaluate(items):
            """Warm start at the equilibrium with these binary profiles, then the objective
            and its gradient at them (the gradient of the unrolled continuation)."""
            xb = jnp.asarray(_dense(items, n_items))
            base, base_opt = pre(init_params, init_opt, jnp.concatenate([xr, xb]))
            v, g = dense_vg(xb, xr, base, base_opt, tj, ej)
            return float(v), g

    free = np.ones(n_items, bool)
    free[targets] = False
    free_j = jnp.asarray(free)
    step_scale = cfg.outer_lr * np.sqrt(max(filler_size, 1))

    @jax.jit
    def update(x, g):
        g = jnp.where(free_j[None, :], g, 0.0)
        g = g / (jnp.linalg.norm(g, axis=1, keepdims=True) + 1e-12)
        return project_budget(x - step_scale * g, free_j, filler_size)

    items = start.items
    x = jnp.asarray(_dense(items, n_items))
    best_items, history = items, []
    best = None
    bar = tqdm(
        range(cfg.outer_steps + 1),
        desc="unrolled attack",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )
    for step in bar:
        v, g = evaluate(items)
        history.append(v)
        if best is None or v < best:
            best, best_items = v, items
        bar.set_postfix(objective=f"{v:.4f}", best=f"{best:.4f}")
        if step == cfg.outer_steps:
            break
        x = update(x, g)
        items = binarise(np.asarray(x), targets, filler_size)
    bar.close()
    init_value = history[0]
    params = {
        **dataclasses.asdict(cfg),
        "filler_size": filler_size,
        "init_seed": init_seed,
        "objective_init": init_value,
        "objective_best": best,
        "objective_history": history,
    }
    return FakeProfiles(best_items, targets, n_items, "unrolled", params)
