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

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Float, Int

from robustjax.models.sequence_encoder import SequenceEncoder
from robustjax.models.transformer import BlockStyle, make_blocks
from robustjax.types import Array


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


_BLOCKS = BlockStyle(ff_mult=1, activation="relu", norm_first=True, epsilon=1e-8)


class SASRec(SequenceEncoder):
    """SASRec encoder over item sequences.

    Args:
      num_items: I; item ids are ``1..I`` and the table has ``I + 1`` rows (row 0 = padding).
      max_len: L, the (static) sequence length; positional table size.
      dim: D, hidden size (50 in the paper).
      num_blocks: attention blocks (2).
      num_heads: attention heads (1); must divide ``dim``.
      dropout: dropout rate (0.2 for ML-1M).
    """

    where = "SASRec"
    causal = True

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
        sizes = (num_items, max_len, dim, num_blocks, num_heads, dropout)
        init = nnx.initializers.xavier_normal()
        self._init_tables(sizes, item_rows=num_items + 1, init=init, rngs=rngs)
        self.blocks = make_blocks(_BLOCKS, num_blocks, dim, num_heads, rngs=rngs, where=self.where)
        self.ln_out = nnx.LayerNorm(dim, epsilon=1e-8, rngs=rngs)

    def embed(self, batch: dict) -> dict[str, Float[Array, "B L D"]]:
        """Input and target item embeddings of a batch.

        Args:
          batch: ``{"seq": int32 [B, L], "pos": [B, L], "neg": [B, L]}`` (0 = padding);
            ``pos``/``neg`` are optional.

        Returns:
          ``{"seq": E[seq] * sqrt(D), "pos": E[pos], "neg": E[neg]}``, each [B, L, D].
        """
        return embed_sequence_batch(self.item_table(), batch, math.sqrt(self.dim))

    def output(self, x: Float[Array, "B L D"]) -> Float[Array, "B L D"]:
        """The final layer norm."""
        return self.ln_out(x)

    @staticmethod
    def score(hidden: Float[Array, "*B D"], item: Float[Array, "*B D"]) -> Float[Array, "*B"]:
        """Dot product of encoder outputs with item embeddings (broadcast over leading axes)."""
        return jnp.sum(hidden * item, axis=-1)

    def score_items(
        self, hidden: Float[Array, "B D"], items: Int[Array, "B C"]
    ) -> Float[Array, "B C"]:
        """Scores of candidate items ``items`` against one hidden state per row."""
        return jnp.einsum("bd,bcd->bc", hidden, self.item_table()[items])

    @property
    def input_scale(self) -> float:
        """``embed(...)["seq"] == item_table()[seq] * input_scale``."""
        return math.sqrt(self.dim)

    def item_table(self) -> Float[Array, "I1 D"]:
        """The raw item embedding table, ``[I + 1, D]`` (row 0 = padding); every use of the
        item embeddings goes through it (a subclass may compute it, as
        :class:`robustjax.models.text_sasrec.TextSASRec` does)."""
        return self.items.embedding[...]

    def score_all(self, hidden: Float[Array, "B D"]) -> Float[Array, "B I"]:
        """Scores of every item ``1..I`` (column ``j`` is item ``j + 1``)."""
        return hidden @ self.item_table()[1:].T
