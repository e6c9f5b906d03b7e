"""The transformer block shared by the sequential models (SASRec, BERT4Rec).

One block is multi-head self-attention and a point-wise feed-forward network, each with a
residual connection and a layer norm, in one of two arrangements:

    pre-LN  (SASRec's official code):  h = LN_a(x);  x = h + Attn(h, x, x);  x = LN_f(x)
                                       out = x + Drop(W2 act(Drop(W1 x)))
    post-LN (BERT, BERT4Rec):          x = LN_a(x + Drop(Attn(x, x, x)))
                                       out = LN_f(x + Drop(W2 act(W1 x)))

``Attn`` drops out its attention weights; ``out`` is zeroed at padding positions. The
attention mask decides what a query sees: causal and padding for SASRec, padding only for
BERT4Rec (:func:`attention_mask`). Dropout takes explicit keys; no hidden RNG state.
"""

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Bool, Float, Int, PRNGKeyArray

from robustjax.types import Array

NEG = -1e9  # finite "minus infinity": rows whose keys are all padding stay NaN-free
KEYS_PER_BLOCK = 3  # dropout keys one block draws: attention weights and two sublayer outputs


def dropout(
    x: Array, rate: float, key: PRNGKeyArray | None, deterministic: bool, *, where: str
) -> Array:
    """Inverted dropout with an explicit key (identity when deterministic or rate 0).

    ``where`` names the caller in the error raised when a key is missing.
    """
    if deterministic or rate == 0.0:
        return x
    if key is None:
        raise ValueError(
            f"{where}: dropout needs key= when deterministic=False; pass a "
            "jax.random key or deterministic=True."
        )
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def gelu(x: Array) -> Array:
    """The exact (erf) GELU of BERT."""
    return jax.nn.gelu(x, approximate=False)


_ACTIVATIONS = {"relu": jax.nn.relu, "gelu": gelu}


def attention_mask(seq_ids: Int[Array, "B L"], *, causal: bool) -> Bool[Array, "B Lq L"]:
    """Which keys each query attends to: the non-padding keys (id != 0), and with
    ``causal=True`` only those at or before the query. Shape ``[B, L, L]`` when causal,
    else ``[B, 1, L]`` (the same for every query)."""
    real = (seq_ids != 0)[:, None, :]
    if not causal:
        return real
    length = seq_ids.shape[1]
    return jnp.tril(jnp.ones((length, length), bool))[None, :, :] & real


def multi_head_attention(
    q: Float[Array, "B Lq D"],
    k: Float[Array, "B L D"],
    v: Float[Array, "B L D"],
    attn_mask: Bool[Array, "B Lq L"],
    num_heads: int,
    drop_weights: Callable[[Array], Array] | None = None,
) -> Float[Array, "B Lq D"]:
    """Scaled dot-product attention of projected queries, keys and values, in heads.

    ``D`` splits into ``num_heads`` heads of ``D / num_heads``; keys where ``attn_mask`` is
    False get logit ``NEG`` (``attn_mask`` may be ``[B, 1, L]``: the same keys for every
    query); ``drop_weights`` (dropout, or None) is applied to the attention weights. Returns
    the heads concatenated, before any output projection. Used by
    :class:`TransformerBlock` and by the BERT text encoder
    (:class:`robustjax.text.encoder.BertLayer`).
    """
    dim = q.shape[-1]
    size = dim // num_heads

    def heads(t):  # [B, L, D] -> [B, H, L, D/H]
        return t.reshape(t.shape[0], t.shape[1], num_heads, size).transpose(0, 2, 1, 3)

    logits = jnp.einsum("bhqd,bhkd->bhqk", heads(q), heads(k)) / math.sqrt(size)
    logits = jnp.where(attn_mask[:, None, :, :], logits, NEG)
    weights = jax.nn.softmax(logits, axis=-1)
    if drop_weights is not None:
        weights = drop_weights(weights)
    att = jnp.einsum("bhqk,bhkd->bhqd", weights, heads(v)).transpose(0, 2, 1, 3)
    return att.reshape(q.shape[0], q.shape[1], dim)


