"""Optimisation-based data poisoning: gradients through an unrolled surrogate's training.

The fake profiles are relaxed to ``X in [0, 1]^{F x I}`` (targets fixed at 1). A surrogate
MF (``P [U+F, D]``, ``Q [I, D]``, :mod:`robustjax.poison.surrogate`) is trained on real plus
fake rows; ``jax.grad`` differentiates the attacker objective
(:mod:`robustjax.poison.objective`) through the surrogate's last training steps with respect
to ``X`` (each step rematerialised with ``jax.checkpoint``, so memory holds one carry per
step, not the dense residuals). Two surrogates:

- ``"dense"``: pre-trained ``pretrain_steps`` full-batch Adam steps (no gradient), then
  ``unroll_steps`` differentiated ones, on a loss over the dense user x item matrix, e.g.
  WRMF's ``[sum_ui (1 + alpha x_ui) (x_ui - p_u . q_i)^2 + l2 (|P|^2 + |Q|^2)] / U``.
- ``"victim"``: the victim's own mini-batch BPR-MF training, warm-started ``warm_epochs``
  epochs (no gradient), then ``unroll_epochs`` differentiated epochs, optionally averaged
  over several initialisations.

Outer projected-gradient steps move ``X`` along the row-normalised gradient and project
each row onto ``{x in [0, 1]^I : sum of fillers = filler_size}``; every iterate is rounded
to a binary profile (targets + its ``filler_size`` largest fillers), and the binary profile
with the lowest surrogate objective is returned.
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array
from tqdm.auto import tqdm

from robustjax._config_checks import check_choice_fields, check_int_fields
from robustjax.data.csr import user_item_csr
from robustjax.data.negatives import build_train_arrays
from robustjax.data.table import InteractionTable
from robustjax.poison.heuristic import average_attack, bandwagon_attack, random_attack
from robustjax.poison.objective import (
    binarise,
    dense_profiles,
    project_budget,
    unrolled_objective,
    victim_objective,
)
from robustjax.poison.profiles import FakeProfiles
from robustjax.poison.surrogate import (
    LOSSES,
    init_surrogate,
    init_victim,
    inner_optimizer,
    train_surrogate,
    train_victim_surrogate,
)
from robustjax.train.state import init_state

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
        check_int_fields(
            self,
            (
                "dim",
                "unroll_steps",
                "outer_steps",
                "k",
                "unroll_epochs",
                "batch_size",
                "surrogates",
            ),
        )
        check_int_fields(self, ("pretrain_steps",), minimum=0)
        for name in ("inner_lr", "outer_lr", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"UnrolledConfig.{name} must be > 0, got {getattr(self, name)!r}.")
        for name in ("alpha", "l2"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"UnrolledConfig.{name} must be >= 0, got {getattr(self, name)!r}."
                )
        check_choice_fields(self, (("loss", LOSSES), ("objective", OBJECTIVES)))
        check_int_fields(self, ("warm_epochs",), minimum=0)
        check_choice_fields(self, (("surrogate", SURROGATES),))
        if self.surrogates > 1 and self.surrogate != "victim":
            raise ValueError(
                f"UnrolledConfig.surrogates={self.surrogates} needs "
                f"surrogate='victim', got surrogate={self.surrogate!r}."
            )
        check_choice_fields(self, (("init", INITS),))


# ----------------------------------------------------------------------------- evaluators

# evaluate(items int [F, L]) -> (objective, gradient [F, I]) at binary profiles
Evaluate = Callable[[np.ndarray], tuple[float, jax.Array]]


def _objective_grad(objective: Callable, cfg: UnrolledConfig, **settings) -> Callable:
    """The jitted value and gradient (in the fake rows, its first argument) of the attacker
    ``objective`` with ``cfg``'s margin (``k``, ``temperature``, ``objective``), ``remat``
    and the surrogate's ``settings``."""
    return jax.jit(
        jax.value_and_grad(
            functools.partial(
                objective,
                k=cfg.k,
                temperature=cfg.temperature,
                kind=cfg.objective,
                remat=cfg.remat,
                **settings,
            )
        )
    )


def _victim_evaluator(
    cfg: UnrolledConfig, x_real, targets, eligible, *, train: InteractionTable, num_fake, keys
) -> Evaluate:
    """The victim surrogates' mean objective and gradient (``surrogate="victim"``)."""
    num_users, num_items = train.num_users, train.num_items
    data = build_train_arrays(train.user, train.item, num_users, num_items)
    # surrogate 0 uses the attack's keys; more surrogates fold in their index
    members = [keys] + [
        tuple(jax.random.fold_in(k, m) for k in keys) for m in range(1, cfg.surrogates)
    ]
    inits = [init_victim(num_users + num_fake, num_items, cfg.dim, key=ks) for ks, _, _ in members]
    fns = inits[0][0]  # equal shapes: one ModelFns serves every member
    tx = inner_optimizer(cfg.inner_lr)
    hyper = {"fns": fns, "tx": tx, "batch_size": cfg.batch_size}
    pre = jax.jit(
        functools.partial(train_victim_surrogate, epochs=cfg.warm_epochs, remat=False, **hyper)
    )
    value_and_grad = _objective_grad(victim_objective, cfg, epochs=cfg.unroll_epochs, **hyper)
    exclude = x_real > 0

    def evaluate(items):
        """Each member: warm start on real + these fake rows, then the differentiated
        epochs; the mean objective and gradient over members."""
        xb = jnp.asarray(dense_profiles(items, num_items))
        total, grad = 0.0, None
        for (_, params), (_, k_pre, k_unroll) in zip(inits, members):
            base = init_state(params, tx)
            if cfg.warm_epochs:
                base = pre(base, xb, data, key=k_pre)
            v, g = value_and_grad(xb, data, exclude, base, targets, eligible, key=k_unroll)
            total += float(v) / len(members)
            grad = g / len(members) if grad is None else grad + g / len(members)
        return total, grad

    return evaluate


