"""A small random BERT checkpoint in Hugging Face format, so tests need no download.

:func:`write_tiny_checkpoint` writes the three files that
:func:`robustjax.text.load_checkpoint` reads (:mod:`robustjax.text.hf_format`).
"""

import json
import os
from collections.abc import Sequence

import numpy as np

from robustjax.text.hf_format import SPECIAL_TOKENS, EncoderConfig, require_package

# The tiny tokenizer's vocabulary after the specials: punctuation, digits, letters, word
# pieces (so any lower-case word tokenizes without [UNK]), then common and genre words.
_PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_COMMON_WORDS = (
    "the a an of and in to is it for on with as at by from this that be are was he she they "
    "we you i his her their its not but or all one two new man men woman life love story "
    "day night time world war king city house girl boy big little last first good bad dark "
    "star wars toy dead blue red black white american movie film part ii iii return"
)
# MovieLens genres, lower-cased and split as BertPreTokenizer splits them
_GENRE_WORDS = (
    "action adventure animation children comedy crime documentary drama fantasy noir horror "
    "musical mystery romance sci fi thriller western unknown"
)
_WORDS = tuple(f"{_COMMON_WORDS} {_GENRE_WORDS}".split(" "))


def _tiny_vocab(words: Sequence[str] | None) -> list[str]:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    digits = [str(d) for d in range(10)]
    pieces = [f"##{c}" for c in letters + digits]
    extra = list(_WORDS if words is None else words)
    vocab = list(SPECIAL_TOKENS) + _PUNCT + digits + letters + pieces
    seen = set(vocab)
    for w in extra:
        if w not in seen:
            vocab.append(w)
            seen.add(w)
    return vocab


def write_tiny_checkpoint(
    folder: str,
    *,
    seed: int = 0,
    hidden: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate: int = 64,
    words: Sequence[str] | None = None,
) -> str:
    """Writes a random BERT checkpoint in Hugging Face format (for tests).

    The tokenizer is a lower-casing WordPiece tokenizer (BertNormalizer, BertPreTokenizer,
    ``[CLS] $A [SEP]`` template) with [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then
    punctuation, digits, letters, ``##``-pieces of letters and digits, and ``words`` (by
    default common English words and the MovieLens genre words). Weights are drawn from
    ``seed``: matrices with standard deviation 0.2 (large enough that attention is far from
    uniform), layer-norm scales near 1 and biases near 0. Max positions 64, two token types.

    Args:
      folder: created if missing; its three files are overwritten.
      seed: numpy seed of the weights.
      hidden: encoder hidden size.
      num_layers: encoder layers.
      num_heads: attention heads per layer.
      intermediate: feed-forward inner size.
      words: whole words added to the vocabulary (lower case), or None for the default.

    Returns:
      ``folder``.
    """
    require_package("safetensors")
    tokenizers = require_package("tokenizers")
    from safetensors.numpy import save_file

    vocab = _tiny_vocab(words)
    cfg = EncoderConfig(
        vocab_size=len(vocab),
        hidden=hidden,
        num_layers=num_layers,
        num_heads=num_heads,
        intermediate=intermediate,
        max_positions=64,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
    )
    weights = _tiny_weights(cfg, seed)
    tok = _tiny_tokenizer(tokenizers, vocab)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg.to_hf(), f, indent=2)
    save_file(weights, os.path.join(folder, "model.safetensors"))
    tok.save(os.path.join(folder, "tokenizer.json"))
    return folder


def _tiny_weights(cfg: EncoderConfig, seed: int) -> dict[str, np.ndarray]:
    """The tensors of a ``BertModel`` of sizes ``cfg`` (torch names and layouts), drawn from
    numpy ``seed`` in a fixed order (see :func:`write_tiny_checkpoint`)."""
    hidden, intermediate = cfg.hidden, cfg.intermediate
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=0.2):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    def norm(prefix):
        return {
            f"{prefix}.weight": (1.0 + normal(hidden, scale=0.1)),
            f"{prefix}.bias": normal(hidden, scale=0.1),
        }

    def linear(prefix, n_in, n_out):  # torch layout [out, in]
        return {f"{prefix}.weight": normal(n_out, n_in), f"{prefix}.bias": normal(n_out)}

    w = {
        "embeddings.word_embeddings.weight": normal(cfg.vocab_size, hidden),
        "embeddings.position_embeddings.weight": normal(cfg.max_positions, hidden),
        "embeddings.token_type_embeddings.weight": normal(cfg.type_vocab_size, hidden),
        **norm("embeddings.LayerNorm"),
    }
    for i in range(cfg.num_layers):
        p = f"encoder.layer.{i}"
        for name in ("query", "key", "value"):
            w.update(linear(f"{p}.attention.self.{name}", hidden, hidden))
        w.update(linear(f"{p}.attention.output.dense", hidden, hidden))
        w.update(norm(f"{p}.attention.output.LayerNorm"))
        w.update(linear(f"{p}.intermediate.dense", hidden, intermediate))
        w.update(linear(f"{p}.output.dense", intermediate, hidden))
        w.update(norm(f"{p}.output.LayerNorm"))
    w.update(linear("pooler.dense", hidden, hidden))  # unused by the encoder, as in HF files
    return w


def _tiny_tokenizer(tokenizers, vocab: list[str]):
    """A lower-casing BERT WordPiece ``tokenizers.Tokenizer`` over ``vocab``."""
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

    tok = tokenizers.Tokenizer(
        models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]")
    )
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok
