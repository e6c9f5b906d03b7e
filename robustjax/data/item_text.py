"""Item texts from a RecBole ``.item`` file, for text-aware models.

A RecBole item file is tab-separated with a typed header, e.g. MovieLens-100K's::

    item_id:token  movie_title:token_seq  release_year:token  class:token_seq
    1              Toy Story              1995                Animation Children's Comedy

An item's text joins its text columns (``token`` and ``token_seq``; ``float`` columns are
left out) in file order, a column whose name contains ``year`` in parentheses:
``"Toy Story (1995) Animation Children's Comedy"``. Empty cells are skipped.
"""

import os
from collections.abc import Sequence

from robustjax.data import _parse

MISSING = ("error", "token")


def find_item_file(data_path: str) -> str:
    """The RecBole ``.item`` file of a data set.

    Args:
      data_path: a ``.item`` file; a data file (``NAME.inter`` -> ``NAME.item`` beside it);
        or a folder holding ``BASENAME.item`` or exactly one ``*.item`` file.

    Returns:
      The path of the item file.

    Raises:
      ValueError: when there is none (or several, ambiguously), naming what was searched.
    """
    path = os.fspath(data_path)
    if os.path.isfile(path):
        if path.endswith(".item"):
            return path
        folder, name = os.path.split(path)
        candidates = [os.path.join(folder, os.path.splitext(name)[0] + ".item")]
    elif os.path.isdir(path):
        folder = path
        candidates = [os.path.join(path, os.path.basename(os.path.normpath(path)) + ".item")]
    else:
        raise ValueError(f"item texts: data path {path!r} does not exist.")
    for c in candidates:
        if os.path.isfile(c):
            return c
    found = sorted(f for f in os.listdir(folder or ".") if f.endswith(".item"))
    if len(found) == 1:
        return os.path.join(folder, found[0])
    raise ValueError(
        f"item texts: no RecBole item file for data path {path!r} (looked for "
        f"{candidates[0]!r}; {len(found)} *.item files in {folder!r}: {found[:5]}). Text "
        "models need a RecBole folder with <name>.item (columns item_id:token and text "
        "columns such as movie_title:token_seq), e.g. ../shared/data/ml-100k."
    )


def read_item_file(path: str) -> dict[str, str]:
    """``{item token: text}`` of every row of a RecBole ``.item`` file (module docstring)."""
    lines = _parse.read_lines(path)
    header = [c.strip() for c in lines.lines[0].split("\t")]
    names = [c.partition(":")[0] for c in header]
    types = [c.partition(":")[2] for c in header]
    if "item_id" not in names:
        raise ValueError(
            f"{lines.where(0)}: a RecBole item file needs an 'item_id:token' column, got "
            f"header {lines.lines[0]!r}."
        )
    id_col = names.index("item_id")
    text_cols = [k for k, t in enumerate(types) if k != id_col and t in ("token", "token_seq")]
    if not text_cols:
        raise ValueError(
            f"{lines.where(0)}: no text columns (type token or token_seq) besides item_id in "
            f"header {lines.lines[0]!r}; item texts cannot be built from it."
        )
    texts = {}
    for row, line in enumerate(lines.lines[1:], start=1):
        cells = line.rstrip("\r\n").split("\t")
        if len(cells) != len(header):
            raise ValueError(
                f"{lines.where(row)}: {len(cells)} tab-separated cells, expected "
                f"{len(header)} as in the header {lines.lines[0]!r}."
            )
        parts = []
        for k in text_cols:
            cell = " ".join(cells[k].split())
            if cell:
                parts.append(f"({cell})" if "year" in names[k] else cell)
        texts[cells[id_col].strip()] = " ".join(parts)
    return texts


def load_item_texts(
    data_path: str, item_tokens: Sequence[str], *, missing: str = "error"
) -> list[str]:
    """The text of each item of a split, in dense item id order.

    Args:
      data_path: the data set's file or folder (``DataConfig.path``) or its ``.item`` file;
        see :func:`find_item_file`.
      item_tokens: str [I], the original id token of each dense item id (e.g.
        ``split.train.item_tokens``); items are matched to rows by this token.
      missing: what an item without a row gets: ``"error"`` (default) raises, ``"token"``
        uses the text ``"item <token>"`` (no content: such items are only told apart by
        their ID embedding).

    Returns:
      ``I`` strings, ``texts[i]`` for dense item ``i``.
    """
    if missing not in MISSING:
        raise ValueError(
            f"load_item_texts: missing={missing!r} is unknown; expected one of {MISSING}."
        )
    path = find_item_file(data_path)
    table = read_item_file(path)
    tokens = [str(t) for t in item_tokens]
    absent = [t for t in tokens if t not in table]
    if absent and missing == "error":
        raise ValueError(
            f"load_item_texts: {len(absent)} of {len(tokens)} items have no row in {path!r} "
            f"(first: {absent[:5]}); the item file must cover the interactions' item ids, or "
            "pass missing='token' to give them the text 'item <token>'."
        )
    return [table.get(t, f"item {t}") for t in tokens]


__all__ = ["MISSING", "find_item_file", "load_item_texts", "read_item_file"]
