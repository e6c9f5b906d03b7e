"""Tokenization of texts into fixed-length ``[CLS] ... [SEP]`` id batches, and back."""

import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from robustjax.text.checkpoint import TextCheckpoint


class TokenBatch(NamedTuple):
    """Token ids and mask of ``N`` texts padded to ``T`` tokens.

    Attributes:
      ids: int32 ``[N, T]``: ``[CLS]``, the text's tokens, ``[SEP]``, then ``[PAD]``.
      mask: int32 ``[N, T]``: 1 at real tokens (CLS and SEP included), 0 at padding.
    """

    ids: np.ndarray
    mask: np.ndarray


def text_list(texts: Sequence[str], *, where: str, hint: str = "") -> list[str]:
    """``texts`` as a list; a bare ``str`` (a sequence of characters, a common slip) raises
    a TypeError naming ``where``, with ``hint`` appended."""
    if isinstance(texts, str):
        raise TypeError(f"{where}: texts must be a sequence of strings, got one str{hint}.")
    return list(texts)


def tokenize(ckpt: TextCheckpoint, texts: Sequence[str], *, max_len: int = 32) -> TokenBatch:
    """Tokenizes ``texts`` as Hugging Face's BERT tokenizers do with ``truncation=True``.

    Each text's word pieces are cut to ``max_len - 2``, wrapped in ``[CLS]``/``[SEP]`` and
    padded with ``[PAD]`` to ``max_len``.

    Args:
      ckpt: the checkpoint whose tokenizer and special ids are used.
      texts: N strings (a bare ``str`` is rejected: wrap it in a list).
      max_len: T, in ``[3, ckpt.config.max_positions]``.

    Returns:
      A :class:`TokenBatch` of int32 ``[N, T]`` arrays.
    """
    limit = ckpt.config.max_positions
    if not isinstance(max_len, int) or isinstance(max_len, bool):
        raise TypeError(f"tokenize: max_len must be an int, got max_len={max_len!r}.")
    if not 3 <= max_len <= limit:
        raise ValueError(
            f"tokenize: max_len={max_len} must be in [3, {limit}] (room for [CLS], one token "
            f"and [SEP]; at most the checkpoint's max_positions={limit})."
        )
    texts = text_list(texts, where="tokenize", hint="; use [text]")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(
            f"tokenize: texts[{bad[0]}] is {type(texts[bad[0]]).__name__}, expected str."
        )
    ids = np.full((len(texts), max_len), ckpt.pad_id, np.int32)
    mask = np.zeros((len(texts), max_len), np.int32)
    for row, enc in enumerate(ckpt.tokenizer.encode_batch(texts, add_special_tokens=False)):
        pieces = [ckpt.cls_id, *enc.ids[: max_len - 2], ckpt.sep_id]
        ids[row, : len(pieces)] = pieces
        mask[row, : len(pieces)] = 1
    return TokenBatch(ids, mask)


def detokenize(ckpt: TextCheckpoint, ids_row: np.ndarray, mask_row: np.ndarray) -> str:
    """Readable text of one tokenized row: the real, non-special tokens decoded, word pieces
    joined and punctuation reattached (``"toy story (1995) children's"``). Lower-cased for an
    uncased tokenizer; meant for reports, not an exact inverse of :func:`tokenize`.
    ``ids_row``/``mask_row`` are ``[T]`` integer arrays."""
    ids_row, mask_row = np.asarray(ids_row), np.asarray(mask_row)
    if ids_row.ndim != 1 or ids_row.shape != mask_row.shape:
        raise ValueError(
            f"detokenize: ids_row and mask_row must be [T] of one shape, got "
            f"{ids_row.shape} and {mask_row.shape}."
        )
    special = set(ckpt.special_ids)
    keep = [int(i) for i, m in zip(ids_row, mask_row, strict=True) if m and int(i) not in special]
    text = ckpt.tokenizer.decode(keep, skip_special_tokens=True)
    # BertPreTokenizer split punctuation off; rejoin it for reading ("( 1995 )" -> "(1995)")
    text = re.sub(r" ([.,!?;:)\]}%])", r"\1", text)
    text = re.sub(r"([(\[{$]) ", r"\1", text)
    return re.sub(r" ?([-'/&]) ?", r"\1", text)
