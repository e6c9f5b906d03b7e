"""Heuristic shilling attacks for implicit feedback, and target selection.

Every attack has the signature ``f(train, targets, num_fake, filler_size, *, seed, ...)``
and returns :class:`~robustjax.poison.profiles.FakeProfiles` in which every profile holds
all targets plus exactly ``filler_size`` distinct filler items (never a target). ``train``
is an :class:`~robustjax.data.InteractionTable` or a CSR pair ``(indptr, indices)`` with
``num_items=`` given. Sampling without replacement is vectorised (Gumbel top-k over all
fake users at once), seeded by a NumPy ``Generator``: host-side data generation, no JAX.

- ``random``: fillers uniform over the catalogue.
- ``average``: fillers drawn with probability proportional to item popularity, the implicit
  analogue of the average attack (a profile that looks like the average user).
- ``bandwagon``: the ``popular_fraction`` most popular items (the same for every profile)
  plus uniform random fillers.
- ``segment``: the ``segment_fraction`` items most co-consumed with the targets (by users
  who interacted with any target; popularity breaks ties and fills a thin segment) plus
  uniform random fillers.
"""

import numpy as np

from robustjax.data.table import InteractionTable
from robustjax.poison.profiles import FakeProfiles

HEURISTIC_ATTACKS = ("random", "average", "bandwagon", "segment")
BANDS = ("head", "tail", "any")


def _csr(train, num_items: int | None):
    """``(indptr int64 [U+1], indices int32 [nnz], num_items)`` from a table or a CSR."""
    if isinstance(train, InteractionTable):
        from robustjax.data.csr import user_item_csr

        indptr, indices = user_item_csr(train)
        return indptr, indices, train.num_items
    if not isinstance(train, (tuple, list)) or len(train) != 2:
        raise TypeError(
            f"train must be an InteractionTable or a CSR pair (indptr, indices), "
            f"got {type(train).__name__}."
        )
    if num_items is None:
        raise ValueError("num_items= is required when train is a CSR pair (indptr, indices).")
    indptr, indices = np.asarray(train[0], np.int64), np.asarray(train[1], np.int32)
    if indices.size and (indices.min() < 0 or indices.max() >= num_items):
        raise ValueError(f"train CSR has item ids outside [0, num_items={num_items}).")
    return indptr, indices, int(num_items)


def item_popularity(train, *, num_items: int | None = None) -> np.ndarray:
    """int64 ``[I]``: number of distinct training users of each item."""
    indptr, indices, num_items = _csr(train, num_items)
    users = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    keys = np.unique(users.astype(np.int64) * num_items + indices)
    return np.bincount(keys % num_items, minlength=num_items)


def pick_targets(
    train,
    num_targets: int,
    band: str = "tail",
    *,
    seed: int,
    num_items: int | None = None,
    head_quantile: float = 0.9,
    tail_quantile: float = 0.5,
) -> np.ndarray:
    """Seeded choice of ``num_targets`` distinct target items from a popularity band.

    Bands over the training popularity ``pop``: ``"head"`` items with ``pop`` at or above
    its ``head_quantile`` quantile; ``"tail"`` items with ``1 <= pop <=`` its
    ``tail_quantile`` quantile (seen in training, but rarely); ``"any"`` every item.

    Returns:
      int32 ``[num_targets]``, sorted.
    """
    if band not in BANDS:
        raise ValueError(f"pick_targets: band={band!r} is unknown; expected one of {BANDS}.")
    pop = item_popularity(train, num_items=num_items)
    if band == "head":
        pool = np.flatnonzero(pop >= np.quantile(pop, head_quantile))
    elif band == "tail":
        pool = np.flatnonzero((pop >= 1) & (pop <= np.quantile(pop, tail_quantile)))
    else:
        pool = np.arange(pop.size)
    if not isinstance(num_targets, (int, np.integer)) or not 1 <= num_targets <= pool.size:
        raise ValueError(
            f"pick_targets: num_targets must be an int in [1, {pool.size}] (the "
            f"{band!r} band's size), got {num_targets!r}."
        )
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(pool, size=num_targets, replace=False)).astype(np.int32)


