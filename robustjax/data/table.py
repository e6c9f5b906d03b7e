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
    """

    train: InteractionTable
    valid: InteractionTable
    test: InteractionTable
    name: str
    carved_valid: dict | None = None

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

    @property
    def num_users(self) -> int:
        return self.train.num_users

    @property
    def num_items(self) -> int:
        return self.train.num_items

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
        out.update(self.evaluation_counts())
        return out