def _dense_evaluator(cfg: UnrolledConfig, x_real, targets, eligible, *, num_fake, keys) -> Evaluate:
    """The dense surrogate's objective and gradient (``surrogate="dense"``)."""
    k_sur, k_pre, k_unroll = keys
    num_users, num_items = x_real.shape
    fns, params = init_surrogate(num_users + num_fake, num_items, cfg.dim, key=k_sur)
    tx = inner_optimizer(cfg.inner_lr)
    start = init_state(params, tx)
    hyper = {"fns": fns, "tx": tx, "alpha": cfg.alpha, "l2": cfg.l2, "loss": cfg.loss}
    pre = jax.jit(
        functools.partial(
            train_surrogate, steps=cfg.pretrain_steps, remat=False, key=k_pre, **hyper
        )
    )
    value_and_grad = _objective_grad(
        unrolled_objective, cfg, key=k_unroll, steps=cfg.unroll_steps, **hyper
    )

    def evaluate(items):
        """Warm start at the equilibrium with these binary profiles, then the objective
        and its gradient at them (the gradient of the unrolled continuation)."""
        xb = jnp.asarray(dense_profiles(items, num_items))
        base = pre(start, jnp.concatenate([x_real, xb]))
        v, g = value_and_grad(xb, x_real, base, targets, eligible)
        return float(v), g

    return evaluate


# ----------------------------------------------------------------------------- attack


def _outer_loop(
    evaluate: Evaluate,
    items: np.ndarray,
    targets: np.ndarray,
    filler_size: int,
    num_items: int,
    *,
    cfg: UnrolledConfig,
    progress: bool,
) -> tuple[np.ndarray, float, list[float]]:
    """Projected-gradient steps on the relaxed profiles from the binary ``items``.

    Returns the binary profiles with the lowest objective, that objective, and the
    objective of every iterate (the first is ``items``).
    """
    free = np.ones(num_items, bool)
    free[targets] = False
    free_j = jnp.asarray(free)
    step_scale = cfg.outer_lr * np.sqrt(max(filler_size, 1))

    @jax.jit
    def update(x, g):
        g = jnp.where(free_j[None, :], g, 0.0)
        g = g / (jnp.linalg.norm(g, axis=1, keepdims=True) + 1e-12)
        return project_budget(x - step_scale * g, free_j, filler_size)

    x = jnp.asarray(dense_profiles(items, num_items))
    best_items, best, history = items, None, []
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
    return best_items, best, history


def _dense_interactions(train: InteractionTable) -> np.ndarray:
    """The ``[U, I]`` float32 0/1 matrix of ``train``'s interactions."""
    num_users, n_items = train.num_users, train.num_items
    indptr, indices = user_item_csr(train)
    x_real = np.zeros((num_users, n_items), np.float32)
    x_real[np.repeat(np.arange(num_users), np.diff(indptr)), indices] = 1.0
    return x_real


def _initial_profiles(
    cfg: UnrolledConfig, train, targets, num_fake: int, filler_size: int, key: Array
) -> tuple[int, FakeProfiles]:
    """The seed drawn from ``key`` and the ``cfg.init`` heuristic's profiles built with it."""
    init_seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    init_fn = {"average": average_attack, "random": random_attack, "bandwagon": bandwagon_attack}[
        cfg.init
    ]
    return init_seed, init_fn(train, targets, num_fake, filler_size, seed=init_seed)


def _make_evaluator(
    cfg: UnrolledConfig, x_real, targets, eligible, train, num_fake: int, keys
) -> Evaluate:
    """The surrogate objective of ``cfg.surrogate`` (``"victim"`` or the dense one)."""
    xr, tj, ej = jnp.asarray(x_real), jnp.asarray(targets), jnp.asarray(eligible)
    if cfg.surrogate == "victim":
        return _victim_evaluator(cfg, xr, tj, ej, train=train, num_fake=num_fake, keys=keys)
    return _dense_evaluator(cfg, xr, tj, ej, num_fake=num_fake, keys=keys)


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
    n_items = train.num_items
    x_real = _dense_interactions(train)
    targets = np.unique(np.asarray(targets, np.int32))
    if cfg.k > n_items - targets.size:
        raise ValueError(
            f"unrolled_attack: config.k={cfg.k} exceeds the non-target items "
            f"({n_items - targets.size}); lower UnrolledConfig.k."
        )
    eligible = (x_real[:, targets].sum(axis=1) == 0).astype(np.float32)
    k_sur, k_init, k_pre, k_unroll = jax.random.split(key, 4)
    init_seed, start = _initial_profiles(cfg, train, targets, num_fake, filler_size, k_init)
    evaluate = _make_evaluator(
        cfg, x_real, targets, eligible, train, num_fake, (k_sur, k_pre, k_unroll)
    )
    best_items, best, history = _outer_loop(
        evaluate, start.items, targets, filler_size, n_items, cfg=cfg, progress=progress
    )
    params = {
        **dataclasses.asdict(cfg),
        "filler_size": filler_size,
        "init_seed": init_seed,
        "objective_init": history[0],
        "objective_best": best,
        "objective_history": history,
    }
    return FakeProfiles(best_items, targets, n_items, "unrolled", params)
