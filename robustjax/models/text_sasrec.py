"""Text-SASRec: SASRec whose item table is a text item tower's output.

Every use of SASRec's item embeddings (inputs ``E[seq] * sqrt(D)``, targets and output
scores) goes through :meth:`SASRec.item_table`; here it is
:meth:`robustjax.models.text_tower.TextItemTower.table` on the frozen text features of
items ``0..I`` (row 0, the padding item, has zero features). Items never seen in training
are embedded from their text alone (the ID embedding starts at zero).

The constructor takes the feature *shape* (``text_dim``), so the run folder can rebuild the
module from JSON keyword arguments; :func:`with_text_features` fills the features (a
saved checkpoint holds them). The feature leaf ``items/features`` is frozen:
``TextSASRec.frozen_params`` names it for the optimizer
(:func:`robustjax.train.sparse_step.with_frozen`), and the tower reads it under
``stop_gradient``. With ``text_trainable_layers = k > 0`` the tower trains the encoder's
top ``k`` layers over cached token states instead
(:class:`robustjax.models.text_tower.TextTop`; frozen leaves ``items/top/states`` and
``items/top/mask``, filled by :func:`with_text_top`).
"""

import numpy as np
from flax import nnx
from jaxtyping import Float, Int

from robustjax.models.sasrec import SASRec
from robustjax.models.text_tower import (
    FEATURES_LEAF,
    TextItemTower,
    TextTop,
    load_top_layers,
    with_text_features,
)
from robustjax.types import Array


class TextSASRec(SASRec):
    """SASRec (:class:`robustjax.models.sasrec.SASRec`) with a text item tower.

    Args:
      num_items: I, as :class:`SASRec`.
      max_len: L, as :class:`SASRec`.
      *sasrec_args: :class:`SASRec`'s further positional argument, ``dim`` (D).
      **sasrec_kwargs: :class:`SASRec`'s keyword arguments, with its defaults: ``dim``,
        ``num_blocks``, ``num_heads``, ``dropout``.
      text_dim: H, the encoder's feature size.
      id_embedding: add a trainable (zero-initialised) item ID embedding.
      text_encoder: the encoder checkpoint the features come from (recorded for text
        attacks; with trainable layers, the encoder's sizes are read from it).
      text_max_len: the token length the features come from (recorded for text attacks).
      text_trainable_layers: k, the encoder's top layers trained with the tower (0: frozen
        features).
      text_tokens: T, tokens per cached state row (with ``text_trainable_layers > 0``).
      rngs: NNX random streams.
    """

    frozen_params = (f"items/{FEATURES_LEAF}",)

    def __init__(
        self,
        num_items: int,
        max_len: int,
        *sasrec_args,
        text_dim: int,
        id_embedding: bool = True,
        text_encoder: str = "",
        text_max_len: int = 0,
        text_trainable_layers: int = 0,
        text_tokens: int = 0,
        rngs: nnx.Rngs,
        **sasrec_kwargs,
    ):
        super().__init__(num_items, max_len, *sasrec_args, rngs=rngs, **sasrec_kwargs)
        if text_dim < 1:
            raise ValueError(f"TextSASRec: text_dim must be >= 1, got {text_dim}.")
        top = None
        if text_trainable_layers:
            from robustjax.text import load_checkpoint

            if text_tokens < 1:
                raise ValueError(
                    f"TextSASRec: text_trainable_layers={text_trainable_layers} needs "
                    f"text_tokens >= 1 (tokens per cached state row), got {text_tokens!r}."
                )
            shape = (num_items + 1, text_tokens, text_dim)
            encoder_cfg = load_checkpoint(text_encoder).config
            top = TextTop(shape, None, encoder_cfg, text_trainable_layers, rngs=rngs)
        # replaces SASRec's ID table; every item embedding is read through item_table()
        self.items = TextItemTower(
            (num_items + 1, text_dim), self.dim, id_embedding=id_embedding, top=top, rngs=rngs
        )
        self.frozen_params = tuple(f"items/{leaf}" for leaf in self.items.frozen_params())
        self.text_encoder, self.text_max_len = text_encoder, text_max_len

    def item_table(self) -> Float[Array, "I1 D"]:
        """The tower's output for items ``0..I``, ``[I + 1, D]`` (row 0 = padding)."""
        return self.items.table()

    def item_from_text(
        self, text_emb: Float[Array, "N H"], items: Int[Array, " N"]
    ) -> Float[Array, "N D"]:
        """The tower on given encoder outputs (items ``1..I``; ``items`` picks ID rows)."""
        return self.items.from_text(text_emb, items)


def with_text_top(graphdef, params, states, mask, encoder):
    """``params`` of a :class:`TextSASRec` with trainable top layers, with its cached
    states ``[I + 1, T, H]`` / mask ``[I + 1, T]`` (row 0: the padding item, zeros) and its
    top layers copied from ``encoder`` (a :class:`~robustjax.text.TextEncoder`)."""
    model = nnx.merge(graphdef, params)
    top = model.items.top
    if top.states[...].shape != np.shape(states) or top.mask[...].shape != np.shape(mask):
        raise ValueError(
            f"with_text_top: states {np.shape(states)} / mask {np.shape(mask)}; the tower "
            f"holds {top.states[...].shape} / {top.mask[...].shape}."
        )
    top.states.set_value(np.asarray(states, np.float32))
    top.mask.set_value(np.asarray(mask, np.float32))
    load_top_layers(top, encoder)
    return nnx.split(model, nnx.Param)[1]


def sequence_text_features(features: Float[Array, "I H"]) -> np.ndarray:
    """float32 ``[I + 1, H]``: item features with a zero row 0 for the padding item."""
    features = np.asarray(features, np.float32)
    return np.concatenate([np.zeros((1, features.shape[1]), np.float32), features])


__all__ = ["TextSASRec", "sequence_text_features", "with_text_features", "with_text_top"]
