"""Host-side helpers shared by the evaluation drivers (numpy only, no row loops).

``check_csr``, ``batch_capacity``, ``coo_batch`` and ``pad_rows`` are public through
``robustjax.eval``; import them from there outside this package.
"""

from collections.abc import Sequence

import jax
import numpy as np

from robustjax.eval.metrics import MetricSums


def check_csr(name: str, csr, num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Validates ``(indptr int [U+1], indices int [nnz])`` and returns numpy views."""
    if not isinstance(csr, (tuple, list)) or len(csr) != 2:
        raise TypeError(f"{name} must be a CSR pair (indptr, indices), got {type(csr).__name__}.")
    indptr, indices = np.asarray(csr[0]), np.asarray(csr[1])
    if indptr.ndim != 1 or indices.ndim != 1 or indptr.size < 1:
        raise ValueError(
            f"{name}: indptr and indices must be 1-D, got shapes {indptr.shape}, {indices.shape}."
        )
    if not (np.issubdtype(indptr.dtype, np.integer) and np.issubdtype(indices.dtype, np.integer)):
        raise TypeError(f"{name}: integer arrays expected, got {indptr.dtype}, {indices.dtype}.")
    if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
        raise ValueError(
            f"{name}: indptr must rise from 0 to len(indices)={indices.size}, got "
            f"indptr[0]={indptr[0]}, indptr[-1]={indptr[-1]}."
        )
    if indices.size and (indices.min() < 0 or indices.max() >= num_items):
        raise ValueError(
            f"{name}: item ids must lie in [0, num_items={num_items}), got range "
            f"[{indices.min()}, {indices.max()}]; check num_items."
        )
    return indptr.astype(np.int64), indices.astype(np.int32)


def check_csrs(where: str, main, others, num_items: int, *, main_name: str = "target_csr"):
    """Validates a main CSR and several others over the same users.

    Returns ``(main, others, num_users)`` as numpy views; a user-count mismatch names both.
    """
    main = check_csr(f"{where}: {main_name}", main, num_items)
    others = [check_csr(f"{where}: exclude_csrs[{i}]", c, num_items) for i, c in enumerate(others)]
    num_users = main[0].size - 1
    for i, c in enumerate(others):
        if c[0].size - 1 != num_users:
            raise ValueError(
                f"{where}: exclude_csrs[{i}] has {c[0].size - 1} users but {main_name} has "
                f"{num_users}; build all CSRs with the same num_users."
            )
    return main, others, num_users


def gather_rows(
    csr: tuple[np.ndarray, np.ndarray], users: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """COO ``(row position in users, item)`` of the CSR rows ``users`` (vectorized)."""
    indptr, indices = csr
    starts, counts = indptr[users], indptr[users + 1] - indptr[users]
    total = int(counts.sum())
    rows = np.repeat(np.arange(users.size, dtype=np.int32), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.repeat(starts, counts) + (np.arange(total) - first)
    return rows, indices[pos]


def coo_batch(
    csrs: Sequence[tuple[np.ndarray, np.ndarray]], users: np.ndarray, capacity: int, *, pad_row: int
) -> tuple[np.ndarray, np.ndarray]:
    """Union of the rows of several CSRs for ``users``, padded to ``capacity`` entries.

    Padding entries have row ``pad_row`` (the batch size, out of bounds), so a scatter with
    ``mode="drop"`` ignores them.
    """
    parts = [gather_rows(c, users) for c in csrs]
    rows = np.full(capacity, pad_row, np.int32)
    cols = np.zeros(capacity, np.int32)
    if parts:
        r = np.concatenate([p[0] for p in parts])
        rows[: r.size] = r
        cols[: r.size] = np.concatenate([p[1] for p in parts])
    return rows, cols


def batch_capacity(
    csrs: Sequence[tuple[np.ndarray, np.ndarray]], users: np.ndarray, batch_size: int
) -> int:
    """Largest number of CSR entries of any user batch (fixes the scatter shape)."""
    counts = sum((c[0][users + 1] - c[0][users] for c in csrs), np.zeros(users.size, np.int64))
    padded = np.zeros(-(-users.size // batch_size) * batch_size, np.int64)
    padded[: users.size] = counts
    return max(int(padded.reshape(-1, batch_size).sum(axis=1).max(initial=0)), 1)


def pad_rows(x: np.ndarray, size: int) -> np.ndarray:
    """Pads the leading axis of ``x`` to ``size`` with copies of row 0 (masked later)."""
    if x.shape[0] == size:
        return x
    fill = np.repeat(x[:1], size - x.shape[0], axis=0)
    return np.concatenate([x, fill], axis=0)


def finish(states: list[MetricSums], names: Sequence[str]) -> dict[str, float]:
    """Sums per-batch states on the host in float64 and returns plain-float means."""
    states = jax.device_get(states)
    count = float(sum(np.float64(s.count) for s in states))
    out = {}
    for name in names:
        total = sum(np.float64(s.totals[name]) for s in states)
        out[name] = float(total / max(count, 1.0))
    return out | {"num_users": round(count)}