def _check(targets, num_fake, filler_size, num_items) -> np.ndarray:
    targets = np.unique(np.asarray(targets, np.int64))
    if targets.size == 0 or targets.min() < 0 or targets.max() >= num_items:
        raise ValueError(
            f"targets must be non-empty item ids in [0, {num_items}), got {targets.tolist()}."
        )
    if not isinstance(num_fake, (int, np.integer)) or num_fake < 1:
        raise ValueError(f"num_fake must be an int >= 1, got {num_fake!r}.")
    free = num_items - targets.size
    if not isinstance(filler_size, (int, np.integer)) or not 0 <= filler_size <= free:
        raise ValueError(
            f"filler_size must be an int in [0, {free}] (items that are not "
            f"targets), got {filler_size!r}."
        )
    return targets.astype(np.int32)


def sample_fillers(
    weights: np.ndarray, num_fake: int, size: int, *, rng: np.random.Generator, exclude: np.ndarray
) -> np.ndarray:
    """int32 ``[F, size]``: per row, ``size`` distinct items drawn without replacement with
    probability proportional to ``weights [I]`` (Gumbel top-k), never one of ``exclude``.

    Items of weight 0 are drawn only after every positive-weight item (uniformly among
    themselves), so any ``size <= I - len(exclude)`` is feasible.
    """
    num_items = weights.shape[0]
    w = np.asarray(weights, np.float64).copy()
    w[exclude] = 0.0
    logw = np.where(w > 0, np.log(np.where(w > 0, w, 1.0)), -1e6)
    keys = logw[None, :] + rng.gumbel(size=(num_fake, num_items))
    keys[:, exclude] = -np.inf
    if size == 0:
        return np.zeros((num_fake, 0), np.int32)
    top = np.argpartition(-keys, size - 1, axis=1)[:, :size]
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1).astype(np.int32)


def _profiles(targets, fixed, random_part, num_items, attack, params) -> FakeProfiles:
    num_fake = random_part.shape[0]
    items = np.concatenate(
        [
            np.broadcast_to(targets, (num_fake, targets.size)),
            np.broadcast_to(fixed, (num_fake, fixed.size)),
            random_part,
        ],
        axis=1,
    )
    return FakeProfiles(items, targets, num_items, attack, params)


def random_attack(
    train, targets, num_fake: int, filler_size: int, *, seed: int, num_items: int | None = None
) -> FakeProfiles:
    """Targets plus ``filler_size`` uniformly random fillers per profile."""
    _, _, num_items = _csr(train, num_items)
    targets = _check(targets, num_fake, filler_size, num_items)
    return _sampled_attack("random", np.ones(num_items), targets, num_fake, filler_size, seed=seed)


def average_attack(
    train, targets, num_fake: int, filler_size: int, *, seed: int, num_items: int | None = None
) -> FakeProfiles:
    """Targets plus fillers drawn proportionally to training popularity."""
    pop = item_popularity(train, num_items=num_items)
    targets = _check(targets, num_fake, filler_size, pop.size)
    weights = pop.astype(np.float64)
    return _sampled_attack("average", weights, targets, num_fake, filler_size, seed=seed)


def _sampled_attack(
    kind: str, weights, targets, num_fake: int, filler_size: int, *, seed: int
) -> FakeProfiles:
    """Profiles of the targets plus ``filler_size`` fillers drawn in proportion to
    ``weights`` (one per item): the ``kind`` attack (random, average)."""
    rng = np.random.default_rng(seed)
    fill = sample_fillers(weights, num_fake, filler_size, rng=rng, exclude=targets)
    params = {"seed": seed, "filler_size": filler_size}
    return _profiles(targets, np.zeros(0, np.int32), fill, weights.size, kind, params)


