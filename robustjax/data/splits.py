"""Seeded train/valid/test splits; every split returns all three parts.

Every split checks that each user with valid/test rows has at least one training row.
If not, it raises a ValueError (with the count and an example user), unless
``drop_cold=True``, which drops those users' valid/test rows instead.
"""

import dataclasses
import warnings

import numpy as np

from robustjax.data.table import InteractionTable, SplitData


class DataWarning(UserWarning):
    """The data allows evaluation but makes some of it questionable (counts in the message)."""


def check_nonempty(split: SplitData, how: str) -> None:
    """Raises when the valid or test part has no rows: its metrics would all be 0.0.

    Args:
        split: the split.
        how: how the split was made, and what to change (for the message).
    """
    for part in ("valid", "test"):
        if len(getattr(split, part)) == 0:
            raise ValueError(
                f"The {part} part of {split.name!r} is empty (train/valid/test rows: "
                f"{len(split.train)}/{len(split.valid)}/{len(split.test)}), so every {part} "
                f"metric would be 0.0; expected at least one {part} row. {how}"
            )


def warn_evaluation(split: SplitData, kinds: tuple | None = None) -> dict:
    """Warns (``DataWarning``) for each kind of test row evaluation cannot judge fairly.

    Test items without training rows, test users without training rows, and test rows
    equal to a training row (masked as seen, so never a hit) are each counted in one
    warning.

    Args:
        split: the split.
        kinds: the keys of ``split.evaluation_counts()`` to warn about; None: all.

    Returns:
        ``split.evaluation_counts()``.
    """
    counts = split.evaluation_counts()
    what = {
        "test_items_unseen_in_train": (
            "test item(s) have no training rows; no model learns them, so their test rows "
            "are hard to hit"
        ),
        "test_users_without_train_rows": (
            "test user(s) have no training rows; they are ranked from an untrained "
            "embedding (DataConfig.drop_cold=True drops their test rows)"
        ),
        "test_rows_in_train": (
            "test row(s) equal a training row; evaluation masks training items as seen, so "
            "these can never be hits (deduplicate the parts)"
        ),
    }
    for key, text in what.items():
        if counts[key] and (kinds is None or key in kinds):
            warnings.warn(
                f"{split.name!r}: {counts[key]} {text} ({key} in data.json).",
                DataWarning,
                stacklevel=2,
            )
    return counts


def _check_ratios(ratios) -> tuple[float, float, float]:
    try:
        r = tuple(float(x) for x in ratios)
    except (TypeError, ValueError):
        raise ValueError(f"ratios must be three numbers (train, valid, test), got {ratios!r}.")
    if len(r) != 3 or min(r) < 0 or abs(sum(r) - 1.0) > 1e-6 or r[0] <= 0:
        raise ValueError(
            f"ratios must be three non-negative numbers (train, valid, test) with train > 0 "
            f"summing to 1, got ratios={ratios!r}."
        )
    return r


def _rank_in_user(user: np.ndarray, order: np.ndarray, num_users: int):
    """rank[r]: position of row r within its user under ``order``; counts per user."""
    counts = np.bincount(user, minlength=num_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(user), dtype=np.int64)
    rank[order] = np.arange(len(user)) - starts[user[order]]
    return rank, counts


def check_cold(split: SplitData, *, drop_cold: bool = False, how: str = "") -> SplitData:
    """Raises (or, with ``drop_cold``, drops rows) for valid/test users absent from train."""
    in_train = np.zeros(split.num_users, dtype=bool)
    in_train[split.train.user] = True
    cold = np.zeros(split.num_users, dtype=bool)
    for part in (split.valid, split.test):
        cold[part.user[~in_train[part.user]]] = True
    n_cold = int(cold.sum())
    if n_cold == 0:
        return split
    if not drop_cold:
        example = split.train.user_tokens[np.flatnonzero(cold)[0]]
        raise ValueError(
            f"{how or 'split'} on {split.name!r}: {n_cold} user(s) have valid/test rows but no "
            f"training rows (e.g. user {str(example)!r}). Apply kcore (DataConfig.kcore), use "
            f"leave-one-out, lower the valid/test ratios, or pass drop_cold=True to drop "
            f"those users' valid/test rows."
        )
    return dataclasses.replace(
        split,
        valid=split.valid.subset(~cold[split.valid.user]),
        test=split.test.subset(~cold[split.test.user]),
    )


