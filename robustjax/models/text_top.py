"""Trainable top encoder layers of a text item tower (``text_trainable_layers = k > 0``).

The frozen encoder layers below run once (:func:`robustjax.text.encode_states`); their
token states ``[R, T, H]`` and mask are frozen leaves of :class:`TextTop`, which recomputes
``f_i = pool(top_k(states_i))`` from trainable copies of the checkpoint's top ``k`` layers
(:func:`load_top_layers`), so a fresh model's features equal the frozen encoder's.
:func:`store_top_layers` copies trained layers back into an encoder, for text attacks.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Float, Int, Shaped

from robustjax.types import Array


class TextTop(nnx.Module):
    """The top ``k`` encoder layers, trainable, over cached states of the frozen layers.

    ``features(rows) = pool(layer_k(...layer_1(states[rows])))`` with the encoder's mean
    pooling and L2 normalisation (:meth:`robustjax.text.TextEncoder.pool`).

    Args:
      states: float32 ``[R, T, H]`` token states entering the top layers (from
        :func:`robustjax.text.encode_states`), or their shape (zeros, to be filled).
      mask: float32 ``[R, T]`` 1 at real tokens (None with a shape: zeros).
      encoder_cfg: the encoder's sizes (:class:`robustjax.text.EncoderConfig`).
      num_layers: k >= 1.
      rngs: NNX random streams; :func:`load_top_layers` copies the checkpoint's weights.
    """

    def __init__(self, states, mask, encoder_cfg, num_layers: int, *, rngs: nnx.Rngs):
        from robustjax.text.encoder import BertLayer

        if isinstance(states, tuple):
            states, mask = np.zeros(states, np.float32), np.zeros(states[:2], np.float32)
        if np.ndim(states) != 3 or np.shape(mask) != np.shape(states)[:2]:
            raise ValueError(
                f"TextTop: states must be float [R, T, H] and mask [R, T], got shapes "
                f"{np.shape(states)} and {np.shape(mask)}."
            )
        if np.shape(states)[2] != encoder_cfg.hidden:
            raise ValueError(
                f"TextTop: states have H={np.shape(states)[2]}; the encoder's hidden size is "
                f"{encoder_cfg.hidden}."
            )
        if not 1 <= num_layers <= encoder_cfg.num_layers:
            raise ValueError(
                f"TextTop: num_layers={num_layers!r}; expected 1..{encoder_cfg.num_layers} "
                "(the encoder's layers)."
            )
        self.states = nnx.Param(jnp.asarray(states, jnp.float32))
        self.mask = nnx.Param(jnp.asarray(mask, jnp.float32))
        self.layers = nnx.List([BertLayer(encoder_cfg, rngs=rngs) for _ in range(num_layers)])

    def features(self, rows: Int[Array, "*N"] | None = None) -> Float[Array, "*N H"]:
        """Features of item rows ``rows`` (None: all), float32 ``[*N, H]``."""
        x = jax.lax.stop_gradient(self.states[...])
        m = jax.lax.stop_gradient(self.mask[...])
        if rows is not None:
            x, m = x[rows.reshape(-1)], m[rows.reshape(-1)]
        f = self.run(x, m)
        return f if rows is None else f.reshape(*rows.shape, f.shape[-1])

    def run(self, states: Float[Array, "N T H"], mask: Shaped[Array, "N T"]) -> Float[Array, "N H"]:
        """The top layers and pooling on given states entering them (e.g. of perturbed
        word embeddings through the frozen layers below)."""
        from robustjax.text.encoder import TextEncoder

        for layer in self.layers:
            states = layer(states, mask)
        return TextEncoder.pool(states, mask)


def load_top_layers(top: TextTop, encoder) -> None:
    """Copies the last ``len(top.layers)`` layers of ``encoder`` (a
    :class:`~robustjax.text.TextEncoder`) into ``top`` (in place)."""
    for mine, theirs in _layer_pairs(top, encoder):
        nnx.update(mine, nnx.state(theirs, nnx.Param))


def store_top_layers(top: TextTop, encoder) -> None:
    """Copies ``top``'s layers into the last ``len(top.layers)`` layers of ``encoder`` (in
    place): the inverse of :func:`load_top_layers`."""
    for mine, theirs in _layer_pairs(top, encoder):
        nnx.update(theirs, nnx.state(mine, nnx.Param))


def _layer_pairs(top: TextTop, encoder) -> list:
    """``(top layer j, encoder layer first + j)`` pairs, ``first = len(encoder.layers) -
    len(top.layers)``: the encoder layers that ``top`` trains."""
    first = len(encoder.layers) - len(top.layers)
    return [(layer, encoder.layers[first + j]) for j, layer in enumerate(top.layers)]


__all__ = ["TextTop", "load_top_layers", "store_top_layers"]
