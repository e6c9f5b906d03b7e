"""Split folders and format auto-detection."""

import inspect
import os

import numpy as np

from robustjax.data import _parse, loaders
from robustjax.data.table import InteractionTable, SplitData

FORMATS = ("atomic", "movielens", "delimited", "user-lines", "pairs", "split-folder", "synthetic")
_EXTS = ("", ".tsv", ".txt", ".csv", ".inter", ".dat")
_PARTS = {"train": ("train",), "valid": ("valid", "val", "validation", "dev"), "test": ("test",)}


def _find_part(path: str, part: str) -> str | None:
    for stem in _PARTS[part]:
        for ext in _EXTS:
            p = os.path.join(path, stem + ext)
            if os.path.isfile(p):
                return p
    return None


def _sniff_file(path: str, max_lines: int | None = None) -> str:
    """'atomic', 'movielens', 'user-lines' or 'pairs' for a single file, else ValueError.

    The name and the first line decide MovieLens (``u.data``, ``ratings.dat``,
    ``ratings.csv``, ``::``) and atomic files (``.inter``, typed header). Otherwise the
    structure of the whole file decides, so a bad line is judged the same wherever it is
    (the loader then reports it with file, line and value): a first line of known column
    names (``user_id``, ``userId``, ``rating``, ...) is a header; lines with the same
    2-4 fields are pairs; lines of varying length whose first tokens are all distinct are
    user lines (one line per user); varying lengths with repeated first tokens are pairs
    with malformed lines when most lines have the same 2-4 fields, else user lines with a
    repeated user. Ids are tokens, so alphanumeric ids are legal in both.

    Args:
        path: the file.
        max_lines: only for tests of the detection itself; None reads the whole file.
    """
    name = os.path.basename(path).lower()
    if name.endswith(".inter"):
        return "atomic"
    if name in ("u.data", "ratings.dat", "ratings.csv"):
        return "movielens"
    lines = _parse.read_lines(path)
    head = lines.lines if max_lines is None else lines.lines[:max_lines]
    if "::" in head[0]:
        return "movielens"
    if ":token" in head[0] or ":float" in head[0]:
        return "atomic"
    sep = _parse.guess_sep(head[0])
    split = (lambda ln: ln.rstrip().split(sep)) if sep else str.split
    if loaders.looks_like_header(split(head[0])):
        return "pairs"
    if sep:
        lens = np.fromiter((ln.rstrip().count(sep) + 1 for ln in head), np.int64, len(head))
    else:
        lens = np.fromiter((len(ln.split()) for ln in head), np.int64, len(head))
    if np.all(lens == lens[0]) and 2 <= lens[0] <= 4:
        return "pairs"
    if lens.max() > 1:
        firsts = [split(ln)[0] for ln in head]
        if len(set(firsts)) == len(firsts):
            return "user-lines"
        mode = int(np.bincount(lens).argmax())
        if 2 <= mode <= 4 and np.mean(lens == mode) >= 0.5:
            return "pairs"
        return "user-lines"
    raise ValueError(
        f"Cannot detect the format of {path!r} from its name or lines (first line: "
        f"{head[0][:80]!r}; {len(set(lens.tolist()))} distinct field count(s) "
        f"{sorted(set(lens.tolist()))[:6]}): expected pairs (2-4 fields per line: user item "
        f"[rating [timestamp]]) or user lines (user item1 item2 ..., one line per user). "
        f"Pass format= one of {list(FORMATS)}."
    )


def _read_part(path: str):
    kind = _sniff_file(path)
    if kind == "user-lines":
        return loaders.read_user_lines(path)
    if kind == "pairs":
        return loaders.read_pairs_in_order(path), None
    if kind == "atomic":
        return loaders.read_atomic(path), None
    return loaders.read_movielens(path), None


def carve_valid(
    table: InteractionTable, ratio: float, *, seed: int
) -> tuple[InteractionTable, InteractionTable]:
    """Moves a seeded random ``round(ratio * n_u)`` of each user's rows to a validation part.

    Row order is kept in both parts. Since ``ratio < 0.5`` leaves at least one row in
    train for every user, no user becomes cold.

    Returns:
        (train, valid) in the same id space.
    """
    if not 0.0 <= ratio < 0.5:
        raise ValueError(f"valid_ratio must be in [0, 0.5), got valid_ratio={ratio!r}.")
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(table)), table.user))
    counts = np.bincount(table.user, minlength=table.num_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(table), dtype=np.int64)
    rank[order] = np.arange(len(table)) - starts[table.user[order]]
    n_valid = np.rint(ratio * counts).astype(np.int64)
    to_valid = rank < n_valid[table.user]
    return table.subset(~to_valid), table.subset(to_valid)


