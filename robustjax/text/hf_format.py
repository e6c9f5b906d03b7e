"""The Hugging Face BERT checkpoint format that :mod:`robustjax.text` reads and writes.

A checkpoint is a folder with ``REQUIRED_FILES``: ``config.json`` (a ``BertModel`` config,
read and written as :class:`EncoderConfig`), ``model.safetensors`` and ``tokenizer.json``
(a WordPiece tokenizer with ``SPECIAL_TOKENS``). Reading and writing the last two need the
``text`` extra (:func:`require_package`).
"""

import dataclasses

INSTALL_HINT = "pip install 'robustjax[text]'"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Sizes of a BERT encoder, as read from a Hugging Face ``config.json``."""

    vocab_size: int
    hidden: int
    num_layers: int
    num_heads: int
    intermediate: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float

    def __post_init__(self):
        for name in (
            "vocab_size",
            "hidden",
            "num_layers",
            "num_heads",
            "intermediate",
            "max_positions",
            "type_vocab_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"EncoderConfig.{name} must be an int >= 1, got {value!r}.")
        if self.hidden % self.num_heads:
            raise ValueError(
                f"EncoderConfig: num_heads={self.num_heads} must divide hidden={self.hidden}."
            )
        if not self.layer_norm_eps > 0:
            raise ValueError(
                f"EncoderConfig.layer_norm_eps must be > 0, got {self.layer_norm_eps!r}."
            )

    @classmethod
    def from_hf(cls, hf: dict, *, where: str = "config.json") -> "EncoderConfig":
        """Reads a ``BertModel`` config dict; ``where`` names the file in errors."""
        if hf.get("model_type", "bert") != "bert":
            raise ValueError(
                f"{where}: model_type={hf.get('model_type')!r}, expected 'bert' (a BertModel)."
            )
        if hf.get("hidden_act", "gelu") != "gelu":
            raise ValueError(
                f"{where}: hidden_act={hf.get('hidden_act')!r}, expected 'gelu' (exact GELU)."
            )
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(
                f"{where}: position_embedding_type={hf.get('position_embedding_type')!r}, "
                "expected 'absolute'."
            )
        keys = {
            "vocab_size": "vocab_size",
            "hidden": "hidden_size",
            "num_layers": "num_hidden_layers",
            "num_heads": "num_attention_heads",
            "intermediate": "intermediate_size",
            "max_positions": "max_position_embeddings",
        }
        missing = [k for k in keys.values() if k not in hf]
        if missing:
            raise ValueError(f"{where}: missing keys {missing}; expected a BertModel config.")
        return cls(
            **{field: hf[key] for field, key in keys.items()},
            type_vocab_size=hf.get("type_vocab_size", 2),
            layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
        )

    def to_hf(self) -> dict:
        """The ``config.json`` dict of a ``BertModel`` with these sizes."""
        return {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "hidden_act": "gelu",
            "position_embedding_type": "absolute",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": self.max_positions,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
            "pad_token_id": 0,
        }


def require_package(module: str):
    """Imports ``module`` (``safetensors``, ``tokenizers``), or raises an ImportError that
    says how to install the ``text`` extra."""
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(
            f"robustjax.text needs the package {module!r}, which is not installed; run "
            f"`{INSTALL_HINT}`."
        ) from e
