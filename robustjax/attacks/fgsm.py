"""Fast gradient (sign) method on embeddings (Goodfellow et al., 2015; He et al., 2018 APR)."""

from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray, Scalar

from robustjax.attacks import _tree
from robustjax.attacks.project import check_norm_scope, normalize
from robustjax.types import Array, Emb


def fgsm(
    loss_fn: Callable[[Emb], Array],
    emb: Emb,
    *,
    eps: float | Scalar,
    norm: str = "l2",
    scope: str = "row",
    targets: Iterable[str] | None = None,
    key: PRNGKeyArray | None = None,
) -> Emb:
    """One normalised gradient step of size ``eps``.

    ``delta = eps * normalize(grad_d sum_b loss_fn(emb + d)_b at d = 0)``: ``eps * sign(g)``
    for Linf, ``eps * g / ||g||`` for L2 with the norm over ``scope`` (the APR attack is
    L2/row). This is the exact maximiser of the first-order expansion of the loss over the
    ball. Only ``targets`` (all names when None) are differentiated and perturbed; the
    others get zeros.

    Returns ``jax.lax.stop_gradient(delta)``: the training objective treats the perturbation
    as a constant (Danskin's theorem; the APR convention), so no gradient flows through the
    attack.

    Args:
      loss_fn: ``loss_fn(emb) -> [B]`` per-example losses; their sum is maximised.
      emb: ``{name: [B, D] or [B, N, D]}`` clean embeddings.
      eps: radius ``>= 0``, Python float or traced scalar.
      norm: ``"l2"`` or ``"linf"``; scope: ``"row"``, ``"example"`` or ``"batch"``.
      targets: names to perturb.
      key: unused (deterministic attack); accepted for the common signature.

    Returns:
      ``delta`` shaped like ``emb``.
    """
    del key
    check_norm_scope(norm, scope, where="fgsm")
    names = _tree.resolve_targets(emb, targets, where="fgsm")
    sel = _tree.select(emb, names)
    with jax.named_scope("fgsm"):
        grad = _tree.sum_loss_grad(loss_fn, emb, names)(jax.tree.map(jnp.zeros_like, sel))
        step = normalize(grad, norm=norm, scope=scope)
        sel_delta = jax.tree.map(lambda v: v * jnp.asarray(eps).astype(v.dtype), step)
    return jax.lax.stop_gradient(_tree.full_delta(emb, sel_delta))
