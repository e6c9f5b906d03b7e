"""The encoder interface shared by the transformer sequence models (SASRec, BERT4Rec).

:class:`SequenceEncoder` holds what the two models do alike: ``encode`` runs
:func:`robustjax.models.transformer.encode_sequence` over the model's ``positions`` table,
``blocks`` and ``dropout`` rate, then the model's output head; ``next_hidden`` is the
encoder output at the last position of the model's next-item inputs. A model sets
``where`` (its name in errors) and ``causal``, and overrides :meth:`input_norm`,
:meth:`output` and :meth:`next_inputs` where it differs from the defaults.
"""

from collections.abc import Callable
from typing import ClassVar

from flax import nnx
from jaxtyping import Float, Int, PRNGKeyArray

from robustjax.models.transformer import check_encoder_args, encode_sequence
from robustjax.types import Array


class SequenceEncoder(nnx.Module):
    """Base of SASRec and BERT4Rec; a subclass's constructor calls :meth:`_init_tables`
    (the ``items`` and ``positions`` tables, ``dim`` and ``dropout``), then creates its
    ``blocks`` and heads."""

    where: ClassVar[str]
    causal: ClassVar[bool]

    def _init_tables(
        self,
        sizes: tuple[int, int, int, int, int, float],
        *,
        item_rows: int,
        init: nnx.Initializer,
        rngs: nnx.Rngs,
    ) -> None:
        """Validates the constructor's ``sizes = (num_items, max_len, dim, num_blocks,
        num_heads, dropout)`` (:func:`~robustjax.models.transformer.check_encoder_args`),
        creates the ``items`` table (``item_rows`` rows) and the ``positions`` table (in
        that order, drawing from ``rngs``) with ``init``, and records the sizes."""
        check_encoder_args(self.where, *sizes)
        num_items, max_len, dim, _, _, dropout = sizes
        self.items = nnx.Embed(item_rows, dim, embedding_init=init, rngs=rngs)
        self.positions = nnx.Embed(max_len, dim, embedding_init=init, rngs=rngs)
        self.num_items, self.max_len, self.dim = num_items, max_len, dim
        self.dropout = dropout

    def input_norm(self) -> Callable[[Array], Array] | None:
        """Applied to ``E[seq] + P`` before the blocks (None: no norm)."""
        return None

    def output(self, x: Float[Array, "B L D"]) -> Float[Array, "B L D"]:
        """The output head applied to the last block's states."""
        return x

    def next_inputs(
        self, seq_emb: Float[Array, "B L D"], seq_ids: Int[Array, "B L"]
    ) -> tuple[Float[Array, "B L D"], Int[Array, "B L"]]:
        """The inputs whose last position scores the next item (default: the sequence)."""
        return seq_emb, seq_ids

    def encode(
        self,
        seq_emb: Float[Array, "B L D"],
        seq_ids: Int[Array, "B L"],
        *,
        deterministic: bool,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "B L D"]:
        """Runs the transformer (and output head) on (possibly perturbed) input embeddings.

        Args:
          seq_emb: input embeddings from ``embed(...)["seq"]`` (times ``input_scale``),
            possibly perturbed.
          seq_ids: the item ids, used only for the padding mask (0 = padding).
          deterministic: static; True disables dropout (evaluation).
          key: dropout key, required when ``deterministic=False``.

        Returns:
          Hidden state at each position, [B, L, D]; nothing depends on padding positions.
          With ``causal`` (SASRec) row t depends only on items ``<= t``, otherwise
          (BERT4Rec) on every non-padding position.
        """
        if seq_emb.ndim != 3 or seq_emb.shape[:2] != seq_ids.shape:
            raise ValueError(
                f"{self.where}.encode: seq_emb shape {seq_emb.shape} does not match "
                f"seq_ids shape {seq_ids.shape}; expected [B, L, D] and [B, L]."
            )
        if seq_emb.shape[2] != self.dim:
            raise ValueError(
                f"{self.where}.encode: seq_emb has dim {seq_emb.shape[2]}, the model "
                f"has dim={self.dim}."
            )
        x = encode_sequence(
            self.blocks,
            self.positions.embedding[...],
            seq_emb,
            seq_ids,
            rate=self.dropout,
            causal=self.causal,
            deterministic=deterministic,
            key=key,
            where=self.where,
            input_norm=self.input_norm(),
        )
        return self.output(x)

    def next_hidden(
        self,
        seq_emb: Float[Array, "B L D"],
        seq_ids: Int[Array, "B L"],
        *,
        deterministic: bool = True,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "B D"]:
        """The hidden state that scores the item following each (left-padded) sequence:
        the encoder output at the last position of :meth:`next_inputs`, [B, D]."""
        emb, ids = self.next_inputs(seq_emb, seq_ids)
        return self.encode(emb, ids, deterministic=deterministic, key=key)[:, -1]