def load_split_folder(path: str, *, valid_ratio: float = 0.1, seed: int = 0) -> SplitData:
    """Loads a folder with train/valid/test files into one id space.

    Files are ``train``, ``valid`` (or ``val``/``validation``/``dev``) and ``test`` with an
    extension among .tsv/.txt/.csv/.inter/.dat (or none). Each may be a pair file or a
    user-lines file (detected from the whole file). If there is no validation file
    (LightGCN folders), ``round(valid_ratio * n_u)`` random training rows of each user
    (seeded) become the validation part, and ``SplitData.carved_valid`` says so (in a
    run's ``data.json``). The given split is not checked for users
    without training rows (lastfm-lightgcn has 2 such test users); see
    ``splits.check_cold``.

    Args:
        path: the folder.
        valid_ratio: fraction of each user's training rows carved out when there is no
            validation file.
        seed: seed of that carving.

    Returns:
        SplitData named after the folder.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"Split folder not found: {path!r}.")
    files = {p: _find_part(path, p) for p in _PARTS}
    for p in ("train", "test"):
        if files[p] is None:
            raise ValueError(
                f"Split folder {path!r} has no {p} file (looked for {_PARTS[p][0]}"
                f"{{{','.join(e or '<none>' for e in _EXTS)}}}); found {sorted(os.listdir(path))}."
            )
    parts = {p: _read_part(f) for p, f in files.items() if f is not None}
    names = list(parts)
    extra = [u for _, u in parts.values() if u is not None]
    extra_users = np.concatenate(extra) if extra else np.array([], dtype=str)
    tables = dict(zip(names, loaders.build_with_users([parts[p][0] for p in names], extra_users)))
    carved = None
    if "valid" not in tables:
        tables["train"], tables["valid"] = carve_valid(tables["train"], valid_ratio, seed=seed)
        carved = {
            "from": os.path.basename(files["train"]),
            "valid_ratio": valid_ratio,
            "seed": seed,
            "rows": len(tables["valid"]),
            "users": int(np.unique(tables["valid"].user).size),
        }
    name = os.path.basename(os.path.normpath(path))
    return SplitData(
        tables["train"], tables["valid"], tables["test"], name=name, carved_valid=carved
    )


def resolve_data_file(path: str) -> str:
    """The one interaction file of a folder that is not a split folder.

    A folder such as ``ml-1m/`` (one data file plus a README) or a RecBole folder
    (``x.inter`` beside ``x.item``/``x.user``) resolves to that file; anything else is
    ambiguous and reported with the candidates.
    """
    names = sorted(
        n
        for n in os.listdir(path)
        if not n.startswith(".")
        and os.path.isfile(os.path.join(path, n))
        and not n.lower().endswith((".md", ".json", ".zip", ".sha256", ".item", ".user"))
    )
    inter = [n for n in names if n.endswith(".inter")]
    if len(inter) == 1:
        return os.path.join(path, inter[0])
    if len(names) == 1:
        return os.path.join(path, names[0])
    raise ValueError(
        f"Folder {path!r} has no train and test files, so it is not a split folder, and it "
        f"holds {len(names)} candidate data files {names[:8]}; pass the data file itself, or "
        f"format= one of {list(FORMATS)}."
    )


def detect_format(path: str) -> str:
    """The format name of ``path`` when it is unambiguous, else ValueError listing FORMATS."""
    path = os.fspath(path)
    if os.path.isdir(path):
        found = {p: _find_part(path, p) for p in _PARTS}
        if found["train"] and found["test"]:
            return "split-folder"
        if any(found.values()):
            have = sorted(os.path.basename(f) for f in found.values() if f)
            missing = [p for p in ("train", "test") if not found[p]]
            raise ValueError(
                f"Folder {path!r} holds {have} but no {' or '.join(missing)} file, so it is "
                f"not a split folder (expected train and test files; valid is optional and "
                f"otherwise carved from train by DataConfig.valid_ratio). Add the missing "
                f"part, or pass one file (e.g. {os.path.join(path, have[0])!r}) to split it "
                f"with DataConfig.split."
            )
        return _sniff_file(resolve_data_file(path))
    if not os.path.exists(path):
        raise ValueError(f"Data path not found: {path!r}.")
    return _sniff_file(path)


def load(path: str | None, *, format: str | None = None, **options) -> InteractionTable | SplitData:
    """Loads any supported format, detecting it when ``format`` is None.

    Args:
        path: file or folder (ignored for "synthetic").
        format: one of FORMATS, or None to detect from the name and first lines.
        **options: keyword arguments of the matching loader (e.g. ``sep``, ``columns``).

    Returns:
        SplitData for "split-folder", otherwise an InteractionTable.
    """
    from robustjax.data.synthetic import synthetic

    if format is None:
        if path is None:
            format = "synthetic"
        else:
            format = detect_format(path)
    fns = {
        "atomic": loaders.load_atomic,
        "movielens": loaders.load_movielens,
        "delimited": loaders.load_delimited,
        "user-lines": loaders.load_user_lines,
        "pairs": loaders.load_pairs_in_order,
        "split-folder": load_split_folder,
    }
    if format == "synthetic":
        return synthetic(**options)
    if format not in fns:
        raise ValueError(f"Unknown format={format!r}; valid formats are {list(FORMATS)}.")
    if path is None:
        raise ValueError(f"format={format!r} needs a path, got path=None.")
    if format != "split-folder" and os.path.isdir(path):
        path = resolve_data_file(path)
    params = inspect.signature(fns[format]).parameters
    unknown = sorted(set(options) - set(params) - {"path"})
    if unknown:
        raise TypeError(
            f"load(format={format!r}): unknown options {unknown}; valid ones are "
            f"{[p for p in params if p != 'path']}."
        )
    return fns[format](path, **options)
