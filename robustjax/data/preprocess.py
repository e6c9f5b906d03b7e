"""Pure preprocessing functions on InteractionTables."""

import dataclasses

import numpy as np

from robustjax.data.table import InteractionTable


def to_implicit(table: InteractionTable, threshold: float) -> InteractionTable:
    """Keeps rows with ``rating >= threshold`` (ratings are kept as a column)."""
    if table.rating is None:
        raise ValueError(
            f"to_implicit(threshold={threshold!r}): the table has no ratings; drop the "
            f"rating threshold (DataConfig.rating_threshold=None) for implicit data."
        )
    return table.subset(table.rating >= threshold)


def deduplicate(table: InteractionTable, keep: str = "first") -> InteractionTable:
    """Drops repeated (user, item) pairs, keeping the first or last occurrence; order kept."""
    if keep not in ("first", "last"):
        raise ValueError(f"deduplicate: keep must be 'first' or 'last', got keep={keep!r}.")
    keys = table.pairs()
    if keep == "first":
        _, idx = np.unique(keys, return_index=True)
    else:
        _, ridx = np.unique(keys[::-1], return_index=True)
        idx = len(keys) - 1 - ridx
    if len(idx) == len(table):
        return table
    return table.subset(np.sort(idx))


def first_users(table: InteractionTable, n: int) -> InteractionTable:
    """The rows of the first ``n`` users by dense id (all rows for ``n == 0``): the
    seconds-long subsample of a real data set that ``--tiny --data`` trains on. Ids are
    kept; :func:`remap` renumbers them densely."""
    if n < 0:
        raise ValueError(f"first_users: n must be >= 0 (0: every user), got {n}.")
    if n == 0 or table.num_users <= n:
        return table
    return table.subset(np.nonzero(table.user < n)[0])


def remap(table: InteractionTable) -> InteractionTable:
    """Drops ids without rows and renumbers densely; kept tokens stay in sorted order."""
    used_u = np.bincount(table.user, minlength=table.num_users) > 0
    used_i = np.bincount(table.item, minlength=table.num_items) > 0
    if used_u.all() and used_i.all():
        return table
    new_u = (np.cumsum(used_u) - 1).astype(np.int32)
    new_i = (np.cumsum(used_i) - 1).astype(np.int32)
    return dataclasses.replace(
        table,
        user=new_u[table.user],
        item=new_i[table.item],
        user_tokens=table.user_tokens[used_u],
        item_tokens=table.item_tokens[used_i],
    )


def kcore(table: InteractionTable, k_user: int, k_item: int) -> InteractionTable:
    """Repeatedly drops users with < k_user rows and items with < k_item rows, then remaps.

    Iterates until stable, so every remaining user has >= k_user and every item >= k_item
    rows (possibly an empty table).
    """
    for name, v in (("k_user", k_user), ("k_item", k_item)):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"kcore: {name} must be an int >= 0, got {name}={v!r}.")
    keep = np.ones(len(table), dtype=bool)
    while True:
        u, i = table.user[keep], table.item[keep]
        cu = np.bincount(u, minlength=table.num_users)
        ci = np.bincount(i, minlength=table.num_items)
        ok = (cu[table.user] >= k_user) & (ci[table.item] >= k_item) & keep
        if ok.sum() == keep.sum():
            break
        keep = ok
    return remap(table.subset(keep))
