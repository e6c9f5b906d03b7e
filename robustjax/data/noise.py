"""Natural interaction noise on training tables (host NumPy, seeded, pure).

The natural-noise threat model corrupts the *observed* training interactions, not the
held-out ones: :func:`apply_noise` changes ``split.train`` only and returns the valid and
test tables untouched (the same objects).

Kinds (``level`` is the fraction of interactions affected; 0 is the identity):

- ``drop``: each user loses ``level`` of their training interactions (missing logs).
- ``add``: each user gets ``level`` x their count of new random items they have never
  interacted with (accidental clicks); ``level`` may exceed 1.
- ``swap``: ``level`` of each user's interactions are replaced by random unseen items
  (mis-clicks); every user keeps their count.
- ``sparsity``: ``level`` of *all* training interactions are removed uniformly at random
  (global subsampling: heavy users lose more rows than light ones, unlike ``drop``).

Rounding. A user with ``c`` rows is affected on ``n = floor(x) + Bernoulli(x - floor(x))``
rows with ``x = level * c`` (stochastic rounding), so the expected count is exactly
``level * c`` and is exact whenever ``x`` is an integer (``x`` is first rounded to 9
decimals so that e.g. ``0.3 * 10`` counts as 3). ``sparsity`` rounds the global count
``level * len(train)`` the same way. Clipping (documented per function) only binds at
extreme levels: ``drop``/``sparsity`` keep at least one row per user that had one, and
``add``/``swap`` cannot use more new items than the user has unseen ones.

New items (``add``/``swap``) are drawn uniformly without replacement among the items the
user has no training row with and, when ``exclude`` tables are given (``apply_noise``
passes valid and test), no row there either: a noise item never hides a held-out target
(the evaluator masks training items). So no new duplicate (user, item) pair is created.

All functions take ``seed`` (a numpy ``Generator`` seed); equal inputs and seeds give
equal outputs. Row order (time order) is kept: dropped rows vanish, swapped rows keep
their place, rating and timestamp; an added row copies the rating and timestamp of a
random training row of the same user and is placed right after it.
"""

import dataclasses
import numbers
from collections.abc import Sequence

import numpy as np

from robustjax.data.splits import _rank_in_user
from robustjax.data.table import InteractionTable, SplitData

KINDS = ("drop", "add", "swap", "sparsity")


# ----------------------------------------------------------------------------- checks


def _check_frac(fn: str, name: str, value, hi: float | None = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{fn}: {name} must be a real number, got {name}={value!r} ({type(value).__name__})."
        )
    v = float(value)
    if not np.isfinite(v) or v < 0 or (hi is not None and v > hi):
        rng = "[0, 1]" if hi is not None else ">= 0 (finite)"
        raise ValueError(f"{fn}: {name} must be in {rng}, got {name}={value!r}.")
    return v


def _rng(fn: str, seed) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(
            f"{fn}: seed must be a non-negative int, got seed={seed!r}; pass "
            "seed= explicitly (e.g. seed=0)."
        )
    return np.random.default_rng(int(seed))


def check_level(kind, level) -> float:
    """Validates a (kind, level) pair; returns the level as a float.

    ``kind`` must be one of :data:`KINDS`; ``level`` must lie in [0, 1] (``add``: any
    finite value >= 0).
    """
    if kind not in KINDS:
        raise ValueError(f"noise kind={kind!r} is unknown; expected one of {KINDS}.")
    return _check_frac(f"noise {kind!r}", "level", level, None if kind == "add" else 1.0)


# ----------------------------------------------------------------------------- helpers


