"""Perturbation budgets: absolute (``||delta|| <= eps``) or relative to the size of what is
perturbed (``||delta|| <= eps * ||x||``, per scope unit).

An absolute radius is not invariant to reparametrisations that leave a model's scores
unchanged: in MF, users x a and items x 1/a give the same scores but change what an
absolute ``eps`` means by a factor a. The relative budget is invariant to them: for
``s = <u, i>``, ``(a u + eps a ||u|| d_u) . (i / a + eps ||i|| / a d_i)`` equals the
unscaled perturbed score for every perturbation ``d``.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from robustjax.attacks.project import check_norm_scope, norms

BUDGETS = ("absolute", "relative")


def relative_budget(attack, *, norm: str = "l2", scope: str = "row"):
    """Wraps ``attack(loss_fn, emb, *, key, eps, step_size) -> delta`` so that its radius
    is relative: the wrapped attack searches ``d`` in the ``eps`` ball and perturbs
    ``emb`` by ``||emb_u|| * d`` per scope unit ``u`` (norm and scope as the ball's), so
    ``||delta_u|| <= eps * ||emb_u||``. Units of zero size are not perturbed."""
    check_norm_scope(norm, scope, where="relative_budget")

    def wrapped(loss_fn, emb, *, key=None, **kwargs):
        treedef = jax.tree.structure(emb)
        size = jax.tree.unflatten(
            treedef, [jax.lax.stop_gradient(n) for n in norms(emb, norm=norm, scope=scope)]
        )

        def scaled(d):  # the attack perturbs emb by d; the model sees emb + size * d
            return jax.tree.map(lambda x, s, z: x + s * (z - x), emb, size, d)

        d = attack(lambda z: loss_fn(scaled(z)), emb, key=key, **kwargs)
        return jax.tree.map(lambda s, dd: s * dd, size, d)

    inner = getattr(attack, "budget", None)
    if inner is not None:
        wrapped.budget = inner._replace(kind="relative")
    return wrapped


class Budget(NamedTuple):
    """The ball an attack promises to stay in: ``||delta_u|| <= eps`` (``kind="absolute"``)
    or ``<= eps * ||x_u||`` (``"relative"``) per scope unit ``u`` of ``norm``. Attacks
    built by :func:`robustjax.attacks.make_attack` (and wrapped by :func:`relative_budget`)
    carry it as their ``budget`` attribute, so their output can be checked
    (:func:`budget_excess`)."""

    eps: float
    norm: str
    scope: str
    kind: str = "absolute"


# float rounding of a projected perturbation stays far below this relative excess
BUDGET_TOLERANCE = 1e-3


def budget_excess(emb, delta, budget: Budget):
    """How far ``delta`` leaves its ball: ``max_u (||delta_u|| - r_u) / r_u`` over the scope
    units ``u`` of the perturbed names (0 when every unit is inside; ``r_u`` is ``eps`` or
    ``eps * ||emb_u||``; a zero radius counts as ``1e-12``). A float32 scalar; one norm pass
    over ``delta``, cheap beside the attack. Only names present in ``delta`` are checked."""
    names = [k for k in delta if k in emb]
    if not names:
        return jnp.zeros((), jnp.float32)
    d = {k: delta[k] for k in names}
    sizes = norms(d, norm=budget.norm, scope=budget.scope)
    if budget.kind == "relative":
        x = norms({k: emb[k] for k in names}, norm=budget.norm, scope=budget.scope)
        radii = [budget.eps * jax.lax.stop_gradient(n) for n in x]
    else:
        radii = [jnp.full_like(s, budget.eps) for s in sizes]
    worst = [jnp.max((s - r) / jnp.maximum(r, 1e-12)) for s, r in zip(sizes, radii, strict=True)]
    return jnp.maximum(jnp.max(jnp.stack(worst)), 0.0).astype(jnp.float32)
