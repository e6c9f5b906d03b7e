"""Per-example ranking losses on scores.

Every primitive returns one value per example (``[B]``); reductions (and masks) belong to
the combinator, so the same primitive serves clean and adversarial terms.
"""

import jax
import jax.numpy as jnp

from robustjax.types import Array


def bpr(pos: Array, neg: Array) -> Array:
    """Bayesian personalised ranking: ``-log sigmoid(s_pos - s_neg)`` (Rendle et al., 2009).

    Args:
      pos: ``[B]`` scores of the positive items.
      neg: ``[B]`` or ``[B, N]`` scores of sampled negatives (averaged over ``N``).

    Returns:
      ``[B]`` per-example losses, computed stably as ``softplus(s_neg - s_pos)``.
    """
    if neg.ndim == pos.ndim + 1:
        return jnp.mean(jax.nn.softplus(neg - pos[..., None]), axis=-1)
    return jax.nn.softplus(neg - pos)


def bce(pos: Array, neg: Array) -> Array:
    """Pointwise binary cross-entropy: positives labelled 1, sampled negatives 0.

    ``-log sigmoid(s_pos) - mean_n log(1 - sigmoid(s_neg_n))`` per example.
    """
    neg_term = jax.nn.softplus(neg)
    if neg.ndim == pos.ndim + 1:
        neg_term = jnp.mean(neg_term, axis=-1)
    return jax.nn.softplus(-pos) + neg_term


def sampled_softmax(
    pos: Array, neg: Array, *, log_q_pos: Array | None = None, log_q_neg: Array | None = None
) -> Array:
    """Sampled softmax cross-entropy of the positive against ``N`` sampled negatives.

    ``-s_pos + logsumexp([s_pos, s_neg_1..N])``. With the sampling log-probabilities given,
    applies the logQ correction (Bengio & Senecal, 2008; Yi et al., 2019) so the estimate is
    consistent for the full softmax.

    Args:
      pos: ``[B]``; neg: ``[B, N]`` (a ``[B]`` array is treated as ``N = 1``).
    """
    if neg.ndim == pos.ndim:
        neg = neg[..., None]
    if log_q_pos is not None:
        pos = pos - log_q_pos
    if log_q_neg is not None:
        neg = neg - log_q_neg
    logits = jnp.concatenate([pos[..., None], neg], axis=-1)
    return jax.nn.logsumexp(logits, axis=-1) - pos