def _stochastic_round(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int64: ``floor(x) + Bernoulli(frac(x))`` elementwise (expectation exactly ``x``)."""
    x = np.round(np.asarray(x, dtype=np.float64), 9)
    base = np.floor(x)
    return (base + (rng.random(x.shape) < x - base)).astype(np.int64)


def _random_rank(table: InteractionTable, rng: np.random.Generator):
    """A uniformly random order of each user's rows: (rank [n] within user, counts [U])."""
    order = np.lexsort((rng.random(len(table)), table.user))
    return _rank_in_user(table.user, order, table.num_users)


def _forbidden(
    table: InteractionTable, exclude: Sequence[InteractionTable], fn: str, num_items: int
):
    """Sorted unique ``user * num_items + item`` keys of seen items below ``num_items``."""
    if isinstance(exclude, InteractionTable):
        exclude = (exclude,)
    keys = [table.pairs()]
    for i, t in enumerate(exclude):
        if not isinstance(t, InteractionTable):
            raise TypeError(
                f"{fn}: exclude[{i}] must be an InteractionTable, got {type(t).__name__}."
            )
        if (t.num_users, t.num_items) != (table.num_users, table.num_items):
            raise ValueError(
                f"{fn}: exclude[{i}] has {t.num_users} users x {t.num_items} items, "
                f"the table {table.num_users} x {table.num_items}; pass tables "
                "of the same split (one id space)."
            )
        keys.append(t.pairs())
    keys = np.unique(np.concatenate(keys))
    keys = keys[keys % table.num_items < num_items]
    user, item = keys // table.num_items, keys % table.num_items
    return user, item


def _check_num_items(fn: str, num_items, table: InteractionTable) -> int:
    if num_items is None:
        return table.num_items
    if (
        isinstance(num_items, bool)
        or not isinstance(num_items, numbers.Integral)
        or not (1 <= num_items <= table.num_items)
    ):
        raise ValueError(
            f"{fn}: num_items must be an int in [1, {table.num_items}] (the "
            f"table's item count), got num_items={num_items!r}."
        )
    return int(num_items)


def _distinct_ranks(avail: np.ndarray, need: np.ndarray, rng: np.random.Generator):
    """Per user u, ``need[u]`` distinct uniform draws from ``0..avail[u]-1`` (need <= avail).

    Vectorised rejection sampling. A user drawing more than half of their range draws the
    complement instead, so every round accepts at least half of the pending draws.

    Returns:
        (user int64 [sum need], rank int64 [sum need]) grouped by user, random order within.
    """
    num_users = len(avail)
    flip = 2 * need > avail
    draw = np.where(flip, avail - need, need)
    users = np.repeat(np.arange(num_users, dtype=np.int64), draw)
    ranks = np.zeros(len(users), dtype=np.int64)
    width = int(avail.max(initial=0)) + 1
    pending = np.arange(len(users))
    while pending.size:
        ranks[pending] = rng.integers(0, avail[users[pending]])
        _, first = np.unique(users * width + ranks, return_index=True)
        dup = np.ones(len(users), dtype=bool)
        dup[first] = False
        pending = np.flatnonzero(dup)
    # Complement for flipped users: every rank of theirs that was not drawn.
    fu = np.flatnonzero(flip)
    all_users = np.repeat(fu, avail[fu])
    starts = np.cumsum(avail[fu]) - avail[fu]
    all_ranks = np.arange(len(all_users)) - np.repeat(starts, avail[fu])
    keep = ~np.isin(all_users * width + all_ranks, users * width + ranks)
    plain = ~flip[users]
    users = np.concatenate([users[plain], all_users[keep]])
    ranks = np.concatenate([ranks[plain], all_ranks[keep]])
    order = np.lexsort((rng.random(len(users)), users))
    return users[order], ranks[order]


def _unseen_items(table: InteractionTable, need: np.ndarray, exclude, rng, fn: str, num_items: int):
    """``need[u]`` (clipped to the available count) distinct unseen items per user.

    Returns:
        (user int64 [m], item int32 [m]) grouped by user, random order within a user.
    """
    f_user, f_item = _forbidden(table, exclude, fn, num_items)
    seen = np.bincount(f_user, minlength=table.num_users).astype(np.int64)
    avail = num_items - seen
    need = np.minimum(need, avail)
    users, ranks = _distinct_ranks(avail, need, rng)
    # The r-th unseen item of u is r + #{j : f_j - j <= r} over u's sorted seen items f_j.
    indptr = np.concatenate([[0], np.cumsum(seen)])
    gap = f_item - (np.arange(len(f_item)) - indptr[f_user])
    keys = f_user * (num_items + 1) + gap
    below = np.searchsorted(keys, users * (num_items + 1) + ranks, side="right") - indptr[users]
    return users, (ranks + below).astype(np.int32)


def _remove_rows(fn: str, table: InteractionTable, name: str, value, seed, *, identity, kept):
    """The shared body of :func:`drop` and :func:`subsample`.

    Checks ``value`` (a fraction in [0, 1]) and ``seed``; returns ``table`` itself when
    ``value == identity`` or the table is empty; else draws a uniformly random order of each
    user's rows and keeps the rows of the mask ``kept(value, rank, counts, rng)``.
    """
    value = _check_frac(fn, name, value)
    rng = _rng(fn, seed)
    if value == identity or len(table) == 0:
        return table
    rank, counts = _random_rank(table, rng)
    return table.subset(kept(value, rank, counts, rng))


# ----------------------------------------------------------------------------- noise kinds


def drop(table: InteractionTable, frac: float, *, seed: int) -> InteractionTable:
    """Removes ``frac`` of each user's interactions (uniformly chosen rows).

    A user with ``c`` rows loses ``min(sr(frac * c), c - 1)`` rows (``sr``: stochastic
    rounding, module docstring): everyone keeps at least one row, so the clip binds only
    when ``frac * c > c - 1`` (users with one row, or ``frac > 1/2`` for two rows, ...).

    Args:
        table: training interactions.
        frac: fraction in [0, 1]; 0 returns ``table`` itself.
        seed: numpy Generator seed.

    Returns:
        The kept rows in their original order.
    """

    def kept(frac, rank, counts, rng):
        n = np.minimum(_stochastic_round(frac * counts, rng), np.maximum(counts - 1, 0))
        return rank >= n[table.user]

    return _remove_rows("drop", table, "frac", frac, seed, identity=0.0, kept=kept)


def subsample(table: InteractionTable, frac_kept: float, *, seed: int) -> InteractionTable:
    """Global sparsity: keeps ``frac_kept`` of all rows, removing the rest uniformly.

    ``sr((1 - frac_kept) * len(table))`` rows are removed (stochastic rounding), chosen
    uniformly among all rows except one random protected row per user, so every user keeps
    at least one row; the removed count is clipped to ``len(table) - active users``.

    Arguments and result as for :func:`drop`, with ``frac_kept`` in [0, 1] the fraction of
    rows kept: 1 (not 0) returns ``table`` itself.
    """

    def kept(frac_kept, rank, counts, rng):
        free = np.flatnonzero(rank > 0)
        n = int(_stochastic_round(np.array((1.0 - frac_kept) * len(table)), rng))
        keep = np.ones(len(table), dtype=bool)
        keep[rng.permutation(free)[: min(n, len(free))]] = False
        return keep

    return _remove_rows("subsample", table, "frac_kept", frac_kept, seed, identity=1.0, kept=kept)


def add(
    table: InteractionTable,
    frac: float,
    num_items: int | None = None,
    *,
    seed: int,
    exclude: Sequence[InteractionTable] = (),
) -> InteractionTable:
    """Adds ``frac`` x each user's count of new items the user has never interacted with.

    A user with ``c`` rows gets ``sr(frac * c)`` new rows (stochastic rounding), clipped to
    the number of items they have not seen; users without rows get none.

    Args:
        table: training interactions.
        frac: finite fraction >= 0 (may exceed 1); 0 returns ``table`` itself.
        num_items: new items are drawn from ``0..num_items-1`` (default: all of the table's
            items).
        seed: numpy Generator seed.
        exclude: tables in the same id space (e.g. valid and test) whose (user, item) pairs
            are never added either.

    Returns:
        The table with each new row right after a random row of the same user, whose
        rating and timestamp it copies.
    """
    frac = _check_frac("add", "frac", frac, None)
    num_items = _check_num_items("add", num_items, table)
    rng = _rng("add", seed)
    if frac == 0 or len(table) == 0:
        return table
    counts = np.bincount(table.user, minlength=table.num_users)
    need = _stochastic_round(frac * counts, rng)
    users, items = _unseen_items(table, need, exclude, rng, "add", num_items)
    by_user = np.argsort(table.user, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    anchor = by_user[starts[users] + (rng.random(len(users)) * counts[users]).astype(np.int64)]
    sort_key = np.concatenate([2 * np.arange(len(table)), 2 * anchor + 1])
    order = np.argsort(sort_key, kind="stable")
    cat = lambda a, new: None if a is None else np.concatenate([a, new])[order]
    return dataclasses.replace(
        table,
        user=cat(table.user, users.astype(np.int32)),
        item=cat(table.item, items),
        rating=cat(table.rating, None if table.rating is None else table.rating[anchor]),
        timestamp=cat(
            table.timestamp, None if table.timestamp is None else table.timestamp[anchor]
        ),
    )


def swap(
    table: InteractionTable,
    frac: float,
    num_items: int | None = None,
    *,
    seed: int,
    exclude: Sequence[InteractionTable] = (),
) -> InteractionTable:
    """Replaces ``frac`` of each user's items by random items the user has never seen.

    A user with ``c`` rows has ``sr(frac * c)`` uniformly chosen rows swapped (stochastic
    rounding), clipped to the number of items they have not seen. New items are distinct
    and avoid all of the user's original training items (and ``exclude``); each user's
    count, and each row's position, rating and timestamp, are kept.

    Args:
        table: training interactions.
        frac: fraction in [0, 1]; 0 returns ``table`` itself.
        num_items: new items are drawn from ``0..num_items-1`` (default: all items).
        seed: numpy Generator seed.
        exclude: tables in the same id space (e.g. valid and test) whose pairs are avoided.

    Returns:
        The table with swapped item ids.
    """
    frac = _check_frac("swap", "frac", frac)
    num_items = _check_num_items("swap", num_items, table)
    rng = _rng("swap", seed)
    if frac == 0 or len(table) == 0:
        return table
    rank, counts = _random_rank(table, rng)
    need = _stochastic_round(frac * counts, rng)
    users, items = _unseen_items(table, need, exclude, rng, "swap", num_items)
    got = np.bincount(users, minlength=table.num_users)  # need after clipping
    rows = np.flatnonzero(rank < got[table.user])
    rows = rows[np.argsort(table.user[rows], kind="stable")]  # grouped by user, as `items`
    item = table.item.copy()
    item[rows] = items
    return dataclasses.replace(table, item=item)


def apply_noise(split: SplitData, kind: str, level: float, *, seed: int) -> SplitData:
    """Noise of ``kind`` at ``level`` on the training part of ``split`` (module docstring).

    ``add`` and ``swap`` never use a user's valid or test items. Valid and test are
    returned unchanged; ``level=0`` returns ``split`` itself.

    Args:
        split: clean train/valid/test.
        kind: "drop", "add", "swap" or "sparsity" (``level`` = fraction removed).
        level: fraction in [0, 1] (``add``: any finite value >= 0).
        seed: numpy Generator seed.

    Returns:
        SplitData with the noised train and the name ``"<name>+<kind>@<level>"``.
    """
    if not isinstance(split, SplitData):
        raise TypeError(f"apply_noise: split must be a SplitData, got {type(split).__name__}.")
    level = check_level(kind, level)
    _rng("apply_noise", seed)
    if level == 0:
        return split
    held = (split.valid, split.test)
    warm = split.num_warm_items  # held-out cold items never enter training
    if kind == "drop":
        train = drop(split.train, level, seed=seed)
    elif kind == "add":
        train = add(split.train, level, warm, seed=seed, exclude=held)
    elif kind == "swap":
        train = swap(split.train, level, warm, seed=seed, exclude=held)
    else:
        train = subsample(split.train, 1.0 - level, seed=seed)
    return dataclasses.replace(split, train=train, name=f"{split.name}+{kind}@{level:g}")
