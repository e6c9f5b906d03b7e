"""Perturbation budgets: absolute (``||delta|| <= eps``) or relative to the size of what is
perturbed (``||delta|| <= eps * ||x||``, per scope unit).

An absolute radius is not invariant to reparametrisations that leave a model's scores
unchanged: in MF, users x a and items x 1/a give the same scores but change what an
absolute ``eps`` means by a factor a. The relative budget is invariant to them: for
``s = <u, i>``, ``(a u + eps a ||u|| d_u) . (i / a + eps ||i|| / a d_i)`` equals the
unscaled perturbed score for every perturbation ``d``.
"""

import jax

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

    return wrapped
