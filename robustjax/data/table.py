"""Interaction tables and train/valid/test splits with a shared dense id space."""

import dataclasses

import numpy as np


def _check_1d(name: str, arr: np.ndarray, n: int, dtype) -> None:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"InteractionTable.{name} must be a numpy array, got {type(arr).__name__}.")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"InteractionTable.{name} must have shape ({n},) like `user`, got {arr.shape}."
        )
    if arr.dtype != dtype:
        raise ValueError(
            f"InteractionTable.{name} must have dtype {np.dtype(dtype)}, got {arr.dtype}."
        )


@dataclasses.dataclass(frozen=True)
class InteractionTable:
    """User-item interactions with dense ids; row order is meaningful (time order in files).

    Attributes:
        user: int32 [n], dense user ids in ``0..num_users-1``.
        item: int32 [n], dense item ids in ``0..num_items-1``.
        rating: float32 [n] explicit rating or weight, or None.
        timestamp: float64 [n], or None.
        user_tokens: str [num_users], original id token of each dense user id.
        item_tokens: str [num_items], original id token of each dense item id.
    """

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None
    timestamp: np.ndarray | None
    user_tokens: np.ndarray
    item_tokens: np.ndarray

    def __post_init__(self):
        n = self.user.shape[0] if isinstance(self.user, np.ndarray) else -1
        _check_1d("user", self.user, n, np.int32)
        _check_1d("item", self.item, n, np.int32)
        if self.rating is not None:
            _check_1d("rating", self.rating, n, np.float32)
        if self.timestamp is not None:
            _check_1d("timestamp", self.timestamp, n, np.float64)
        for name in ("user_tokens", "item_tokens"):
            tok = getattr(self, name)
            if not isinstance(tok, np.ndarray) or tok.ndim != 1 or tok.dtype.kind != "U":
                raise ValueError(
                    f"InteractionTable.{name} must be a 1-d numpy str array, got "
                    f"{getattr(tok, 'dtype', type(tok))!s} with shape {getattr(tok, 'shape', None)}."
                )
        for name, bound in (("user", len(self.user_tokens)), ("item", len(self.item_tokens))):
            ids = getattr(self, name)
            if n and (ids.min() < 0 or ids.max() >= bound):
                bad = ids[(ids < 0) | (ids >= bound)][0]
                raise ValueError(
                    f"InteractionTable.{name} has id {int(bad)} outside 0..{bound - 1} "
                    f"(len({name}_tokens)={bound})."
                )

    @property
    def num_users(self) -> int:
        return len(self.user_tokens)

    @property
    def num_items(self) -> int:
        return len(self.item_tokens)

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def subset(self, index: np.ndarray) -> "InteractionTable":
        """Rows selected by a boolean mask [n] or an integer index; tokens are shared.

        Args:
            index: bool [n] mask, or int indices (order is kept as given).

        Returns:
            A table in the same id space.
        """
        index = np.asarray(index)
        if index.dtype == bool and index.shape != self.user.shape:
            raise ValueError(
                f"subset: boolean mask has shape {index.shape}, table has {len(self)} rows."
            )
        pick = lambda a: None if a is None else a[index]
        return dataclasses.replace(
            self,
            user=self.user[index],
            item=self.item[index],
            rating=pick(self.rating),
            timestamp=pick(self.timestamp),
        )

    def pairs(self) -> np.ndarray:
        """int64 [n] keys ``user * num_items + item``, unique per (user, item) pair."""
        return self.user.astype(np.int64) * self.num_items + self.item


