"""Checkpoints as single ``.npz`` files (NumPy's format), written as a unit.

A checkpoint holds a pytree's leaves keyed by their tree path (``params/users/embedding/
value``, ...) and, under the key ``__meta__``, its metadata as JSON bytes. The file is
written under a temporary name, fsynced and renamed into place, so a crash at any point
leaves either the previous checkpoint or the new one, never a mix of the two. A readable
copy of the metadata is written beside it (``<name>.json``) afterwards; readers use the
copy inside the ``.npz``.

Restoring needs a template with the same structure (the freshly initialised state): the
leaves are matched by path, so a checkpoint of another model reports the missing and
unexpected paths, and a shape mismatch both shapes. Files of the older positional format
(``arr_0``, ... plus a ``.json`` sidecar) still load.
"""

import json
import os
import tempfile
import zipfile
from typing import Any

import jax
import numpy as np

from robustjax._json_files import parse_json
from robustjax.sharding import gather

_META = "__meta__"


def save_pytree(path: str, tree: Any, meta: dict | None = None) -> None:
    """Writes ``tree``'s leaves and ``meta`` to ``path`` (``.npz``) atomically, then a
    readable copy of ``meta`` to ``<path without .npz>.json``."""
    arrays = {}
    # gather: the whole value of multi-host arrays too (every process calls this)
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(gather(tree))[0]:
        name = leaf_name(key_path)
        if name in arrays or name == _META:
            raise ValueError(f"save_pytree: two leaves share the path {name!r}.")
        arrays[name] = np.asarray(leaf)
    if meta is not None:
        text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False)
        arrays[_META] = np.frombuffer(text.encode(), dtype=np.uint8)
    _atomic_write(path, lambda f: np.savez(f, **arrays))
    if meta is not None:
        _atomic_write(_meta_path(path), lambda f: f.write(text.encode()))


def leaf_name(key_path) -> str:
    """``params/users/embedding/value`` for a tree path: each entry's key, attribute name or
    index (``jax.tree_util.keystr`` in its simple form), joined by ``/``."""
    return jax.tree_util.keystr(key_path, simple=True, separator="/")


def load_pytree(path: str, template: Any) -> Any:
    """Reads leaves saved by :func:`save_pytree` into the structure of ``template``."""
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [leaf_name(p) for p, _ in leaves_with_paths]
    leaves = [leaf for _, leaf in leaves_with_paths]
    with _open(path) as z:
        files = [f for f in z.files if f != _META]
        if files and all(f.startswith("arr_") for f in files):  # the older positional format
            if len(files) != len(leaves):
                raise ValueError(
                    f"load_pytree: {path!r} holds {len(files)} arrays but the model "
                    f"expects {len(leaves)}; was it written by another model config?"
                )
            saved = [_read(z, f"arr_{i}", path) for i in range(len(files))]
        else:
            missing = [n for n in names if n not in files]
            extra = sorted(set(files) - set(names))
            if missing or extra:
                raise ValueError(
                    f"load_pytree: {path!r} does not fit the model: missing arrays "
                    f"{missing[:8]}, unexpected arrays {extra[:8]}; was it written by "
                    "another model config?"
                )
            saved = [_read(z, n, path) for n in names]
    for name, a, b in zip(names, saved, leaves):
        if a.shape != np.shape(b):
            raise ValueError(
                f"load_pytree: array {name!r} in {path!r} has shape {a.shape}, the "
                f"model expects {np.shape(b)} (different data set or dims?)."
            )
    return jax.tree.unflatten(
        treedef, [jax.numpy.asarray(a, dtype=np.asarray(b).dtype) for a, b in zip(saved, leaves)]
    )


def load_meta(path: str) -> dict:
    """The metadata saved with the checkpoint ``path`` (inside the ``.npz``; for files of
    the older format, the ``.json`` sidecar)."""
    if os.path.exists(path):
        with _open(path) as z:
            if _META in z.files:
                return _parse_meta(bytes(_read(z, _META, path)).decode(), path)
    sidecar = _meta_path(path)
    if not os.path.exists(sidecar):
        raise FileNotFoundError(f"load_meta: no checkpoint metadata in {path!r} or {sidecar!r}.")
    with open(sidecar) as f:
        return _parse_meta(f.read(), sidecar)


def _parse_meta(text: str, path: str) -> dict:
    return parse_json(
        text,
        lambda e: (
            f"checkpoint metadata {path!r} is not valid JSON ({e}); the file is truncated or "
            "was not written by robustjax. Delete the run folder's checkpoint and train "
            "again without --resume (or restore the file from a backup)."
        ),
    )


def _open(path: str):
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_pytree: no checkpoint at {path!r}.")
    try:
        with open(path, "rb") as f:
            is_zip = f.read(2) == b"PK"
        if is_zip:  # a truncated archive fails here, with no file left open (np.load leaks it)
            with zipfile.ZipFile(path):
                pass
        return np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(_unreadable(path, e)) from None


def _read(z, name: str, path: str) -> np.ndarray:
    try:
        return z[name]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise ValueError(_unreadable(path, e)) from None


def _unreadable(path: str, e: Exception) -> str:
    reason = "not a NumPy .npz archive" if "allow_pickle" in str(e) else str(e)
    return (
        f"checkpoint {path!r} cannot be read ({type(e).__name__}: {reason}); the file is "
        "truncated or was not written by robustjax. Delete it and train again without "
        "--resume (or restore it from a backup)."
    )


def _atomic_write(path: str, write) -> None:
    """``write(f)`` into a temporary file beside ``path``, fsync, rename over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temporary_prefix(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _remove_stale_temporaries(path)
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _temporary_prefix(path: str) -> str:
    return f".tmp-{os.path.basename(path)}."


def _remove_stale_temporaries(path: str) -> None:
    """Removes the temporary files of ``path`` that a killed process left behind (a SIGKILL
    skips the cleanup above); a run writes each of its files from one process."""
    folder, prefix = os.path.dirname(os.path.abspath(path)), _temporary_prefix(path)
    for f in os.listdir(folder):
        if f.startswith(prefix):
            try:
                os.remove(os.path.join(folder, f))
            except FileNotFoundError:
                pass


def _meta_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"
