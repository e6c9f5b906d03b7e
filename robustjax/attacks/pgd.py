"""Projected gradient ascent on embeddings (Madry et al., 2018)."""

from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray, Scalar

from robustjax.attacks import _tree
from robustjax.attacks.project import check_norm_scope, normalize, project, random_ball
from robustjax.types import Array, Emb


def _check_pgd_args(
    norm: str, scope: str, num_steps: int, random_start: bool, key: PRNGKeyArray | None
) -> None:
    check_norm_scope(norm, scope, where="pgd")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(
            f"pgd: num_steps must be a Python int >= 1 (it is static), got num_steps={num_steps!r}."
        )
    if random_start and key is None:
        raise ValueError("pgd: random_start=True needs a PRNG key; pass key=.")


def pgd(
    loss_fn: Callable[[Emb], Array],
    emb: Emb,
    *,
    eps: float | Scalar,
    num_steps: int = 10,
    step_size: float | Scalar | None = None,
    norm: str = "l2",
    scope: str = "row",
    random_start: bool = False,
    targets: Iterable[str] | None = None,
    key: PRNGKeyArray | None = None,
    init: Emb | None = None,
) -> Emb:
    """``num_steps`` steepest-ascent steps, each projected back onto the ``eps`` ball.

    ``d_0 = 0`` (uniform in the ball with ``random_start``, or ``init``), then
    ``d_{k+1} = project(d_k + step_size * normalize(grad sum_b loss_fn(emb + d_k)_b))``.
    Steps and projection use the same norm and scope (sign steps with a clip for Linf,
    normalised-gradient steps with an L2 projection for L2), so every iterate is feasible.

    Returns ``jax.lax.stop_gradient(delta)``: the training objective treats the perturbation
    as a constant (Danskin's theorem; the APR convention), so no gradient flows through the
    inner loop.

    Args:
      loss_fn: ``loss_fn(emb) -> [B]`` per-example losses; their sum is maximised.
      emb: ``{name: [B, D] or [B, N, D]}`` clean embeddings.
      eps: radius ``>= 0``, Python float or traced scalar.
      num_steps: static Python int ``>= 1`` (changes the compiled loop).
      step_size: step length (float or traced); None means ``2.5 * eps / num_steps``.
      norm: ``"l2"`` or ``"linf"``; scope: ``"row"``, ``"example"`` or ``"batch"``.
      random_start: start uniformly inside the ball (needs ``key``).
      targets: names to perturb (all when None); the others are neither differentiated
        nor perturbed and get zeros.
      key: PRNG key, used only with ``random_start``.
      init: the starting perturbation ``d_0`` of the targets (``{name: array}`` shaped
        like ``emb``; other names are ignored), used as given, not projected; the first
        step's projection brings it into the ball (TRADES starts at ``0.001 * N(0, I)``,
        :func:`robustjax.losses.adversarial.trades_term`). Excludes ``random_start``.

    Returns:
      ``delta`` shaped like ``emb``.
    """
    _check_pgd_args(norm, scope, num_steps, random_start, key)
    names = _tree.resolve_targets(emb, targets, where="pgd")
    sel = _tree.select(emb, names)
    if init is not None:
        if random_start:
            raise ValueError("pgd: pass either init= or random_start=True, not both.")
        missing = [n for n in names if n not in init]
        if missing:
            raise ValueError(
                f"pgd: init has no start for targets {missing} (init names: {sorted(init)}); "
                "give init an array shaped like emb for every target."
            )
        for n in names:
            if init[n].shape != sel[n].shape:
                raise ValueError(
                    f"pgd: init[{n!r}] has shape {init[n].shape}, expected emb[{n!r}]'s "
                    f"shape {sel[n].shape}."
                )
    if step_size is None:
        step_size = 2.5 * jnp.asarray(eps) / num_steps
    grad_fn = _tree.sum_loss_grad(loss_fn, emb, names)

    def step(_, d):
        direction = normalize(grad_fn(d), norm=norm, scope=scope)
        d = jax.tree.map(lambda x, v: x + jnp.asarray(step_size).astype(v.dtype) * v, d, direction)
        return project(d, eps, norm=norm, scope=scope)

    with jax.named_scope("pgd"):
        if init is not None:
            d0 = {n: init[n].astype(sel[n].dtype) for n in names}
        elif random_start:
            d0 = random_ball(key, sel, eps, norm=norm, scope=scope, dist="uniform")
        else:
            d0 = jax.tree.map(jnp.zeros_like, sel)
        delta = jax.lax.fori_loop(0, num_steps, step, d0)
    return jax.lax.stop_gradient(_tree.full_delta(emb, delta))
