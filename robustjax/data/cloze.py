"""Cloze masking for BERT4Rec-style training (masked-item prediction).

Masking (as the official BERT4Rec data generator): each training row gets exactly
``n = clip(round(len * mask_prob), 1, P)`` of its real positions, chosen uniformly, replaced
by ``[MASK]`` (always the mask token; no 80/10/10 replacement), with ``P =
ceil(mask_prob * L)`` (the static number of prediction slots; ``len <= L`` so nothing is
truncated). With probability ``mask_last_prob`` a row instead masks only its last item,
which is exactly the next-item task used at evaluation.
"""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray


def num_predictions(mask_prob: float, max_len: int) -> int:
    """P, the static number of masked slots per row: ``max(1, ceil(mask_prob * max_len))``."""
    return max(1, math.ceil(mask_prob * max_len))


def mask_items(
    rows: Int[Array, "B L"],
    *,
    mask_prob: float,
    mask_id: int,
    num_slots: int,
    mask_last_prob: float = 0.0,
    key: PRNGKeyArray,
):
    """Masks random real positions of left-padded rows for Cloze training.

    Args:
      rows: item ids [B, L], 0 = padding.
      mask_prob: fraction of each row's real positions to mask (rounded, at least 1).
      mask_id: the ``[MASK]`` id (``I + 1``).
      num_slots: P, prediction slots per row (static); at most P positions are masked.
      mask_last_prob: probability that a row masks only its last position instead.
      key: PRNG key.

    Returns:
      ``(seq, positions, targets, valid)``: the masked rows [B, L]; the masked positions
      [B, P] (distinct per row); the original items there [B, P] (0 where not valid); and
      bool [B, P], which slots hold a masked position.
    """
    b, length = rows.shape
    if num_slots > length:
        raise ValueError(f"mask_items: num_slots={num_slots} exceeds the row length {length}.")
    k_pos, k_last = jax.random.split(key)
    real = rows != 0
    r = jnp.where(real, jax.random.uniform(k_pos, (b, length)), 2.0)
    lengths = jnp.sum(real, axis=1)
    n = jnp.round(lengths.astype(jnp.float32) * mask_prob).astype(jnp.int32)
    n = jnp.minimum(jnp.clip(n, 1, num_slots), lengths)
    last = jax.random.bernoulli(k_last, mask_last_prob, (b,)) & real[:, -1]
    r = r.at[:, -1].set(jnp.where(last, -1.0, r[:, -1]))
    n = jnp.where(last, 1, n)
    _, positions = jax.lax.top_k(-r, num_slots)  # P smallest r
    positions = positions.astype(jnp.int32)
    valid = jnp.arange(num_slots)[None, :] < n[:, None]
    targets = jnp.where(valid, jnp.take_along_axis(rows, positions, axis=1), 0)
    hit = jax.nn.one_hot(positions, length, dtype=jnp.bool_) & valid[..., None]  # [B, P, L]
    seq = jnp.where(jnp.any(hit, axis=1), mask_id, rows).astype(rows.dtype)
    return seq, positions, targets, valid