def check_encoder_args(
    where: str,
    num_items: int,
    max_len: int,
    dim: int,
    num_blocks: int,
    num_heads: int,
    dropout: float,
) -> None:
    """Validates the constructor arguments of a sequence encoder (SASRec, BERT4Rec).

    Sizes must be ints >= 1 (TypeError for a non-int, ValueError below 1), ``num_heads``
    must divide ``dim`` and ``dropout`` lie in [0, 1). ``where`` names the model.
    """
    for name, value in (
        ("num_items", num_items),
        ("max_len", max_len),
        ("dim", dim),
        ("num_blocks", num_blocks),
        ("num_heads", num_heads),
    ):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(
                f"{where}: {name} must be an int, got {name}={value!r} ({type(value).__name__})."
            )
        if value < 1:
            raise ValueError(f"{where}: {name} must be >= 1, got {name}={value}.")
    if dim % num_heads:
        raise ValueError(
            f"{where}: num_heads={num_heads} must divide dim={dim}; choose a divisor of {dim}."
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{where}: dropout must be in [0, 1), got dropout={dropout!r}.")


class TransformerBlock(nnx.Module):
    """Self-attention and point-wise feed-forward sublayers (see the module docstring).

    Args:
      dim: D, the hidden size.
      num_heads: attention heads; must divide ``dim``.
      ff_dim: inner size of the feed-forward network (D for SASRec, 4 D for BERT4Rec).
      activation: ``"relu"`` (SASRec) or ``"gelu"`` (exact, BERT4Rec).
      norm_first: True for pre-LN (SASRec), False for post-LN (BERT4Rec).
      epsilon: layer-norm epsilon.
      kernel_init: initialiser of the linear kernels; None keeps ``nnx.Linear``'s default
        (LeCun normal). Biases start at zero.
      rngs: parameter initialisation. Each layer norm is created next to its sublayer,
        before it for pre-LN and after it for post-LN; this order fixes the draws.
      where: the caller named in error messages.

    Parameters: ``q``, ``k``, ``v``, ``out`` (attention), ``ff1``, ``ff2`` (feed-forward),
    ``ln_attn``, ``ln_ff`` (the norms of the two sublayers).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        ff_dim: int,
        activation: str,
        norm_first: bool,
        epsilon: float,
        kernel_init: nnx.Initializer | None = None,
        rngs: nnx.Rngs,
        where: str = "TransformerBlock",
    ):
        if dim % num_heads:
            raise ValueError(f"{where}: num_heads={num_heads} must divide dim={dim}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"{where}: activation={activation!r} is not one of {sorted(_ACTIVATIONS)}."
            )

        init = {} if kernel_init is None else {"kernel_init": kernel_init}

        def linear(n_in, n_out):
            return nnx.Linear(n_in, n_out, **init, rngs=rngs)

        def norm():
            return nnx.LayerNorm(dim, epsilon=epsilon, rngs=rngs)

        if norm_first:
            self.ln_attn = norm()
        self.q = linear(dim, dim)
        self.k = linear(dim, dim)
        self.v = linear(dim, dim)
        self.out = linear(dim, dim)
        if not norm_first:
            self.ln_attn = norm()
        if norm_first:
            self.ln_ff = norm()
        self.ff1 = linear(dim, ff_dim)
        self.ff2 = linear(ff_dim, dim)
        if not norm_first:
            self.ln_ff = norm()
        self.num_heads = num_heads
        self.activation = activation
        self.norm_first = norm_first
        self.where = where

    def attend(
        self,
        queries: Float[Array, "B L D"],
        inputs: Float[Array, "B L D"],
        attn_mask: Bool[Array, "B Lq L"],
        rate: float,
        key: PRNGKeyArray | None,
        deterministic: bool,
    ) -> Float[Array, "B L D"]:
        """Multi-head scaled dot-product attention (:func:`multi_head_attention`),
        output-projected.

        Queries are projected from ``queries``, keys and values from ``inputs``; masked-out
        keys get logit ``NEG``; attention weights are dropped out with ``key``.
        """
        drop = functools.partial(self._dropout, rate=rate, key=key, deterministic=deterministic)
        q, k, v = self.q(queries), self.k(inputs), self.v(inputs)
        return self.out(multi_head_attention(q, k, v, attn_mask, self.num_heads, drop))

    def __call__(
        self,
        x: Float[Array, "B L D"],
        mask: Float[Array, "B L"],
        attn_mask: Bool[Array, "B Lq L"],
        rate: float,
        keys: Array | None,
        deterministic: bool,
    ) -> Float[Array, "B L D"]:
        """One block.

        Args:
          x: hidden states.
          mask: 1 at real positions, 0 at padding; the output is multiplied by it.
          attn_mask: from :func:`attention_mask`.
          rate: dropout rate.
          keys: ``KEYS_PER_BLOCK`` dropout keys (attention weights, then the pre-LN
            feed-forward hidden or the post-LN attention output, then the feed-forward
            output); None when deterministic.
          deterministic: static; True disables dropout.
        """
        k_weights, k_mid, k_out = (None,) * KEYS_PER_BLOCK if keys is None else tuple(keys)
        act = _ACTIVATIONS[self.activation]
        if self.norm_first:
            h = self.ln_attn(x)
            x = h + self.attend(h, x, attn_mask, rate, k_weights, deterministic)
            x = self.ln_ff(x)
            y = self.ff2(act(self._dropout(self.ff1(x), rate, k_mid, deterministic)))
            return (x + self._dropout(y, rate, k_out, deterministic)) * mask[..., None]
        att = self.attend(x, x, attn_mask, rate, k_weights, deterministic)
        x = self.ln_attn(x + self._dropout(att, rate, k_mid, deterministic))
        y = self._dropout(self.ff2(act(self.ff1(x))), rate, k_out, deterministic)
        return self.ln_ff(x + y) * mask[..., None]

    def _dropout(self, x, rate, key, deterministic):
        return dropout(x, rate, key, deterministic, where=self.where)


class BlockStyle(NamedTuple):
    """The per-model settings of :class:`TransformerBlock`: the feed-forward inner size
    as a multiple of D, the activation, pre-LN (``norm_first``) or post-LN, the epsilon."""

    ff_mult: int
    activation: str
    norm_first: bool
    epsilon: float


def make_blocks(
    style: BlockStyle,
    num_blocks: int,
    dim: int,
    num_heads: int,
    *,
    kernel_init: nnx.Initializer | None = None,
    rngs: nnx.Rngs,
    where: str,
) -> nnx.List:
    """``num_blocks`` :class:`TransformerBlock` s of one ``style``, created in order."""
    return nnx.List(
        [
            TransformerBlock(
                dim,
                num_heads,
                ff_dim=style.ff_mult * dim,
                activation=style.activation,
                norm_first=style.norm_first,
                epsilon=style.epsilon,
                kernel_init=kernel_init,
                rngs=rngs,
                where=where,
            )
            for _ in range(num_blocks)
        ]
    )


def encode_sequence(
    blocks: Sequence[TransformerBlock],
    positions: Float[Array, "M D"],
    seq_emb: Float[Array, "B L D"],
    seq_ids: Int[Array, "B L"],
    *,
    rate: float,
    causal: bool,
    deterministic: bool,
    key: PRNGKeyArray | None,
    where: str,
    input_norm: Callable[[Array], Array] | None = None,
) -> Float[Array, "B L D"]:
    """The encoder body shared by SASRec and BERT4Rec, before their output heads.

    ``x = input_norm(seq_emb + P)`` (no norm when None) with the positional rows
    right-aligned (``positions[M - L:]``), dropout, padding zeroed, then ``blocks`` under
    :func:`attention_mask` (``causal``). Dropout keys: one for the input, then
    ``KEYS_PER_BLOCK`` per block, split from ``key``.

    Args:
      blocks: the transformer blocks.
      positions: the positional table, ``M = max_len`` rows.
      seq_emb: scaled (possibly perturbed) input embeddings.
      seq_ids: item ids, for the padding mask (0 = padding).
      rate: dropout rate.
      causal: whether a query sees only keys at or before it.
      deterministic: static; True disables dropout.
      key: dropout key, required when ``deterministic=False``.
      where: the model named in error messages (``"SASRec"``: ``"SASRec.encode: ..."``).
      input_norm: applied to the summed input embeddings (BERT4Rec's layer norm).
    """
    length, max_len = seq_emb.shape[1], positions.shape[0]
    if length > max_len:
        raise ValueError(
            f"{where}.encode: sequence length {length} exceeds "
            f"max_len={max_len}; truncate the sequences."
        )
    if not deterministic and key is None:
        raise ValueError(f"{where}.encode: deterministic=False needs key=.")
    n_keys = 1 + KEYS_PER_BLOCK * len(blocks)
    keys = None if deterministic else jax.random.split(key, n_keys)
    mask = (seq_ids != 0).astype(seq_emb.dtype)  # [B, L]
    x = seq_emb + positions[max_len - length :][None, :, :]
    if input_norm is not None:
        x = input_norm(x)
    x = dropout(x, rate, None if keys is None else keys[0], deterministic, where=where)
    x = x * mask[..., None]
    attn_mask = attention_mask(seq_ids, causal=causal)
    n = KEYS_PER_BLOCK
    for i, block in enumerate(blocks):  # block i takes keys[1 + 3 i : 1 + 3 (i + 1)]
        block_keys = None if keys is None else keys[1 + n * i : 1 + n * (i + 1)]
        x = block(x, mask, attn_mask, rate, block_keys, deterministic)
    return x
