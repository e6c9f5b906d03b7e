"""Regularisers as per-example terms."""

import jax
import jax.numpy as jnp

from robustjax.types import Array, Emb


def l2_embeddings(emb: Emb, names: tuple[str, ...] = ("user", "pos", "neg")) -> Array:
    """Per-example squared L2 norm of the gathered embeddings (batch-level L2, as in BPR/APR).

    ``sum_name ||e_name||^2 / 2`` per example; ``[B, N, D]`` negatives are averaged over ``N``.
    """
    total = None
    for name in names:
        if name not in emb:
            continue
        sq = jnp.sum(jnp.square(emb[name]), axis=-1)
        while sq.ndim > 1:
            sq = jnp.mean(sq, axis=-1)
        total = sq if total is None else total + sq
    if total is None:
        raise ValueError(f"l2_embeddings: none of {names} is in the embeddings {sorted(emb)}.")
    return 0.5 * total


def l2_params(params) -> Array:
    """Scalar squared L2 norm of every parameter (``sum ||w||^2 / 2``)."""
    return 0.5 * sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params))
