"""Vectorised text parsing with precise error locations (private)."""

import itertools
import os
import re
from typing import NamedTuple

import numpy as np


class Lines(NamedTuple):
    """Non-blank lines of a file; ``linenos`` maps row -> 1-based line (None: row + 1 + offset)."""

    path: str
    lines: list
    linenos: np.ndarray | None
    offset: int = 0

    def lineno(self, row: int) -> int:
        if self.linenos is not None:
            return int(self.linenos[row])
        return row + 1 + self.offset

    def where(self, row: int) -> str:
        return f"{self.path}, line {self.lineno(row)}"

    def drop_first(self) -> "Lines":
        """Lines without the first one (a header)."""
        if self.linenos is not None:
            return Lines(self.path, self.lines[1:], self.linenos[1:], self.offset)
        return Lines(self.path, self.lines[1:], None, self.offset + 1)


def _short(text: str, n: int = 80) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def read_lines(path: str) -> Lines:
    """Reads a text file; blank lines are skipped but keep their line numbers."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"Data file not found: {path!r}.")
    if os.path.isdir(path):
        raise ValueError(f"Expected a data file but {path!r} is a folder.")
    with open(path, encoding="utf-8", errors="strict", newline=None) as f:
        try:
            text = f.read()
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e}).") from None
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    kept = [ln for ln in lines if ln and not ln.isspace()]
    if not kept:
        raise ValueError(f"Data file {path!r} is empty (no non-blank lines).")
    linenos = None
    if len(kept) != len(lines):
        linenos = np.array([i + 1 for i, ln in enumerate(lines) if ln and not ln.isspace()])
    return Lines(path, kept, linenos)


def guess_sep(line: str) -> str | None:
    """'\\t' for a tab-separated line without spaces, ',' for a comma-separated line
    without tabs, else None (any whitespace)."""
    if "\t" in line and " " not in line.strip():
        return "\t"
    if "," in line and "\t" not in line:
        return ","
    return None


def split_fixed(lines: Lines, sep: str | None, ncols: int | None = None) -> np.ndarray:
    """Splits every line into exactly ``ncols`` fields (default: those of the first line).

    Fields are kept as text: ids are tokens, and ratings and timestamps are converted
    column by column (:func:`to_number`), so one fractional value never turns the ids into
    floats. Files whose fields are all canonical integers (``0``, ``-3``, ``42``, no
    leading zeros or signs) take a fast path through ``np.loadtxt``; every other file and
    every error goes through Python splitting, which locates the bad line.

    Returns:
        [n, ncols] array of fields: int64 when every field is a canonical integer (its
        text is then exactly ``str(value)``), else str.
    """
    ls = lines.lines
    fast, delim = ls, sep
    if sep is not None and len(sep) > 1:  # loadtxt takes single-character delimiters
        fast, delim = [ln.replace(sep, "\x1f") for ln in ls], "\x1f"
    try:
        out = np.loadtxt(
            fast, delimiter=delim, dtype=np.int64, ndmin=2, comments=None, quotechar=None
        )
    except (ValueError, OverflowError, TypeError):
        out = None
    if (
        out is not None
        and out.shape == (len(ls), ncols or out.shape[1])
        and _canonical_text(ls, out, 1 if sep is None else len(sep))
    ):
        return out
    n = len(ls)
    if sep is None:
        rows = [ln.split() for ln in ls]
        lens = np.fromiter(map(len, rows), dtype=np.int64, count=n)
        ncols = int(lens[0]) if ncols is None else ncols
        _check_counts(lines, lens, ncols, "whitespace")
        flat = list(itertools.chain.from_iterable(rows))
    else:
        counts = np.fromiter((ln.count(sep) for ln in ls), dtype=np.int64, count=n) + 1
        ncols = int(counts[0]) if ncols is None else ncols
        _check_counts(lines, counts, ncols, repr(sep))
        flat = sep.join(ls).split(sep)
    return np.array(flat, dtype=str).reshape(n, ncols)


_POW10 = 10 ** np.arange(19, dtype=np.int64)


def _canonical_text(ls: list, out: np.ndarray, seplen: int) -> bool:
    """True when the lines are exactly ``str(value)`` fields joined by one separator each.

    Any other spelling of a parsed integer (``007``, ``+5``, padding, repeated whitespace)
    is longer than ``str(value)``, so equal total lengths mean every field is canonical.
    """
    if out.size == 0:
        return False
    v = out.reshape(-1)
    mag = np.abs(v)
    if np.any(mag < 0):  # -2**63 has no positive counterpart
        return False
    digits = np.maximum(np.searchsorted(_POW10, mag, side="right"), 1) + (v < 0)
    expect = int(digits.sum()) + out.shape[0] * (out.shape[1] - 1) * seplen
    return expect == sum(map(len, ls))


def _check_counts(lines: Lines, counts: np.ndarray, ncols: int, sepname: str) -> None:
    bad = np.flatnonzero(counts != ncols)
    if bad.size:
        r = int(bad[0])
        raise ValueError(
            f"{lines.where(r)}: expected {ncols} columns separated by {sepname}, got "
            f"{int(counts[r])}: {_short(lines.lines[r])} ({bad.size} malformed line(s) in all)."
        )


def split_ragged(lines: Lines, sep: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Splits lines with a variable number of fields.

    Returns:
        (flat str [total], lens int64 [n]) with fields of line r at flat[off[r]:off[r]+lens[r]].
    """
    rows = [ln.split(sep) if sep is not None else ln.split() for ln in lines.lines]
    lens = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.array(list(itertools.chain.from_iterable(rows)), dtype=str)
    return flat, lens


