"""BERT4Rec: bidirectional transformer over item sequences (Sun et al., CIKM 2019).

Items are ``1..I``; id 0 is padding and id ``I + 1`` is the ``[MASK]`` token, so the item
table has ``I + 2`` rows. Sequences are left-padded (the most recent item sits at ``L - 1``)
and positions are right-aligned, as in :mod:`robustjax.models.sasrec`.

Architecture (the paper's, i.e. BERT's post-LN encoder):

    x = Dropout(LN(E[seq] + P))                       # h0 = v + p, as in the paper
    per block:  x = LN(x + Dropout(Attention(x)));  x = LN(x + Dropout(FFN(x)))
    out = LN(GELU(W x + b))                           # the output projection of the paper

with ``FFN(x) = W2 GELU(W1 x)`` (inner size ``4 D``; the blocks are
:class:`robustjax.models.transformer.TransformerBlock` with ``norm_first=False``), attention over all non-padding keys
(no causal mask: every position sees the past *and* the future), padding positions zeroed
after the embedding and after each block. Scores are dot products with the (tied) item
table plus a per-item output bias. Embeddings are initialised N(0, 0.02^2) as in BERT.

The input item embeddings are not scaled (``input_scale == 1``): the paper's input is
``h0 = v + p``. (SASRec's code scales them by ``sqrt(D)``; BERT4Rec did so here too before,
which the ``experiments/bert4rec_ml1m`` figures still reflect.)

Interface shared with SASRec (so sequence attacks work unchanged): ``embed`` returns the
input embeddings (attacks perturb ``"seq"``), ``encode`` runs the transformer on
them, ``next_hidden`` gives the state that scores the next item, ``score_items`` /
``score_all`` score candidates, and ``item_table`` / ``input_scale`` serve discrete
(item-substitution) attacks. Dropout takes an explicit ``key``; no hidden RNG state.
"""

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Float, Int

from robustjax.models.sasrec import embed_sequence_batch
from robustjax.models.sequence_encoder import SequenceEncoder
from robustjax.models.transformer import BlockStyle, gelu, make_blocks
from robustjax.types import Array

_BLOCKS = BlockStyle(ff_mult=4, activation="gelu", norm_first=False, epsilon=1e-12)


