"""Vectorised text parsing with precise error locations (private)."""

import itertools
import os
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
    """'\\t' when the line is tab-separated without spaces, else None (any whitespace)."""
    return "\t" if "\t" in line and " " not in line.strip() else None


def split_fixed(lines: Lines, sep: str | None, ncols: int | None = None) -> np.ndarray:
    """Splits every line into exactly ``ncols`` fields (default: those of the first line).

    All-numeric files take a fast path through ``np.loadtxt``; anything else (and every
    error) goes through Python splitting, which locates the bad line.

    Returns:
        [n, ncols] array of fields: int64 or float64 when every field is a number,
        else str.
    """
    ls = lines.lines
    fast, delim = ls, sep
    if sep is not None and len(sep) > 1:  # loadtxt takes single-character delimiters
        fast, delim = [ln.replace(sep, "\x1f") for ln in ls], "\x1f"
    for dtype in (np.int64, np.float64):
        try:
            out = np.loadtxt(
                fast, delimiter=delim, dtype=dtype, ndmin=2, comments=None, quotechar=None
            )
        except (ValueError, OverflowError, TypeError):
            continue
        if out.shape == (len(ls), ncols or out.shape[1]) and np.all(np.isfinite(out)):
            return out
        break
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


def encode(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Dense ids for the union of token columns, in sorted token order.

    Tokens sort numerically when all of them are integers (then the token is ``str(int)``),
    otherwise lexicographically.

    Returns:
        (ids, tokens): int32 id arrays, one per column, and the str token array.
    """
    if cols and all(np.asarray(c).dtype.kind == "i" for c in cols):
        uniq, inv = np.unique(np.concatenate(cols), return_inverse=True)
        inv = inv.reshape(-1).astype(np.int32)
        bounds = np.cumsum([len(c) for c in cols])[:-1]
        return list(np.split(inv, bounds)), uniq.astype(str)
    allv = np.concatenate([np.asarray(c).astype(str) for c in cols]) if cols else np.array([], str)
    try:
        ints = allv.astype(np.int64)
        uniq, inv = np.unique(ints, return_inverse=True)
        tokens = uniq.astype(str)
    except (ValueError, OverflowError):
        uniq, inv = np.unique(allv, return_inverse=True)
        tokens = uniq.astype(str)
    inv = inv.reshape(-1).astype(np.int32)
    bounds = np.cumsum([len(c) for c in cols])[:-1]
    return list(np.split(inv, bounds)), tokens


def id_column(col: np.ndarray) -> np.ndarray:
    """An id column as int64 when numeric and integral, else as str tokens."""
    if col.dtype.kind == "f":
        if np.all(col == np.round(col)) and np.all(np.abs(col) < 2.0**53):
            return col.astype(np.int64)
        return col.astype(str)
    return col
