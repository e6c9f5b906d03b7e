"""Random-noise "attacks": perturbations of a given size in random directions.

They ignore the loss, and are the baseline that gradient attacks are compared against at
the same ``eps``. Like every attack they return ``stop_gradient(delta)``: the training
objective treats the perturbation as a constant.
"""

from collections.abc import Callable, Iterable

import jax
from jaxtyping import PRNGKeyArray, Scalar

from robustjax.attacks import _tree
from robustjax.attacks.project import random_ball
from robustjax.types import Array, Emb


def _noise(dist, where, emb, key, eps, norm, scope, targets):
    names = _tree.resolve_targets(emb, targets, where=where)
    sel = random_ball(key, _tree.select(emb, names), eps, norm=norm, scope=scope, dist=dist)
    return jax.lax.stop_gradient(_tree.full_delta(emb, sel))


def gaussian_noise(
    loss_fn: Callable[[Emb], Array] | None,
    emb: Emb,
    *,
    key: PRNGKeyArray,
    eps: float | Scalar,
    norm: str = "l2",
    scope: str = "row",
    targets: Iterable[str] | None = None,
) -> Emb:
    """Gaussian noise rescaled to norm exactly ``eps`` per scope unit.

    ``delta = eps * z / ||z||``, ``z ~ N(0, I)``, on the ``targets`` names (all when None),
    zeros elsewhere; see ``random_ball(dist="gaussian")``. For L2 this is uniform on the
    sphere. Returns ``stop_gradient(delta)`` (a constant for the training objective).

    Args:
      loss_fn: ignored (kept for the common attack signature; may be None).
      emb: ``{name: [B, ...]}`` clean embeddings.
      key: PRNG key.
      eps: radius, Python float or traced scalar.
      norm: ``"l2"`` or ``"linf"``; see ``robustjax.attacks.project``.
      scope: ``"row"``, ``"example"`` or ``"batch"``; see ``robustjax.attacks.project``.
      targets: names to perturb.
    """
    del loss_fn
    return _noise("gaussian", "gaussian_noise", emb, key, eps, norm, scope, targets)


def uniform_noise(
    loss_fn: Callable[[Emb], Array] | None,
    emb: Emb,
    *,
    key: PRNGKeyArray,
    eps: float | Scalar,
    norm: str = "l2",
    scope: str = "row",
    targets: Iterable[str] | None = None,
) -> Emb:
    """Noise uniform inside the ``eps`` ball per scope unit.

    See ``random_ball(dist="uniform")``; same arguments as :func:`gaussian_noise`. Returns
    ``stop_gradient(delta)``, zeros for names outside ``targets``.
    """
    del loss_fn
    return _noise("uniform", "uniform_noise", emb, key, eps, norm, scope, targets)
