"""A BERT text encoder in Flax NNX that reproduces sentence-transformers' mean-pooled models.

    x_0 = LN_emb(word[ids] + position[0..T) + token_type[0])          (embed_tokens: word[ids])
    layer l (post-LN):  a = LN_a(x + Attn(x));  x_{l+1} = LN_f(a + W2 gelu(W1 a))
    out = normalize(sum_t mask_t x_L,t / max(sum_t mask_t, 1e-9))

``Attn`` is multi-head scaled dot-product attention over the unmasked keys; GELU is the
exact (erf) one, Hugging Face's ``"gelu"``. No dropout: the encoder runs in inference mode.
Weights load from a :class:`~robustjax.text.checkpoint.TextCheckpoint` with
:func:`encoder_from_checkpoint`.

Text attacks perturb the word embeddings (:meth:`TextEncoder.embed_tokens`) and run
:meth:`TextEncoder.encode_embeds`; fine-tuning the top layers can cache the lower layers'
states with :meth:`TextEncoder.hidden` (``stop_layer=k``, then ``start_layer=k``).
Shape letters: ``N`` texts, ``T`` tokens, ``H`` hidden size.
"""

import re

import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Float, Int, Shaped

from robustjax.models.transformer import gelu, multi_head_attention
from robustjax.text.checkpoint import TextCheckpoint
from robustjax.text.hf_format import EncoderConfig
from robustjax.types import Array

POOL_EPS = 1e-9  # sentence-transformers' clamp of the token count
NORM_EPS = 1e-12  # torch.nn.functional.normalize's clamp of the norm


class BertLayer(nnx.Module):
    """One post-LN BERT layer: self-attention, then the feed-forward network.

    Parameters (Hugging Face name in brackets): ``query``, ``key``, ``value``
    [attention.self.*], ``attn_out`` [attention.output.dense], ``ln_attn``
    [attention.output.LayerNorm], ``ff_in`` [intermediate.dense], ``ff_out``
    [output.dense], ``ln_ff`` [output.LayerNorm].
    """

    def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
        h, i, eps = cfg.hidden, cfg.intermediate, cfg.layer_norm_eps
        self.query = nnx.Linear(h, h, rngs=rngs)
        self.key = nnx.Linear(h, h, rngs=rngs)
        self.value = nnx.Linear(h, h, rngs=rngs)
        self.attn_out = nnx.Linear(h, h, rngs=rngs)
        self.ln_attn = nnx.LayerNorm(h, epsilon=eps, rngs=rngs)
        self.ff_in = nnx.Linear(h, i, rngs=rngs)
        self.ff_out = nnx.Linear(i, h, rngs=rngs)
        self.ln_ff = nnx.LayerNorm(h, epsilon=eps, rngs=rngs)
        self.num_heads = cfg.num_heads

    def __call__(
        self, x: Float[Array, "N T H"], mask: Shaped[Array, "N T"]
    ) -> Float[Array, "N T H"]:
        """Args: ``x`` float32 ``[N, T, H]`` states; ``mask`` ``[N, T]``, nonzero at real
        tokens (keys where it is 0 get no attention). Returns float32 ``[N, T, H]``."""
        q, k, v = self.query(x), self.key(x), self.value(x)
        att = multi_head_attention(q, k, v, (mask != 0)[:, None, :], self.num_heads)
        a = self.ln_attn(x + self.attn_out(att))
        ff = self.ff_out(gelu(self.ff_in(a)))
        return self.ln_ff(a + ff)