def _assemble(table, part, name, drop_cold, how) -> SplitData:
    split = SplitData(
        table.subset(part == 0), table.subset(part == 1), table.subset(part == 2), name=name
    )
    return check_cold(split, drop_cold=drop_cold, how=how)


def split_random(
    table: InteractionTable,
    ratios=(0.8, 0.1, 0.1),
    *,
    seed: int,
    drop_cold: bool = False,
    name: str = "data",
) -> SplitData:
    """Per-user random split.

    A user with n rows gets ``round(ratios[2] * n)`` test rows, ``round(ratios[1] * n)``
    valid rows (round half to even, as Python's ``round``) and the rest in train. Each part
    keeps the table's row order.

    Args:
        table: interactions.
        ratios: (train, valid, test) fractions summing to 1.
        seed: numpy Generator seed.
        drop_cold: drop valid/test rows of users left without training rows instead of
            raising.
        name: name of the SplitData.
    """
    _, r_valid, r_test = _check_ratios(ratios)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(table)), table.user))
    rank, counts = _rank_in_user(table.user, order, table.num_users)
    n_test = np.rint(r_test * counts).astype(np.int64)[table.user]
    n_valid = np.rint(r_valid * counts).astype(np.int64)[table.user]
    part = np.where(rank < n_test, 2, np.where(rank < n_test + n_valid, 1, 0))
    return _assemble(table, part, name, drop_cold, f"split_random(ratios={ratios}, seed={seed})")


def split_leave_one_out(
    table: InteractionTable,
    *,
    order: str = "timestamp",
    drop_cold: bool = False,
    name: str = "data",
) -> SplitData:
    """Per user: the last row is test, the second-to-last valid, the rest train.

    Users with fewer than 3 rows keep all rows in train (they are never cold).

    Args:
        table: interactions.
        order: "timestamp" (ties keep file order), "file" (row order), or "auto"
            (timestamp when the table has timestamps, else file order).
        drop_cold: see :func:`check_cold` (never needed here; kept for a uniform API).
        name: name of the SplitData.
    """
    if order not in ("timestamp", "file", "auto"):
        raise ValueError(
            f"split_leave_one_out: order must be 'timestamp', 'file' or 'auto', got {order!r}."
        )
    if order == "auto":
        order = "timestamp" if table.timestamp is not None else "file"
    if order == "timestamp":
        if table.timestamp is None:
            raise ValueError(
                "split_leave_one_out(order='timestamp'): the table has no timestamps; use "
                "order='file' when the row order is the time order (sequence files, ml-1m)."
            )
        perm = np.lexsort((table.timestamp, table.user))
    else:
        perm = np.lexsort((np.arange(len(table)), table.user))
    rank, counts = _rank_in_user(table.user, perm, table.num_users)
    from_end = counts[table.user] - 1 - rank
    big = counts[table.user] >= 3
    part = np.where(big & (from_end == 0), 2, np.where(big & (from_end == 1), 1, 0))
    return _assemble(table, part, name, drop_cold, f"split_leave_one_out(order={order!r})")


def split_temporal(
    table: InteractionTable, ratios=(0.8, 0.1, 0.1), *, drop_cold: bool = False, name: str = "data"
) -> SplitData:
    """Global time split: the earliest ``ratios[0]`` of all rows train, then valid, then test.

    Cut points are row ranks in a stable sort by timestamp, so rows with equal timestamps
    at a cut go by file order. Users first seen after the train cut are cold: this raises
    unless ``drop_cold=True``.

    Args:
        table: interactions with timestamps.
        ratios: (train, valid, test) fractions summing to 1.
        drop_cold: drop valid/test rows of users without training rows instead of raising.
        name: name of the SplitData.
    """
    r = _check_ratios(ratios)
    if table.timestamp is None:
        raise ValueError(
            "split_temporal: the table has no timestamps; use split_random or "
            "split_leave_one_out(order='file') instead."
        )
    n = len(table)
    perm = np.argsort(table.timestamp, kind="stable")
    n_train = round(r[0] * n)
    n_valid = round(r[1] * n)
    rank = np.empty(n, dtype=np.int64)
    rank[perm] = np.arange(n)
    part = np.where(rank < n_train, 0, np.where(rank < n_train + n_valid, 1, 2))
    return _assemble(table, part, name, drop_cold, f"split_temporal(ratios={ratios})")
