"""Fingerprints of the data a run was trained on, so a checkpoint is never evaluated
under another data set's id mapping or split.

A fingerprint is ``{"sha256": HEX, "source": SPEC}``: the hash covers the id maps (the
user and item token arrays) and the (user, item) index arrays of every part (train, valid,
test of a split; the rows of a table), in order. Two data sets with the same user and item
counts but other ids, other rows or another split get different hashes. ``source`` says
where the data came from (file path and format, or the synthetic generator's sizes); it is
shown in messages but not compared (a moved file is still the same data).
"""

import hashlib
import os
import warnings

import numpy as np

from robustjax._json_files import read_json
from robustjax.data.table import InteractionTable, SplitData


class FingerprintWarning(UserWarning):
    """A run folder has no data fingerprint (written before fingerprints existed)."""


def _update(h, name: str, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr)
    h.update(f"{name}:{arr.dtype.str}:{arr.shape}\n".encode())
    if arr.dtype.kind == "U":  # tokens: one per line, exact text
        h.update("\n".join(arr.tolist()).encode("utf-8", "surrogatepass"))
    else:
        h.update(arr.tobytes())
    h.update(b"\n")


def data_fingerprint(data: SplitData | InteractionTable, source: dict | None = None) -> dict:
    """The fingerprint of a split (pair-model runs) or a table (sequential runs).

    Args:
        data: the prepared split, or the interaction table a sequential run splits.
        source: where the data came from (e.g. ``{"path": ..., "format": ...}``).

    Returns:
        ``{"sha256": hex digest, "source": source}``.
    """
    h = hashlib.sha256()
    if isinstance(data, SplitData):
        tables = {p: getattr(data, p) for p in ("train", "valid", "test")}
        if data.num_cold_items:  # held-out items (split='cold_items'); absent otherwise
            tables.update(cold_valid=data.cold_valid, cold_test=data.cold_test)
    elif isinstance(data, InteractionTable):
        tables = {"rows": data}
    else:
        raise TypeError(
            f"data_fingerprint: expected a SplitData or InteractionTable, got "
            f"{type(data).__name__}."
        )
    first = next(iter(tables.values()))
    _update(h, "user_tokens", first.user_tokens)
    _update(h, "item_tokens", first.item_tokens)
    for part, t in tables.items():
        _update(h, f"{part}.user", t.user.astype(np.int64))
        _update(h, f"{part}.item", t.item.astype(np.int64))
    return {"sha256": h.hexdigest(), "source": source}


def source_of(data_cfg) -> dict:
    """The ``source`` entry of a fingerprint for a ``DataConfig``."""
    if data_cfg.path is None or data_cfg.format == "synthetic":
        return {
            "synthetic": {
                "num_users": data_cfg.synthetic_users,
                "num_items": data_cfg.synthetic_items,
                "interactions_per_user": data_cfg.synthetic_per_user,
                "seed": data_cfg.seed,
            }
        }
    return {"path": data_cfg.path, "format": data_cfg.format, "split": data_cfg.split,
            "seed": data_cfg.seed}  # fmt: skip


def check_fingerprint(
    run_dir: str, stored: dict | None, expected: dict, *, against: str, who: str
) -> None:
    """Raises when a run's stored fingerprint differs from ``expected``.

    Args:
        run_dir: the run folder whose ``data.json`` held ``stored``.
        stored: its fingerprint, or None for runs written before fingerprints (a
            :class:`FingerprintWarning`, not an error).
        expected: the fingerprint of the data it is about to be evaluated on.
        against: what ``expected`` belongs to, for the message (e.g. "run 'runs/a'").
        who: the caller, prefixed to the message.
    """
    if stored is None:
        warnings.warn(
            f"{who}: {run_dir!r} has no data fingerprint in data.json (written by an older "
            f"robustjax); cannot check that it was trained on the data of {against}.",
            FingerprintWarning,
            stacklevel=3,
        )
        return
    if stored.get("sha256") != expected.get("sha256"):
        raise ValueError(
            f"{who}: {run_dir!r} was trained on other data than {against}: data "
            f"fingerprint {str(stored.get('sha256'))[:12]} (source {stored.get('source')}) vs "
            f"{str(expected.get('sha256'))[:12]} (source {expected.get('source')}). Its "
            "ids would be read under the wrong id mapping or split; compare checkpoints "
            "trained on the same data (same file, preprocessing and split seed)."
        )


def read_fingerprint(run_dir: str) -> dict | None:
    """The ``fingerprint`` entry of ``run_dir/data.json`` (None when absent)."""
    path = os.path.join(run_dir, "data.json")
    if not os.path.exists(path):
        return None
    summary = read_json(path, lambda e: f"{path}: not valid JSON ({e}); the run folder is damaged.")
    return summary.get("fingerprint") if isinstance(summary, dict) else None


__all__ = [
    "FingerprintWarning",
    "check_fingerprint",
    "data_fingerprint",
    "read_fingerprint",
    "source_of",
]
