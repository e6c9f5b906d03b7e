"""Fake user profiles of a data-poisoning attack: a value, a file, and their injection.

A :class:`FakeProfiles` holds the item lists of ``F`` fake users (binary implicit
feedback), the target items every profile contains, and the attack's name and parameters.
``save``/``load`` write an ``.npz`` (arrays) plus a ``.json`` sidecar (attack, parameters,
fingerprint), so an attack can be shared and replayed exactly. :func:`inject` appends the
fake users to the *training* part of a split; validation and test are never changed.
"""

import dataclasses
import hashlib
import json
import os
from types import MappingProxyType
from typing import Any

import numpy as np

from robustjax.data.table import InteractionTable, SplitData

FAKE_PREFIX = "fake_"


def _freeze(params) -> MappingProxyType:
    try:
        json.dumps(dict(params))
    except TypeError as err:
        raise TypeError(
            f"FakeProfiles.params must be JSON-serialisable, got {params!r} ({err})."
        ) from None
    return MappingProxyType(dict(params))


@dataclasses.dataclass(frozen=True, eq=False)
class FakeProfiles:
    """Fake users' item lists.

    Attributes:
      items: int32 ``[F, L]``: the distinct items of each fake profile (targets first, then
        fillers); every row holds all targets plus ``L - T`` fillers.
      targets: int32 ``[T]``: the promoted items.
      num_items: I, the item catalogue size the ids refer to.
      attack: the attack's name (``"random"``, ``"unrolled"``, ...).
      params: JSON-serialisable attack parameters (seed, filler size, ...).
    """

    items: np.ndarray
    targets: np.ndarray
    num_items: int
    attack: str
    params: Any = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        items = np.asarray(self.items)
        targets = np.asarray(self.targets)
        if items.ndim != 2 or not np.issubdtype(items.dtype, np.integer):
            raise ValueError(
                f"FakeProfiles.items must be an int [F, L] array, got dtype "
                f"{items.dtype} and shape {items.shape}."
            )
        if targets.ndim != 1 or targets.size == 0 or not np.issubdtype(targets.dtype, np.integer):
            raise ValueError(
                f"FakeProfiles.targets must be a non-empty int [T] array, got "
                f"dtype {targets.dtype} and shape {targets.shape}."
            )
        if not isinstance(self.num_items, (int, np.integer)) or self.num_items < 1:
            raise ValueError(
                f"FakeProfiles.num_items must be a positive int, got {self.num_items!r}."
            )
        for name, arr in (("items", items), ("targets", targets)):
            if arr.size and (arr.min() < 0 or arr.max() >= self.num_items):
                raise ValueError(
                    f"FakeProfiles.{name} has ids outside [0, {self.num_items}): "
                    f"range [{arr.min()}, {arr.max()}]."
                )
        if np.unique(targets).size != targets.size:
            raise ValueError(f"FakeProfiles.targets must be distinct, got {targets.tolist()}.")
        srt = np.sort(items, axis=1)
        if items.shape[0] and np.any(srt[:, 1:] == srt[:, :-1]):
            row = int(np.flatnonzero(np.any(srt[:, 1:] == srt[:, :-1], axis=1))[0])
            raise ValueError(
                f"FakeProfiles.items: profile {row} repeats an item; each row "
                f"must hold distinct items."
            )
        has = (items[:, :, None] == targets[None, None, :]).any(axis=1)  # [F, T]
        if items.shape[0] and not has.all():
            row = int(np.flatnonzero(~has.all(axis=1))[0])
            raise ValueError(
                f"FakeProfiles.items: profile {row} lacks target(s) "
                f"{targets[~has[row]].tolist()}; every profile must contain all "
                f"targets."
            )
        object.__setattr__(self, "items", items.astype(np.int32))
        object.__setattr__(self, "targets", targets.astype(np.int32))
        object.__setattr__(self, "num_items", int(self.num_items))
        object.__setattr__(self, "params", _freeze(self.params))

    @property
    def num_fake(self) -> int:
        return int(self.items.shape[0])

    @property
    def filler_size(self) -> int:
        return int(self.items.shape[1] - self.targets.size)

    def fillers(self) -> np.ndarray:
        """int32 ``[F, filler_size]``: each profile's non-target items, in stored order."""
        keep = ~np.isin(self.items, self.targets)
        return self.items[keep].reshape(self.num_fake, self.filler_size)

    def fingerprint(self) -> str:
        """sha256 of the content (items, targets, catalogue size): equal files, equal print."""
        h = hashlib.sha256()
        h.update(np.int64(self.num_items).tobytes())
        h.update(np.ascontiguousarray(self.targets).tobytes())
        h.update(np.ascontiguousarray(np.sort(self.items, axis=1)).tobytes())
        return h.hexdigest()

    def to_table(
        self, first_user: int, user_tokens: np.ndarray, item_tokens: np.ndarray
    ) -> InteractionTable:
        """The fake interactions as a table; fake user ``f`` gets id ``first_user + f``."""
        f, length = self.items.shape
        return InteractionTable(
            user=np.repeat(np.arange(first_user, first_user + f, dtype=np.int32), length),
            item=self.items.reshape(-1),
            rating=None,
            timestamp=None,
            user_tokens=user_tokens,
            item_tokens=item_tokens,
        )

    def save(self, path: str) -> str:
        """Writes ``path`` (``.npz`` added if missing) and the ``.json`` sidecar beside it.

        Returns:
          The ``.npz`` path.
        """
        if not path.endswith(".npz"):
            path = path + ".npz"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        np.savez(path, items=self.items, targets=self.targets)
        meta = {
            "attack": self.attack,
            "params": dict(self.params),
            "num_items": self.num_items,
            "num_fake": self.num_fake,
            "filler_size": self.filler_size,
            "targets": self.targets.tolist(),
            "fingerprint": self.fingerprint(),
        }
        with open(path[:-4] + ".json", "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        return path


def load(path: str) -> FakeProfiles:
    """Reads a file written by :meth:`FakeProfiles.save` and checks its fingerprint."""
    if not path.endswith(".npz"):
        path = path + ".npz"
    side = path[:-4] + ".json"
    for p in (path, side):
        if not os.path.exists(p):
            raise FileNotFoundError(
                f"load: {p!r} does not exist; FakeProfiles.save writes "
                "both the .npz and its .json sidecar."
            )
    with np.load(path) as z:
        items, targets = z["items"], z["targets"]
    with open(side) as f:
        meta = json.load(f)
    out = FakeProfiles(items, targets, meta["num_items"], meta["attack"], meta["params"])
    if out.fingerprint() != meta["fingerprint"]:
        raise ValueError(
            f"load: {path!r} does not match the fingerprint in {side!r}; the "
            "files were changed separately. Regenerate the attack."
        )
    return out


def fake_user_ids(split: SplitData, profiles: FakeProfiles) -> np.ndarray:
    """int32 ``[F]`` ids the fake users get when ``profiles`` is injected into ``split``."""
    return np.arange(split.num_users, split.num_users + profiles.num_fake, dtype=np.int32)


def inject(split: SplitData, profiles: FakeProfiles) -> SplitData:
    """``split`` with the fake users appended to its training part.

    Fake users get the ids after the real ones (:func:`fake_user_ids`) and tokens
    ``fake_0, fake_1, ...``; their rows carry rating 1 and a timestamp after every real row
    when the table has those columns. Validation and test keep their rows (the very same
    arrays); only their user-token array grows, as every part shares one id space.

    Args:
      split: the clean split.
      profiles: fake profiles over the same item catalogue.

    Returns:
      The poisoned split (same name plus ``+<attack>``).
    """
    if profiles.num_items != split.num_items:
        raise ValueError(
            f"inject: the profiles refer to num_items={profiles.num_items} items "
            f"but the split has {split.num_items}; generate the attack on this "
            "split's training data."
        )
    tr = split.train
    tokens = np.concatenate(
        [
            tr.user_tokens,
            np.array([f"{FAKE_PREFIX}{i}" for i in range(profiles.num_fake)], dtype=str),
        ]
    )
    fake = profiles.to_table(split.num_users, tokens, tr.item_tokens)
    n_fake = len(fake)
    rating = (
        None
        if tr.rating is None
        else np.concatenate([tr.rating, np.full(n_fake, tr.rating.max(initial=1.0), np.float32)])
    )
    last = 0.0 if tr.timestamp is None or len(tr) == 0 else float(tr.timestamp.max())
    timestamp = (
        None
        if tr.timestamp is None
        else np.concatenate([tr.timestamp, np.full(n_fake, last + 1.0, np.float64)])
    )
    train = InteractionTable(
        np.concatenate([tr.user, fake.user]),
        np.concatenate([tr.item, fake.item]),
        rating,
        timestamp,
        tokens,
        tr.item_tokens,
    )
    valid = dataclasses.replace(split.valid, user_tokens=tokens)
    test = dataclasses.replace(split.test, user_tokens=tokens)
    return SplitData(train, valid, test, name=f"{split.name}+{profiles.attack}")