def _ranked_attack(
    kind: str,
    option: str,
    fraction: float,
    score_fn,
    train,
    targets,
    num_fake: int,
    filler_size: int,
    *,
    seed: int,
    num_items: int | None,
) -> FakeProfiles:
    """Profiles of the targets, the ``round(fraction * filler_size)`` non-target items of
    highest ``score_fn(indptr, indices, num_items, targets)`` and uniform random fillers for
    the rest: the ``kind`` attack (bandwagon, segment), whose ``option`` (e.g.
    ``"popular_fraction"``) is ``fraction``."""
    indptr, indices, num_items = _csr(train, num_items)
    targets = _check(targets, num_fake, filler_size, num_items)
    scores = score_fn(indptr, indices, num_items, targets)
    rng = np.random.default_rng(seed)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"{kind}_attack: {option} must lie in [0, 1], got {fraction!r}.")
    n_fixed = round(fraction * filler_size)
    s = np.asarray(scores, np.float64).copy()
    s[targets] = -np.inf
    fixed = np.argsort(-s, kind="stable")[:n_fixed].astype(np.int32)
    fill = sample_fillers(
        np.ones(s.size),
        num_fake,
        filler_size - n_fixed,
        rng=rng,
        exclude=np.concatenate([targets, fixed]),
    )
    return _profiles(
        targets,
        fixed,
        fill,
        num_items,
        kind,
        {"seed": seed, "filler_size": filler_size, option: fraction},
    )


def _popularity_scores(indptr, indices, num_items: int, targets) -> np.ndarray:
    """The bandwagon attack's item scores: training popularity."""
    return item_popularity((indptr, indices), num_items=num_items)


def _segment_scores(indptr, indices, num_items: int, targets) -> np.ndarray:
    """The segment attack's item scores: co-consumption with the targets (by users who
    interacted with any target), popularity breaking ties."""
    users = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    fans = np.zeros(indptr.size - 1, bool)
    fans[users[np.isin(indices, targets)]] = True
    co = np.bincount(indices[fans[users]], minlength=num_items).astype(np.float64)
    pop = item_popularity((indptr, indices), num_items=num_items)
    return co + pop / (pop.max(initial=0) + 1.0)  # co-occurrence first, popularity breaks ties


def bandwagon_attack(
    train,
    targets,
    num_fake: int,
    filler_size: int,
    *,
    seed: int,
    num_items: int | None = None,
    popular_fraction: float = 0.5,
) -> FakeProfiles:
    """Targets, the ``round(popular_fraction * filler_size)`` most popular items, and
    uniformly random fillers for the rest."""
    return _ranked_attack(
        "bandwagon",
        "popular_fraction",
        popular_fraction,
        _popularity_scores,
        train,
        targets,
        num_fake,
        filler_size,
        seed=seed,
        num_items=num_items,
    )


def segment_attack(
    train,
    targets,
    num_fake: int,
    filler_size: int,
    *,
    seed: int,
    num_items: int | None = None,
    segment_fraction: float = 0.5,
) -> FakeProfiles:
    """Targets, the ``round(segment_fraction * filler_size)`` items most co-consumed with
    the targets (the targets' segment), and uniformly random fillers for the rest."""
    return _ranked_attack(
        "segment",
        "segment_fraction",
        segment_fraction,
        _segment_scores,
        train,
        targets,
        num_fake,
        filler_size,
        seed=seed,
        num_items=num_items,
    )


def heuristic_attack(
    name: str,
    train,
    targets,
    num_fake: int,
    filler_size: int,
    *,
    seed: int,
    num_items: int | None = None,
) -> FakeProfiles:
    """The heuristic attack ``name`` (one of ``HEURISTIC_ATTACKS``) with default options."""
    fns = {
        "random": random_attack,
        "average": average_attack,
        "bandwagon": bandwagon_attack,
        "segment": segment_attack,
    }
    if name not in fns:
        raise ValueError(
            f"heuristic_attack: name={name!r} is unknown; expected one of {HEURISTIC_ATTACKS}."
        )
    return fns[name](train, targets, num_fake, filler_size, seed=seed, num_items=num_items)