def to_number(col: np.ndarray, dtype, what: str, lines: Lines, rows: np.ndarray | None = None):
    """Converts a str column to ``dtype``; on failure names file, line and the bad text.

    Args:
        col: str [n] values.
        dtype: np.float32, np.float64 or np.int64.
        what: column description for the message.
        lines: where the values came from.
        rows: row index (into ``lines``) of each value; default ``arange(n)``.
    """
    if col.dtype.kind in "iuf":
        return col.astype(dtype)
    try:
        out = col.astype(dtype)
    except (ValueError, OverflowError):
        conv = int if np.dtype(dtype).kind == "i" else float
        for k, v in enumerate(col):
            try:
                conv(v)
            except (ValueError, OverflowError):
                r = k if rows is None else int(rows[k])
                raise ValueError(
                    f"{lines.where(r)}: {what} {str(v)!r} is not a number "
                    f"(line: {_short(lines.lines[r])})."
                ) from None
        raise
    if np.dtype(dtype).kind == "f" and not np.all(np.isfinite(out)):
        k = int(np.flatnonzero(~np.isfinite(out))[0])
        r = k if rows is None else int(rows[k])
        raise ValueError(f"{lines.where(r)}: {what} {str(col[k])!r} is not finite.")
    return out


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_CANONICAL_INT = re.compile(r"(0|-?[1-9][0-9]*)\Z")


def canonical_ints(tokens: np.ndarray) -> np.ndarray:
    """bool [n]: whether each str token is a canonical integer that fits in int64."""
    ok = np.fromiter(
        (_CANONICAL_INT.match(t) is not None and len(t) <= 20 for t in tokens.tolist()),
        dtype=bool,
        count=len(tokens),
    )
    if ok.any():
        big = ok.copy()
        big[ok] = [not (-(2**63) <= int(t) < 2**63) for t in tokens[ok].tolist()]
        ok &= ~big
    return ok


def encode(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Dense ids for the union of token columns, in sorted token order.

    Tokens are the exact text of the file (never a float): they sort numerically when all
    of them are canonical int64 integers, otherwise lexicographically.

    Args:
        cols: int64 columns (canonical integers, from :func:`split_fixed`'s fast path) or
            str token columns.

    Returns:
        (ids, tokens): int32 id arrays, one per column, and the str token array.
    """
    bounds = np.cumsum([len(c) for c in cols])[:-1]
    if cols and all(np.asarray(c).dtype.kind == "i" for c in cols):
        uniq, inv = np.unique(np.concatenate(cols), return_inverse=True)
        inv = inv.reshape(-1).astype(np.int32)
        return list(np.split(inv, bounds)), uniq.astype(str)
    allv = np.concatenate([np.asarray(c).astype(str) for c in cols]) if cols else np.array([], str)
    uniq, inv = np.unique(allv, return_inverse=True)
    inv = inv.reshape(-1)
    if uniq.size and canonical_ints(uniq).all():
        order = np.argsort(uniq.astype(np.int64), kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        uniq, inv = uniq[order], rank[inv]
    inv = inv.astype(np.int32)
    return list(np.split(inv, bounds)), uniq.astype(str)


def check_int_ids(col: np.ndarray, what: str, lines: Lines, expected: str) -> None:
    """Raises when an id token is not an integer, naming file, line and value.

    Args:
        col: int64 or str [n] id column, one value per row of ``lines``.
        what: e.g. "user id".
        lines: where the values came from.
        expected: why integers are expected (e.g. "MovieLens ids are integers").
    """
    if col.dtype.kind == "i":
        return
    uniq, inv = np.unique(col, return_inverse=True)
    bad = ~canonical_ints(uniq)
    if not bad.any():
        return
    rows = np.flatnonzero(bad[inv.reshape(-1)])
    r = int(rows[0])
    raise ValueError(
        f"{lines.where(r)}: {what} {str(col[r])!r} is not an integer; expected an integer "
        f"id ({expected}) (line: {_short(lines.lines[r])}; {rows.size} such row(s) in all). "
        f"Use format='pairs' or 'delimited' for files with other id tokens."
    )
