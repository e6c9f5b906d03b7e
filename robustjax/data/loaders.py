"""Loaders for common recommendation file formats, all returning dense-id InteractionTables.

Ids are remapped densely in sorted order of the original tokens (numeric order when all
tokens are integers, so already dense 0-based ids map to themselves). Row order is kept.
"""

import os
from typing import NamedTuple

import numpy as np

from robustjax.data import _parse
from robustjax.data._parse import Lines
from robustjax.data.table import InteractionTable

_FIELDS = ("user", "item", "rating", "timestamp")


class Raw(NamedTuple):
    """Parsed columns before id remapping (tokens are str arrays)."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None = None
    timestamp: np.ndarray | None = None


def build(raws: list[Raw]) -> list[InteractionTable]:
    """Tables for several raw parts, sharing one id space built from the union of tokens."""
    (users, items) = ([r.user for r in raws], [r.item for r in raws])
    uids, utok = _parse.encode(*users)
    iids, itok = _parse.encode(*items)
    return [
        InteractionTable(u, i, r.rating, r.timestamp, utok, itok)
        for u, i, r in zip(uids, iids, raws)
    ]


def _columns(lines: Lines, body: np.ndarray, names: tuple) -> Raw:
    """Picks user/item/rating/timestamp columns of a str [n, c] array by ``names``."""
    idx = {nm: k for k, nm in enumerate(names) if nm in _FIELDS}
    rating = ts = None
    if "rating" in idx:
        rating = _parse.to_number(body[:, idx["rating"]], np.float32, "rating", lines)
    if "timestamp" in idx:
        ts = _parse.to_number(body[:, idx["timestamp"]], np.float64, "timestamp", lines)
    return Raw(body[:, idx["user"]], body[:, idx["item"]], rating, ts)


# ----------------------------------------------------------------------------- atomic
def read_atomic(path: str) -> Raw:
    lines = _parse.read_lines(path)
    header = lines.lines[0].split("\t")
    names = []
    for cell in header:
        name, _, _typ = cell.strip().partition(":")
        names.append({"user_id": "user", "item_id": "item"}.get(name, name))
    for need in ("user", "item"):
        if need not in names:
            raise ValueError(
                f"{lines.where(0)}: RecBole atomic header needs a '{need}_id:token' column, got "
                f"{lines.lines[0]!r}. Use load_delimited(columns=...) for other layouts."
            )
    if len(lines.lines) < 2:
        raise ValueError(
            f"Data file {path!r} has a header ({lines.lines[0]!r}) but no rows; expected "
            f"at least one interaction line after it."
        )
    body = _parse.split_fixed(lines.drop_first(), "\t", len(header))
    return _columns(lines.drop_first(), body, tuple(names))


def load_atomic(path: str) -> InteractionTable:
    """Loads a RecBole atomic ``.inter`` file (tab-separated, typed header).

    The header looks like ``user_id:token\\titem_id:token\\trating:float\\ttimestamp:float``;
    ``rating`` and ``timestamp`` are optional, other columns are ignored.

    Args:
        path: the ``.inter`` file.

    Returns:
        The interactions in file order.
    """
    return build([read_atomic(path)])[0]


# -------------------------------------------------------------------------- movielens
def _movielens_layout(lines: Lines) -> tuple[str, bool]:
    name = os.path.basename(lines.path).lower()
    first = lines.lines[0]
    if name.endswith(".dat") or "::" in first:
        return "::", False
    if name.endswith(".csv") or "," in first:
        return ",", not _parse.is_number(first.split(",")[0])
    return "\t", False


def read_movielens(path: str) -> Raw:
    lines = _parse.read_lines(path)
    sep, header = _movielens_layout(lines)
    if header:
        lines = lines.drop_first()
        if not lines.lines:
            raise ValueError(f"Data file {path!r} has a header but no rows.")
    body = _parse.split_fixed(lines, sep, 4)
    for k, what in enumerate(("user id", "item id")):
        _parse.check_int_ids(body[:, k], what, lines, "MovieLens ids are integers")
    return _columns(lines, body, _FIELDS)


def load_movielens(path: str) -> InteractionTable:
    """Loads MovieLens ratings: ``u.data`` (tab), ``ratings.dat`` (``::``) or ``ratings.csv``.

    All three have the columns user, item, rating, timestamp (the csv with a header
    ``userId,movieId,rating,timestamp``).

    Args:
        path: the ratings file.

    Returns:
        The ratings in file order, with ratings and timestamps.
    """
    return build([read_movielens(path)])[0]


# -------------------------------------------------------------------------- delimited
def _check_columns(columns) -> tuple:
    if isinstance(columns, str) or not isinstance(columns, (tuple, list)):
        raise TypeError(f"columns must be a tuple of names, got {columns!r}.")
    cols = tuple("_" if c is None else c for c in columns)
    valid = set(_FIELDS) | {"_"}
    for c in cols:
        if c not in valid:
            raise ValueError(
                f"columns={columns!r}: unknown column name {c!r}; use one of "
                f"{sorted(valid)} (or None to skip a column)."
            )
    named = [c for c in cols if c != "_"]
    if len(set(named)) != len(named):
        raise ValueError(f"columns={columns!r} names a column twice.")
    if "user" not in cols or "item" not in cols:
        raise ValueError(f"columns={columns!r} must name a 'user' and an 'item' column.")
    return cols


def read_delimited(path, *, sep="\t", columns=("user", "item"), header=False) -> Raw:
    cols = _check_columns(columns)
    lines = _parse.read_lines(path)
    if header:
        lines = lines.drop_first()
        if not lines.lines:
            raise ValueError(f"Data file {path!r} has a header but no rows.")
    body = _parse.split_fixed(lines, sep, len(cols))
    return _columns(lines, body, cols)


def load_delimited(
    path: str, *, sep: str | None = "\t", columns: tuple = ("user", "item"), header: bool = False
) -> InteractionTable:
    """Loads a generic delimited file.

    Args:
        path: the file.
        sep: field separator; None splits on any whitespace.
        columns: the meaning of each column, one of "user", "item", "rating", "timestamp",
            or None / "_" to skip it. Every line must have exactly ``len(columns)`` fields.
        header: skip the first line.

    Returns:
        The interactions in file order.
    """
    return build([read_delimited(path, sep=sep, columns=columns, header=header)])[0]


# ------------------------------------------------------------------------- user lines
def read_user_lines(path: str, *, sep: str | None = None) -> tuple[Raw, np.ndarray]:
    lines = _parse.read_lines(path)
    flat, lens = _parse.split_ragged(lines, sep)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    users = flat[starts]
    is_item = np.ones(flat.shape[0], dtype=bool)
    is_item[starts] = False
    user_of = np.repeat(np.arange(len(lens)), lens - 1)
    uniq, counts = np.unique(users, return_counts=True)
    if np.any(counts > 1):
        tok = uniq[counts > 1][0]
        rows = np.flatnonzero(users == tok)
        raise ValueError(
            f"{lines.where(int(rows[1]))}: user {str(tok)!r} already has a line (line "
            f"{lines.lineno(int(rows[0]))}); user-lines files need one line per user."
        )
    raw = Raw(users[user_of], flat[is_item])
    # Users without items still get an id: pass them as an extra user-only column.
    return raw, users


def load_user_lines(path: str, *, sep: str | None = None) -> InteractionTable:
    """Loads one-line-per-user files ``u i1 i2 ...`` (LightGCN, SASRec/S3-Rec sequences).

    The order within a line is kept as the row order (time order for sequence files);
    timestamps are None. A user whose line has no items keeps an id but no rows.

    Args:
        path: the file.
        sep: field separator; None splits on any whitespace.

    Returns:
        The interactions, grouped by line, in within-line order.
    """
    raw, users = read_user_lines(path, sep=sep)
    return build_with_users([raw], users)[0]


def build_with_users(raws: list[Raw], extra_users: np.ndarray) -> list[InteractionTable]:
    """Like :func:`build` but also registers ``extra_users`` tokens (users without rows)."""
    uids, utok = _parse.encode(*[r.user for r in raws], extra_users)
    iids, itok = _parse.encode(*[r.item for r in raws])
    return [
        InteractionTable(u, i, r.rating, r.timestamp, utok, itok)
        for u, i, r in zip(uids, iids, raws)
    ]


# ------------------------------------------------------------------------------ pairs
_HEADER_ALIASES = {
    "user": "user",
    "user_id": "user",
    "userid": "user",
    "uid": "user",
    "u": "user",
    "item": "item",
    "item_id": "item",
    "itemid": "item",
    "movieid": "item",
    "iid": "item",
    "i": "item",
    "rating": "rating",
    "weight": "rating",
    "score": "rating",
    "timestamp": "timestamp",
    "time": "timestamp",
    "ts": "timestamp",
    "seq_idx": "order",
    "order": "order",
    "position": "order",
    "pos": "order",
}


def looks_like_header(fields: list) -> bool:
    """A first line is a header when every field is a known column name (``user_id``, ...)."""
    keys = [t.strip().split(":")[0].lower() for t in fields]
    return bool(keys) and all(k in _HEADER_ALIASES for k in keys)


def read_pairs_in_order(path: str, *, sep: str | None = None, header: bool | None = None) -> Raw:
    lines = _parse.read_lines(path)
    if sep is None:
        sep = _parse.guess_sep(lines.lines[0])
        # Trailing separators or spaces (``1\t2\t``) do not make an empty column.
        lines = lines._replace(lines=[ln.rstrip() for ln in lines.lines])
    first = lines.lines[0].split(sep) if sep else lines.lines[0].split()
    if header is None:
        header = looks_like_header(first)
    if header:
        names = []
        for t in first:
            key = t.strip().split(":")[0].lower()
            if key not in _HEADER_ALIASES:
                raise ValueError(
                    f"{lines.where(0)}: unknown header column {t!r}; known names are "
                    f"{sorted(_HEADER_ALIASES)}. Use load_delimited(columns=...) instead."
                )
            names.append(_HEADER_ALIASES[key])
        lines = lines.drop_first()
        if not lines.lines:
            raise ValueError(f"Data file {path!r} has a header but no rows.")
    else:
        if not 2 <= len(first) <= 4:
            raise ValueError(
                f"{lines.where(0)}: pair files have 2-4 columns (user item [rating "
                f"[timestamp]]), got {len(first)}: {lines.lines[0]!r}."
            )
        names = ["user", "item", "rating", "timestamp"][: len(first)]
    if "user" not in names or "item" not in names:
        raise ValueError(f"{path}: header {first!r} must name a user and an item column.")
    body = _parse.split_fixed(lines, sep, len(names))
    raw = _columns(lines, body, tuple(names))
    if "order" in names:
        order = _parse.to_number(body[:, names.index("order")], np.float64, "order", lines)
        # Stable sort by (user, order): ties keep file order.
        perm = np.lexsort((order, _parse.encode(raw.user)[0][0]))
        raw = Raw(
            raw.user[perm],
            raw.item[perm],
            None if raw.rating is None else raw.rating[perm],
            None if raw.timestamp is None else raw.timestamp[perm],
        )
    return raw


def load_pairs_in_order(
    path: str, *, sep: str | None = None, header: bool | None = None
) -> InteractionTable:
    """Loads ``user item`` pair files whose row order is time order.

    Without a header, 3 columns are ``user item rating`` and 4 are
    ``user item rating timestamp``. With a header (auto-detected when ``header`` is None),
    columns are named, e.g. ml-1m's ``user_id item_id rating seq_idx``: a ``seq_idx``
    (or ``order``/``position``) column gives the order, rows are stably sorted by
    (user, seq_idx) and the table has no timestamps.

    Args:
        path: the file.
        sep: field separator; None: tab if the first line has tabs and no spaces, else comma
            if it has commas, else whitespace (trailing whitespace of a line is ignored).
        header: whether the first line is a header; None guesses (every field of the first
            line is a known column name such as ``user_id``/``userId``/``rating``).
            Ids are tokens: ``u1``/``i7`` are valid ids, numeric ids keep their exact text.

    Returns:
        The interactions in (per-user) time order.
    """
    return build([read_pairs_in_order(path, sep=sep, header=header)])[0]