@dataclasses.dataclass(frozen=True)
class SplitData:
    """Train/valid/test tables in one id space (identical token arrays).

    Attributes:
        carved_valid: None when the valid part came with the data or from the split;
            otherwise what was carved out of the given training part to make it
            (``{"from": "train", "valid_ratio", "seed", "rows", "users"}``), reported by
            :meth:`summary` and so in a run's ``data.json``.
        num_cold_items: items held out entirely (``split='cold_items'``,
            :mod:`robustjax.data.cold`): they hold the highest ids ``[num_warm_items,
            num_items)`` and have no rows in ``train``, ``valid`` or ``test``; 0: none.
        cold_valid, cold_test: the held-out items' interactions (None without cold items).
        cold_held_out: what was held out (ratio, seed, counts), reported by :meth:`summary`.
    """

    train: InteractionTable
    valid: InteractionTable
    test: InteractionTable
    name: str
    carved_valid: dict | None = None
    num_cold_items: int = 0
    cold_valid: InteractionTable | None = None
    cold_test: InteractionTable | None = None
    cold_held_out: dict | None = None

    def __post_init__(self):
        for part in ("valid", "test"):
            t = getattr(self, part)
            for tok in ("user_tokens", "item_tokens"):
                a, b = getattr(self.train, tok), getattr(t, tok)
                if a is not b and not np.array_equal(a, b):
                    raise ValueError(
                        f"SplitData({self.name!r}): {part}.{tok} differs from train.{tok} "
                        f"({len(b)} vs {len(a)} tokens); all parts must share one id space."
                    )
        if self.num_cold_items:
            self._check_cold()

    def _check_cold(self) -> None:
        """Cold items: ids ``[num_warm_items, num_items)``, absent from train/valid/test."""
        if not 0 < self.num_cold_items < self.num_items:
            raise ValueError(
                f"SplitData({self.name!r}): num_cold_items={self.num_cold_items} must be in "
                f"[0, num_items={self.num_items})."
            )
        warm = self.num_warm_items
        for part in ("train", "valid", "test", "cold_valid", "cold_test"):
            t = getattr(self, part)
            if t is None:
                raise ValueError(
                    f"SplitData({self.name!r}): {part} is None but num_cold_items="
                    f"{self.num_cold_items}; cold splits need both cold_valid and cold_test."
                )
            if t.item_tokens is not self.train.item_tokens and not np.array_equal(
                t.item_tokens, self.train.item_tokens
            ):
                raise ValueError(
                    f"SplitData({self.name!r}): {part}.item_tokens differs from train's; all "
                    "parts must share one id space."
                )
            cold = part.startswith("cold_")
            bad = (t.item < warm) if cold else (t.item >= warm)
            if bad.any():
                raise ValueError(
                    f"SplitData({self.name!r}): {part} has item id {int(t.item[bad][0])}, "
                    f"expected ids {'>=' if cold else '<'} num_warm_items={warm} (cold items "
                    "hold the highest ids and appear in cold_valid/cold_test only)."
                )

    @property
    def num_users(self) -> int:
        return self.train.num_users

    @property
    def num_items(self) -> int:
        return self.train.num_items

    @property
    def num_warm_items(self) -> int:
        """Items training may see (ids ``[0, num_warm_items)``): all but the cold ones."""
        return self.num_items - self.num_cold_items

    def evaluation_counts(self) -> dict:
        """Test rows evaluation cannot judge fairly, counted.

        Returns:
            ``test_items_unseen_in_train`` (distinct test items without training rows),
            ``test_users_without_train_rows`` (distinct test users) and
            ``test_rows_in_train`` (test (user, item) pairs also in train; they are masked
            out of the ranking as seen items, so they can never be hits).
        """
        seen_items = np.zeros(self.num_items, dtype=bool)
        seen_items[self.train.item] = True
        seen_users = np.zeros(self.num_users, dtype=bool)
        seen_users[self.train.user] = True
        test = self.test
        return {
            "test_items_unseen_in_train": int(np.unique(test.item[~seen_items[test.item]]).size),
            "test_users_without_train_rows": int(np.unique(test.user[~seen_users[test.user]]).size),
            "test_rows_in_train": int(np.isin(test.pairs(), self.train.pairs()).sum()),
        }

    def summary(self) -> dict:
        """Counts: users, items, rows and active users per part, what was carved into the
        valid part (if anything) and :meth:`evaluation_counts`."""
        out = {"name": self.name, "num_users": self.num_users, "num_items": self.num_items}
        for part in ("train", "valid", "test"):
            t = getattr(self, part)
            out[f"{part}_rows"] = len(t)
            out[f"{part}_users"] = int(np.unique(t.user).size)
        if self.carved_valid is not None:
            out["carved_valid"] = dict(self.carved_valid)
        if self.num_cold_items:
            out["cold_items"] = {
                **(self.cold_held_out or {}),
                "num_cold_items": self.num_cold_items,
                "num_warm_items": self.num_warm_items,
                "cold_valid_rows": len(self.cold_valid),
                "cold_valid_users": int(np.unique(self.cold_valid.user).size),
                "cold_test_rows": len(self.cold_test),
                "cold_test_users": int(np.unique(self.cold_test.user).size),
            }
        out.update(self.evaluation_counts())
        return out
