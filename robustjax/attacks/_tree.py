"""Private helpers: selecting the perturbed names of an embedding dict."""

from collections.abc import Iterable

import jax
import jax.numpy as jnp

from robustjax.types import Emb


def resolve_targets(emb: Emb, targets: Iterable[str] | None, *, where: str) -> tuple[str, ...]:
    """Names of ``emb`` to perturb (all of them when ``targets`` is None), in ``emb`` order."""
    if not isinstance(emb, dict):
        raise TypeError(f"{where}: emb must be a dict of arrays, got {type(emb).__name__}.")
    if targets is None:
        return tuple(emb)
    targets = tuple(targets)
    missing = [t for t in targets if t not in emb]
    if missing:
        raise ValueError(
            f"{where}: targets {missing} are not in the embeddings "
            f"(available: {sorted(emb)}); drop them from targets "
            f"(AttackConfig.targets)."
        )
    return tuple(n for n in emb if n in targets)


def perturb(emb: Emb, sel_delta: Emb) -> Emb:
    """``emb`` with ``sel_delta`` added to the selected names; the rest passed through."""
    return {n: (x + sel_delta[n] if n in sel_delta else x) for n, x in emb.items()}


def full_delta(emb: Emb, sel_delta: Emb) -> Emb:
    """A delta with the structure of ``emb``: ``sel_delta`` where given, zeros elsewhere."""
    return {n: (sel_delta[n] if n in sel_delta else jnp.zeros_like(x)) for n, x in emb.items()}


def sum_loss_grad(loss_fn, emb: Emb, names: tuple[str, ...]):
    """``d -> grad_d sum(loss_fn(emb + d))`` over the selected names only.

    The other names are closed over as constants, so they are never differentiated.
    Summing per-example losses keeps each example's gradient independent of the others.
    """

    def total(sel_delta):
        return jnp.sum(loss_fn(perturb(emb, sel_delta)))

    return jax.grad(total)


def select(emb: Emb, names: tuple[str, ...]) -> Emb:
    return {n: emb[n] for n in names}
