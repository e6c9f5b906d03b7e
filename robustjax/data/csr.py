"""Compressed per-user item lists."""

import numpy as np

from robustjax.data.table import InteractionTable


def user_item_csr(
    table: InteractionTable, num_users: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user item lists in CSR form.

    Args:
        table: interactions.
        num_users: U, at least ``table.num_users`` (default).

    Returns:
        (indptr int64 [U+1], indices int32 [nnz]); items of user u are
        ``indices[indptr[u]:indptr[u+1]]``, sorted ascending. Duplicates are kept.
    """
    num_users = table.num_users if num_users is None else num_users
    if num_users < table.num_users:
        raise ValueError(
            f"user_item_csr: num_users={num_users} is smaller than the table's "
            f"num_users={table.num_users}."
        )
    order = np.lexsort((table.item, table.user))
    counts = np.bincount(table.user, minlength=num_users)
    indptr = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, table.item[order].astype(np.int32)


def padded_lists(
    table: InteractionTable, num_users: int | None = None, pad: int = -1
) -> np.ndarray:
    """Per-user sorted item lists padded to the longest one.

    Returns:
        int32 [U, Lmax] with ``pad`` after each user's items (Lmax >= 1).
    """
    indptr, indices = user_item_csr(table, num_users)
    counts = np.diff(indptr)
    lmax = max(int(counts.max(initial=0)), 1)
    out = np.full((len(counts), lmax), pad, dtype=np.int32)
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.arange(len(indices)) - indptr[rows]
    out[rows, cols] = indices
    return out
