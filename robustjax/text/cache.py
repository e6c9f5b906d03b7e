"""Batched, jit-compiled text encoding with an on-disk cache of the embeddings."""

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robustjax.text.checkpoint import TextCheckpoint, cache_root
from robustjax.text.encoder import encoder_from_checkpoint
from robustjax.text.tokens import text_list, tokenize


@functools.partial(jax.jit, static_argnums=0)
def _encode_step(graphdef, params, ids, mask):
    return nnx.merge(graphdef, params)(ids, mask)


def _check_batch_size(batch_size, where: str) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"{where}: batch_size must be an int >= 1, got {batch_size!r}.")


def _batched(ckpt, step, ids, mask, batch_size: int, row_shape, *, progress=False) -> np.ndarray:
    """``step(graphdef, params, ids, mask)`` of the checkpoint's encoder over row batches of
    ``batch_size`` (the last padded, so one shape compiles), concatenated as float32
    ``[N, *row_shape]``."""
    if not len(ids):
        return np.zeros((0, *row_shape), np.float32)
    graphdef, params = nnx.split(encoder_from_checkpoint(ckpt))
    size = min(batch_size, len(ids))
    starts = range(0, len(ids), size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="encode_texts", unit="batch")
    parts = []
    for start in starts:
        b_ids, b_mask = ids[start : start + size], mask[start : start + size]
        n = b_ids.shape[0]
        if n < size:  # all-padding rows encode to zeros and are dropped
            b_ids = np.pad(b_ids, ((0, size - n), (0, 0)), constant_values=ckpt.pad_id)
            b_mask = np.pad(b_mask, ((0, size - n), (0, 0)))
        parts.append(
            np.asarray(step(graphdef, params, jnp.asarray(b_ids), jnp.asarray(b_mask)))[:n]
        )
    return np.concatenate(parts).astype(np.float32, copy=False)


def cache_path(
    ckpt: TextCheckpoint, texts: Sequence[str], *, max_len: int, cache_dir: str | None = None
) -> str:
    """``<cache_dir>/text_embeddings/<model sha256[:16]>-<sha256 of texts and max_len>[:16].npy``;
    ``cache_dir`` defaults to ``$ROBUSTJAX_CACHE`` or ``~/.cache/robustjax``."""
    key = json.dumps({"max_len": max_len, "texts": list(texts)}, ensure_ascii=False)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    root = cache_root() if cache_dir is None else cache_dir
    return os.path.join(root, "text_embeddings", f"{ckpt.sha256[:16]}-{digest[:16]}.npy")


def _read(path: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The cached array, or None when missing, unreadable, misshapen or not finite."""
    try:
        out = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if out.shape != shape or out.dtype != np.float32 or not np.all(np.isfinite(out)):
        return None
    return out


def encode_texts(
    ckpt: TextCheckpoint,
    texts: Sequence[str],
    *,
    max_len: int = 32,
    batch_size: int = 256,
    cache_dir: str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Unit-norm embeddings of ``texts``, cached on disk.

    Texts are tokenized to ``max_len`` tokens (:func:`robustjax.text.tokenize`) and encoded
    in batches of ``batch_size`` by one jit-compiled program (the last batch is padded, so
    one shape compiles). The result is saved at :func:`cache_path` (temporary file, then
    ``os.replace``), keyed by the model's sha256, the texts and ``max_len``; a cache file that
    cannot be read or has the wrong shape is recomputed and overwritten.

    Args:
      ckpt: the checkpoint (:func:`robustjax.text.load_checkpoint`).
      texts: N strings.
      max_len: T tokens per text, CLS and SEP included.
      batch_size: texts per compiled batch (>= 1).
      cache_dir: cache root; None for ``$ROBUSTJAX_CACHE`` or ``~/.cache/robustjax``.
      progress: show a tqdm bar over batches.

    Returns:
      float32 ``[N, H]`` numpy array; rows have L2 norm 1.
    """
    _check_batch_size(batch_size, "encode_texts")
    texts = text_list(texts, where="encode_texts")
    tokens = tokenize(ckpt, texts, max_len=max_len)  # validates texts and max_len
    shape = (len(texts), ckpt.config.hidden)
    path = cache_path(ckpt, texts, max_len=max_len, cache_dir=cache_dir)
    cached = _read(path, shape)
    if cached is not None:
        return cached
    out = _batched(
        ckpt, _encode_step, tokens.ids, tokens.mask, batch_size, shape[1:], progress=progress
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, out)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return out


@functools.partial(jax.jit, static_argnums=0, static_argnames="stop_layer")
def _states_step(graphdef, params, ids, mask, *, stop_layer):
    enc = nnx.merge(graphdef, params)
    return enc.hidden(enc.embed_tokens(ids), mask, stop_layer=stop_layer)


def encode_states(
    ckpt: TextCheckpoint,
    texts: Sequence[str],
    *,
    stop_layer: int,
    max_len: int = 32,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Token states of ``texts`` leaving encoder layer ``stop_layer - 1`` (the input of a
    trainable top: :class:`robustjax.models.text_tower.TextTop`). Not cached on disk.

    Tokens are trimmed to the longest text (exact: padded keys get no attention and are
    not pooled), so ``T <= max_len``.

    Args:
      ckpt: the checkpoint (:func:`robustjax.text.load_checkpoint`).
      texts: N strings.
      stop_layer: frozen layers run, in ``[0, num_layers]`` (0: the embedding output).
      max_len: tokens per text, CLS and SEP included.
      batch_size: texts per compiled batch (>= 1).

    Returns:
      ``(states float32 [N, T, H], mask float32 [N, T])`` numpy arrays, mask 1 at real
      tokens.
    """
    _check_batch_size(batch_size, "encode_states")
    num = ckpt.config.num_layers
    if not isinstance(stop_layer, int) or not 0 <= stop_layer <= num:
        raise ValueError(
            f"encode_states: stop_layer={stop_layer!r}; expected an int in [0, {num}] (the "
            f"checkpoint has {num} layers)."
        )
    texts = text_list(texts, where="encode_states")
    tokens = tokenize(ckpt, texts, max_len=max_len)
    t = max(int(tokens.mask.sum(axis=1).max(initial=1)), 1)
    ids, mask = tokens.ids[:, :t], tokens.mask[:, :t]
    step = functools.partial(_states_step, stop_layer=stop_layer)
    out = _batched(ckpt, step, ids, mask, batch_size, (t, ckpt.config.hidden))
    return out, mask.astype(np.float32)
