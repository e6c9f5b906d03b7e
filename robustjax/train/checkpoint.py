"""Checkpoints as plain ``.npz`` files (NumPy's format) plus a JSON sidecar.

A checkpoint stores the flattened leaves of a pytree; restoring needs a template with the
same structure (the freshly initialised state), which also checks that the checkpoint fits
the model: a leaf-count or shape mismatch is reported with both shapes.
"""

import json
import os
import tempfile
from typing import Any

import jax
import numpy as np


def save_pytree(path: str, tree: Any, meta: dict | None = None) -> None:
    """Writes ``tree``'s leaves to ``path`` (``.npz``) atomically, and ``meta`` beside it."""
    leaves = [np.asarray(x) for x in jax.device_get(jax.tree.leaves(tree))]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, *leaves)
    os.replace(tmp, path)
    if meta is not None:
        with open(_meta_path(path), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)


def load_pytree(path: str, template: Any) -> Any:
    """Reads leaves saved by :func:`save_pytree` into the structure of ``template``."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_pytree: no checkpoint at {path!r}.")
    leaves, treedef = jax.tree.flatten(template)
    with np.load(path) as z:
        saved = [z[f"arr_{i}"] for i in range(len(z.files))]
    if len(saved) != len(leaves):
        raise ValueError(
            f"load_pytree: {path!r} holds {len(saved)} arrays but the model "
            f"expects {len(leaves)}; was it written by another model config?"
        )
    for i, (a, b) in enumerate(zip(saved, leaves)):
        if a.shape != np.shape(b):
            raise ValueError(
                f"load_pytree: array {i} in {path!r} has shape {a.shape}, the "
                f"model expects {np.shape(b)} (different data set or dims?)."
            )
    return jax.tree.unflatten(
        treedef, [jax.numpy.asarray(a, dtype=np.asarray(b).dtype) for a, b in zip(saved, leaves)]
    )


def load_meta(path: str) -> dict:
    with open(_meta_path(path)) as f:
        return json.load(f)


def _meta_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"