class TextEncoder(nnx.Module):
    """BERT encoder with mean pooling and L2 normalisation (see the module docstring).

    Args:
      cfg: sizes (from the checkpoint's ``config.json``).
      rngs: initialisation of random weights; :func:`encoder_from_checkpoint` overwrites
        them all.
    """

    def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
        self.word = nnx.Embed(cfg.vocab_size, cfg.hidden, rngs=rngs)
        self.position = nnx.Embed(cfg.max_positions, cfg.hidden, rngs=rngs)
        self.token_type = nnx.Embed(cfg.type_vocab_size, cfg.hidden, rngs=rngs)
        self.ln_emb = nnx.LayerNorm(cfg.hidden, epsilon=cfg.layer_norm_eps, rngs=rngs)
        self.layers = nnx.List([BertLayer(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.config = cfg

    def embed_tokens(self, ids: Int[Array, "N T"]) -> Float[Array, "N T H"]:
        """Word embeddings only (no position/type embeddings, no norm): the input that text
        attacks perturb. ``ids`` int32 ``[N, T]``; returns float32 ``[N, T, H]``."""
        return self.word(ids)

    def hidden(
        self,
        word_emb: Float[Array, "N T H"] | None,
        mask: Shaped[Array, "N T"],
        *,
        start_layer: int = 0,
        stop_layer: int | None = None,
        states: Float[Array, "N T H"] | None = None,
    ) -> Float[Array, "N T H"]:
        """Runs layers ``[start_layer, stop_layer)``.

        Args:
          word_emb: float32 ``[N, T, H]`` word embeddings (:meth:`embed_tokens`), used when
            ``start_layer == 0``: position and type-0 embeddings are added and the sum is
            layer-normed first. Ignored (may be None) when ``start_layer > 0``.
          mask: ``[N, T]`` int32 or float, 1 at real tokens (CLS/SEP included), 0 at padding.
          start_layer: first layer to run, in ``[0, num_layers]``.
          stop_layer: one past the last layer; None for ``num_layers``.
          states: float32 ``[N, T, H]``, the states entering ``start_layer`` (an earlier
            call's output with ``stop_layer=start_layer``); required when ``start_layer > 0``.

        Returns:
          float32 ``[N, T, H]``, the states leaving layer ``stop_layer - 1`` (the embedding
          output when the range is empty and ``start_layer == 0``).
        """
        num = len(self.layers)
        stop = num if stop_layer is None else stop_layer
        if not (isinstance(start_layer, int) and isinstance(stop, int)):
            raise TypeError(
                f"TextEncoder.hidden: start_layer and stop_layer must be ints, got "
                f"start_layer={start_layer!r}, stop_layer={stop_layer!r}."
            )
        if not 0 <= start_layer <= stop <= num:
            raise ValueError(
                f"TextEncoder.hidden: need 0 <= start_layer <= stop_layer <= num_layers={num}, "
                f"got start_layer={start_layer}, stop_layer={stop_layer}."
            )
        if start_layer == 0:
            if states is not None:
                raise ValueError(
                    "TextEncoder.hidden: states= is only for start_layer > 0; with "
                    "start_layer=0 the input is word_emb."
                )
            if word_emb is None:
                raise ValueError("TextEncoder.hidden: word_emb is required when start_layer=0.")
            t = word_emb.shape[1]
            if t > self.config.max_positions:
                raise ValueError(
                    f"TextEncoder.hidden: {t} tokens exceed max_positions="
                    f"{self.config.max_positions}; tokenize with a smaller max_len."
                )
            extra = self.position.embedding[:t] + self.token_type.embedding[0][None, :]
            x = self.ln_emb(word_emb + extra[None, :, :])
        else:
            if states is None:
                raise ValueError(
                    f"TextEncoder.hidden: start_layer={start_layer} needs states= (the states "
                    f"entering layer {start_layer}, from hidden(..., stop_layer={start_layer}))."
                )
            x = states
        if x.shape[:2] != mask.shape:
            raise ValueError(
                f"TextEncoder.hidden: mask shape {mask.shape} does not match the input's "
                f"[N, T] = {x.shape[:2]}."
            )
        for layer in self.layers[start_layer:stop]:
            x = layer(x, mask)
        return x

    @staticmethod
    def pool(states: Float[Array, "N T H"], mask: Shaped[Array, "N T"]) -> Float[Array, "N H"]:
        """Mean over the real tokens, then L2 normalisation.

        ``sum_t m_t x_t / max(sum_t m_t, 1e-9)``, divided by ``max(norm, 1e-12)``: an
        all-padding row gives the zero vector and a zero gradient, not NaN. Returns float32
        ``[N, H]``.
        """
        m = mask.astype(states.dtype)[:, :, None]
        mean = jnp.sum(states * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), POOL_EPS)
        # the clamp inside the square root keeps the gradient of an all-padding row finite
        # (0, where the norm's own gradient at 0 would be NaN); same value otherwise
        sq = jnp.sum(mean * mean, axis=-1, keepdims=True)
        return mean / jnp.sqrt(jnp.maximum(sq, NORM_EPS * NORM_EPS))

    def encode_embeds(
        self, word_emb: Float[Array, "N T H"], mask: Shaped[Array, "N T"]
    ) -> Float[Array, "N H"]:
        """Unit-norm float32 ``[N, H]`` text embeddings from word embeddings ``[N, T, H]``."""
        return self.pool(self.hidden(word_emb, mask), mask)

    def __call__(self, ids: Int[Array, "N T"], mask: Shaped[Array, "N T"]) -> Float[Array, "N H"]:
        """Unit-norm float32 ``[N, H]`` embeddings of token ids int32 ``[N, T]``."""
        return self.encode_embeds(self.embed_tokens(ids), mask)


_LAYER_NAMES = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "ln_attn",
    "intermediate.dense": "ff_in",
    "output.dense": "ff_out",
    "output.LayerNorm": "ln_ff",
}
_EMB_NAMES = {
    "embeddings.word_embeddings": "word",
    "embeddings.position_embeddings": "position",
    "embeddings.token_type_embeddings": "token_type",
    "embeddings.LayerNorm": "ln_emb",
}
_LAYER_RE = re.compile(r"encoder\.layer\.(\d+)\.(.+)")


def _hf_weights(ckpt: TextCheckpoint) -> dict[str, np.ndarray]:
    """The checkpoint's tensors with any ``bert.`` prefix dropped and gamma/beta renamed."""
    out = {}
    for name, value in ckpt.weights.items():
        name = name.removeprefix("bert.")
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
        name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
        out[name] = value
    return out


def encoder_from_checkpoint(ckpt: TextCheckpoint) -> TextEncoder:
    """A :class:`TextEncoder` holding the checkpoint's weights (float32).

    Tensor names may carry a ``bert.`` prefix; pooler, heads and buffers are ignored. Torch
    ``Linear`` weights ``[out, in]`` are transposed to NNX kernels ``[in, out]``.

    Raises:
      ValueError: a tensor the encoder needs is missing or has the wrong shape.
    """
    cfg = ckpt.config
    model = nnx.eval_shape(lambda: TextEncoder(cfg, rngs=nnx.Rngs(0)))
    weights = _hf_weights(ckpt)
    used = set()

    def take(name, expected_shape, transpose=False):
        if name not in weights:
            raise ValueError(
                f"encoder_from_checkpoint: {ckpt.path}/model.safetensors has no tensor "
                f"{name!r} (nor 'bert.{name}'); expected a BertModel checkpoint."
            )
        value = np.asarray(weights[name], np.float32)
        if transpose:
            value = value.T
        if value.shape != tuple(expected_shape):
            raise ValueError(
                f"encoder_from_checkpoint: tensor {name!r} has shape "
                f"{value.T.shape if transpose else value.shape}, expected "
                f"{tuple(expected_shape)[::-1] if transpose else tuple(expected_shape)} "
                f"for config {cfg}."
            )
        used.add(name)
        return jnp.asarray(value)

    def fill(module, prefix):
        if isinstance(module, nnx.Embed):
            v = module.embedding
            v.set_value(take(f"{prefix}.weight", v.shape))
        elif isinstance(module, nnx.LayerNorm):
            for var, hf in ((module.scale, "weight"), (module.bias, "bias")):
                var.set_value(take(f"{prefix}.{hf}", var.shape))
        elif isinstance(module, nnx.Linear):
            module.kernel.set_value(take(f"{prefix}.weight", module.kernel.shape, True))
            module.bias.set_value(take(f"{prefix}.bias", module.bias.shape))
        else:  # pragma: no cover - the layouts above are exhaustive
            raise TypeError(f"encoder_from_checkpoint: unexpected module {type(module)}.")

    for hf, attr in _EMB_NAMES.items():
        fill(getattr(model, attr), hf)
    for i, layer in enumerate(model.layers):
        for hf, attr in _LAYER_NAMES.items():
            fill(getattr(layer, attr), f"encoder.layer.{i}.{hf}")
    extra_layers = sorted(
        {int(m.group(1)) for n in weights if (m := _LAYER_RE.fullmatch(n))}
        - set(range(cfg.num_layers))
    )
    if extra_layers:
        raise ValueError(
            f"encoder_from_checkpoint: the weights hold layers {extra_layers} beyond "
            f"num_layers={cfg.num_layers} of {ckpt.path}/config.json."
        )
    return model
