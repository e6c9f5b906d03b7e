"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

The architecture follows the official code (pre-LN blocks): input item embeddings scaled by
``sqrt(D)`` plus learned positional embeddings, dropout, ``num_blocks`` blocks of

    q = LN(x);  x = q + CausalAttention(q, x, x);  x = LN(x);  x = x + FFN(x)

(:class:`robustjax.models.transformer.TransformerBlock` with ``norm_first=True`` and a ReLU
feed-forward of inner size ``D``) with padding positions zeroed after each block, then a
final layer norm. Items are
``1..I``; id 0 is padding (sequences are left-padded, so the last item sits at ``L - 1``).

``embed`` and ``encode`` are separate so an attack can perturb the input embeddings
(``"seq"``) and/or the target embeddings (``"pos"``, ``"neg"``) and the loss is recomputed
through the encoder. Dropout takes an explicit ``key``; no hidden RNG state.

Unlike the official code, attention also masks padding keys, so the outputs at real
positions do not depend on anything at padding positions (the official code lets real
queries attend to the constant, bias-only keys of padding slots).
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Float, Int, PRNGKeyArray

from robustjax.models.transformer import (
    KEYS_PER_BLOCK,
    TransformerBlock,
    attention_mask,
    dropout,
    run_blocks,
)
from robustjax.types import Array


def _dropout(x: Array, rate: float, key: PRNGKeyArray | None, deterministic: bool) -> Array:
    return dropout(x, rate, key, deterministic, where="SASRec")


def embed_sequence_batch(
    table: Float[Array, "V D"], batch: dict, scale: float
) -> dict[str, Float[Array, "B L D"]]:
    """``{"seq": table[seq] * scale, "pos": table[pos], "neg": table[neg]}`` (targets only
    when present): the input/target embedding split shared by the sequential models."""
    out = {"seq": table[batch["seq"]] * scale}
    for slot in ("pos", "neg"):
        if slot in batch:
            out[slot] = table[batch[slot]]
    return out