class BERT4Rec(SequenceEncoder):
    """BERT4Rec encoder over item sequences.

    Args:
      num_items: I; item ids are ``1..I``, 0 is padding, ``I + 1`` is ``[MASK]``
        (``mask_id``); the table has ``I + 2`` rows.
      max_len: L, the (static) maximum sequence length; positional table size.
      dim: D, hidden size (64 in the paper).
      num_blocks: transformer blocks (2).
      num_heads: attention heads (2); must divide ``dim``.
      dropout: dropout rate on embeddings, attention weights and sublayer outputs (0.1).
    """

    where = "BERT4Rec"
    causal = False

    def __init__(
        self,
        num_items: int,
        max_len: int,
        dim: int = 64,
        *,
        num_blocks: int = 2,
        num_heads: int = 2,
        dropout: float = 0.1,
        rngs: nnx.Rngs,
    ):
        sizes = (num_items, max_len, dim, num_blocks, num_heads, dropout)
        init = nnx.initializers.truncated_normal(0.02)
        self._init_tables(sizes, item_rows=num_items + 2, init=init, rngs=rngs)
        self.ln_emb = nnx.LayerNorm(dim, epsilon=1e-12, rngs=rngs)
        self.blocks = make_blocks(
            _BLOCKS, num_blocks, dim, num_heads, kernel_init=init, rngs=rngs, where=self.where
        )
        self.head = nnx.Linear(dim, dim, kernel_init=init, rngs=rngs)
        self.ln_head = nnx.LayerNorm(dim, epsilon=1e-12, rngs=rngs)
        self.out_bias = nnx.Param(jnp.zeros((num_items + 2,), jnp.float32))

    @property
    def mask_id(self) -> int:
        """Id of the ``[MASK]`` token, ``I + 1``."""
        return self.num_items + 1

    @property
    def input_scale(self) -> float:
        """``embed(...)["seq"] == item_table()[seq] * input_scale``: 1, the paper's
        ``h0 = v + p`` has no ``sqrt(D)`` factor (SASRec's has)."""
        return 1.0

    def item_table(self) -> Float[Array, "I1 D"]:
        """The raw item embedding rows ``0..I``, ``[I + 1, D]`` (row 0 = padding).

        The ``[MASK]`` row ``I + 1`` is left out, so discrete sequence attacks that pick
        replacement items from this table (as for SASRec) never insert the mask token.
        """
        return self.items.embedding[...][: self.num_items + 1]

    def embed(self, batch: dict) -> dict[str, Float[Array, "B L D"]]:
        """Input and target item embeddings of a batch.

        Args:
          batch: ``{"seq": int32 [B, L]}`` with ids in ``0..I + 1`` (0 = padding,
            ``I + 1`` = ``[MASK]``); optional ``"pos"``/``"neg"`` int32 [B, L].

        Returns:
          ``{"seq": E[seq]}`` [B, L, D] (unscaled, ``input_scale == 1``), plus
          ``"pos": E[pos]``, ``"neg": E[neg]`` when present.
        """
        return embed_sequence_batch(self.items.embedding[...], batch, self.input_scale)

    def input_norm(self) -> nnx.LayerNorm:
        """The layer norm of the summed input embeddings ``E[seq] + P``."""
        return self.ln_emb

    def output(self, x: Float[Array, "B L D"]) -> Float[Array, "B L D"]:
        """The paper's output projection ``LN(GELU(W x + b))``."""
        return self.ln_head(gelu(self.head(x)))

    def next_inputs(
        self, seq_emb: Float[Array, "B L D"], seq_ids: Int[Array, "B L"]
    ) -> tuple[Float[Array, "B L D"], Int[Array, "B L"]]:
        """Drops the oldest position and appends ``[MASK]``, so :meth:`next_hidden` (the
        encoder output at that last, masked position) is BERT4Rec's next-item prediction.

        The ``[MASK]`` embedding is taken from the model's own table
        (``E[I + 1] * input_scale``), not from ``seq_emb`` (which may be perturbed).
        """
        if seq_emb.ndim != 3 or seq_emb.shape[:2] != seq_ids.shape:
            raise ValueError(
                f"BERT4Rec.next_hidden: seq_emb shape {seq_emb.shape} does not "
                f"match seq_ids shape {seq_ids.shape}; expected [B, L, D], [B, L]."
            )
        b = seq_ids.shape[0]
        mask_emb = self.items.embedding[...][self.mask_id] * self.input_scale  # [D]
        mask_emb = jnp.broadcast_to(mask_emb.astype(seq_emb.dtype), (b, 1, self.dim))
        emb = jnp.concatenate([seq_emb[:, 1:], mask_emb], axis=1)
        ids = jnp.concatenate(
            [seq_ids[:, 1:], jnp.full((b, 1), self.mask_id, seq_ids.dtype)], axis=1
        )
        return emb, ids

    def score_items(
        self, hidden: Float[Array, "B D"], items: Int[Array, "B C"]
    ) -> Float[Array, "B C"]:
        """Scores ``<hidden, E[item]> + bias[item]`` of candidates ``items`` (ids in 1..I)."""
        if hidden.ndim != 2 or items.ndim != 2 or hidden.shape[0] != items.shape[0]:
            raise ValueError(
                f"BERT4Rec.score_items: expected hidden [B, D] and items [B, C], "
                f"got shapes {hidden.shape} and {items.shape}."
            )
        table = self.items.embedding[...]
        return jnp.einsum("bd,bcd->bc", hidden, table[items]) + self.out_bias[...][items]

    def score_all(self, hidden: Float[Array, "*B D"]) -> Float[Array, "*B I"]:
        """Scores of every item ``1..I`` (column ``j`` is item ``j + 1``); leading axes free."""
        if hidden.shape[-1] != self.dim:
            raise ValueError(
                f"BERT4Rec.score_all: hidden has last dim {hidden.shape[-1]}, the "
                f"model has dim={self.dim}."
            )
        table = self.items.embedding[...][1 : self.num_items + 1]  # [I, D]
        bias = self.out_bias[...][1 : self.num_items + 1]
        return hidden @ table.T + bias.reshape((1,) * (hidden.ndim - 1) + (-1,))