class SASRec(nnx.Module):
    """SASRec encoder over item sequences.

    Args:
      num_items: I; item ids are ``1..I`` and the table has ``I + 1`` rows (row 0 = padding).
      max_len: L, the (static) sequence length; positional table size.
      dim: D, hidden size (50 in the paper).
      num_blocks: attention blocks (2).
      num_heads: attention heads (1); must divide ``dim``.
      dropout: dropout rate (0.2 for ML-1M).
    """

    def __init__(
        self,
        num_items: int,
        max_len: int,
        dim: int = 50,
        *,
        num_blocks: int = 2,
        num_heads: int = 1,
        dropout: float = 0.2,
        rngs: nnx.Rngs,
    ):
        for name, value in (
            ("num_items", num_items),
            ("max_len", max_len),
            ("dim", dim),
            ("num_blocks", num_blocks),
            ("num_heads", num_heads),
        ):
            if value < 1:
                raise ValueError(f"SASRec: {name} must be >= 1, got {name}={value}.")
        if dim % num_heads:
            raise ValueError(f"SASRec: num_heads={num_heads} must divide dim={dim}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"SASRec: dropout must be in [0, 1), got dropout={dropout!r}.")
        init = nnx.initializers.xavier_normal()
        self.items = nnx.Embed(num_items + 1, dim, embedding_init=init, rngs=rngs)
        self.positions = nnx.Embed(max_len, dim, embedding_init=init, rngs=rngs)
        self.blocks = nnx.List(
            [
                TransformerBlock(
                    dim,
                    num_heads,
                    ff_dim=dim,
                    activation="relu",
                    norm_first=True,
                    epsilon=1e-8,
                    rngs=rngs,
                    where="SASRec",
                )
                for _ in range(num_blocks)
            ]
        )
        self.ln_out = nnx.LayerNorm(dim, epsilon=1e-8, rngs=rngs)
        self.num_items, self.max_len, self.dim = num_items, max_len, dim
        self.dropout = dropout

    def embed(self, batch: dict) -> dict[str, Float[Array, "B L D"]]:
        """Input and target item embeddings of a batch.

        Args:
          batch: ``{"seq": int32 [B, L], "pos": [B, L], "neg": [B, L]}`` (0 = padding);
            ``pos``/``neg`` are optional.

        Returns:
          ``{"seq": E[seq] * sqrt(D), "pos": E[pos], "neg": E[neg]}``, each [B, L, D].
        """
        return embed_sequence_batch(self.items.embedding[...], batch, math.sqrt(self.dim))

    def encode(
        self,
        seq_emb: Float[Array, "B L D"],
        seq_ids: Int[Array, "B L"],
        *,
        deterministic: bool,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "B L D"]:
        """Runs the causal transformer on (possibly perturbed) input embeddings.

        Args:
          seq_emb: input embeddings from ``embed(...)["seq"]`` (already scaled).
          seq_ids: the item ids, used only for the padding mask (0 = padding).
          deterministic: static; True disables dropout (evaluation).
          key: dropout key, required when ``deterministic=False``.

        Returns:
          Hidden state at each position, [B, L, D]; row t depends only on items ``<= t``.
        """
        length = seq_emb.shape[1]
        if length > self.max_len:
            raise ValueError(
                f"SASRec.encode: sequence length {length} exceeds "
                f"max_len={self.max_len}; truncate the sequences."
            )
        if not deterministic and key is None:
            raise ValueError("SASRec.encode: deterministic=False needs key=.")
        n_keys = 1 + KEYS_PER_BLOCK * len(self.blocks)
        keys = None if deterministic else jax.random.split(key, n_keys)
        mask = (seq_ids != 0).astype(seq_emb.dtype)  # [B, L]
        pos = self.positions.embedding[...][self.max_len - length :]  # [L, D]
        x = seq_emb + pos[None, :, :]
        x = _dropout(x, self.dropout, None if keys is None else keys[0], deterministic)
        x = x * mask[..., None]
        attn_mask = attention_mask(seq_ids, causal=True)  # [B, Lq, Lk]
        x = run_blocks(
            self.blocks,
            x,
            mask,
            attn_mask,
            self.dropout,
            None if keys is None else keys[1:],
            deterministic,
        )
        return self.ln_out(x)

    @staticmethod
    def score(hidden: Float[Array, "*B D"], item: Float[Array, "*B D"]) -> Float[Array, "*B"]:
        """Dot product of encoder outputs with item embeddings (broadcast over leading axes)."""
        return jnp.sum(hidden * item, axis=-1)

    def score_items(
        self, hidden: Float[Array, "B D"], items: Int[Array, "B C"]
    ) -> Float[Array, "B C"]:
        """Scores of candidate items ``items`` against one hidden state per row."""
        return jnp.einsum("bd,bcd->bc", hidden, self.items.embedding[...][items])

    def next_hidden(
        self,
        seq_emb: Float[Array, "B L D"],
        seq_ids: Int[Array, "B L"],
        *,
        deterministic: bool = True,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "B D"]:
        """The hidden state that scores the item following each (left-padded) sequence."""
        return self.encode(seq_emb, seq_ids, deterministic=deterministic, key=key)[:, -1]

    @property
    def input_scale(self) -> float:
        """``embed(...)["seq"] == item_table()[seq] * input_scale``."""
        return math.sqrt(self.dim)

    def item_table(self) -> Float[Array, "I1 D"]:
        """The raw item embedding table, ``[I + 1, D]`` (row 0 = padding)."""
        return self.items.embedding[...]

    def score_all(self, hidden: Float[Array, "B D"]) -> Float[Array, "B I"]:
        """Scores of every item ``1..I`` (column ``j`` is item ``j + 1``)."""
        return hidden @ self.items.embedding[...][1:].T
