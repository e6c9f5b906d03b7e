"""The arrays of one user batch of a per-user evaluation step, grouped as pytrees.

A step takes the arrays that travel together as one argument: the padded users with their
mask and excluded items (:class:`UserBatch`), a padded COO list (:class:`CooList`), the
target slots of :mod:`robustjax.eval.ranks` (:class:`TargetSlots`) and a whole
full-ranking batch (:class:`FullBatch`). Every field is data (a registered dataclass), so
a jitted step traces the same arrays as it would take one by one: no extra transfer and
no extra compilation. :func:`user_batch` builds a :class:`UserBatch` on the host;
:func:`full_batch_spec` gives a :class:`FullBatch`'s shapes alone (to lower a step without
data, as a memory analysis does).
"""

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Int

from robustjax.eval import _host

SLOT_WIDTH = 8  # targets per slot row (see robustjax.eval.ranks)


def coo_mask(rows: Int[Array, " C"], cols: Int[Array, " C"], shape) -> Bool[Array, "B I"]:
    """The dense ``[B, I]`` mask of a padded COO batch (:func:`robustjax.eval.coo_batch`):
    True at ``(rows, cols)``; padding entries (row ``B``, out of bounds) are dropped."""
    return jnp.zeros(shape, jnp.bool_).at[rows, cols].set(True, mode="drop")


@functools.partial(jax.tree_util.register_dataclass, data_fields=("rows", "cols"), meta_fields=())
@dataclasses.dataclass(frozen=True)
class CooList:
    """Items of a batch of ``B`` users as a padded COO list (:func:`robustjax.eval.coo_batch`):
    entry ``c`` is ``(rows[c], cols[c])``; entries with row ``B`` are padding."""

    rows: Int[Array, " C"]
    cols: Int[Array, " C"]

    def mask(self, shape) -> Bool[Array, "B I"]:
        """The dense ``[B, I]`` mask of the list (:func:`coo_mask`)."""
        return coo_mask(self.rows, self.cols, shape)


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=("ids", "mask", "exclude"), meta_fields=()
)
@dataclasses.dataclass(frozen=True)
class UserBatch:
    """A batch of users padded to ``B`` rows and the items removed from their rankings."""

    ids: Int[Array, " B"]  # user ids; padding rows repeat the first one
    mask: Bool[Array, " B"]  # True on the real (not padding) rows
    exclude: CooList  # each user's excluded items


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=("user", "items", "real"), meta_fields=()
)
@dataclasses.dataclass(frozen=True)
class TargetSlots:
    """A batch's targets packed ``W`` per row, one user per row (:mod:`robustjax.eval.ranks`)."""

    user: Int[Array, " R"]  # the user row (into the batch) of each slot row
    items: Int[Array, "R W"]  # target item ids; padding slots hold any valid id
    real: Bool[Array, "R W"]  # the slots that hold a target


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=("users", "target", "slots"), meta_fields=()
)
@dataclasses.dataclass(frozen=True)
class FullBatch:
    """One batch of :func:`robustjax.eval.evaluate_full`: its users, their targets as a COO
    list (the dense mask) and as slot rows (the ranks)."""

    users: UserBatch
    target: CooList
    slots: TargetSlots


def user_batch(
    users: np.ndarray, excludes: Sequence[tuple[np.ndarray, np.ndarray]], capacity: int, size: int
) -> UserBatch:
    """The host arrays of ``users`` padded to ``size`` rows, with their items of every CSR
    in ``excludes`` as one COO list of ``capacity`` entries (see
    :func:`robustjax.eval.batch_capacity`)."""
    return UserBatch(
        _host.pad_rows(users.astype(np.int32), size),
        np.arange(size) < users.size,
        CooList(*_host.coo_batch(excludes, users, capacity, pad_row=size)),
    )


def full_batch_spec(
    batch_size: int, *, target_entries: int, exclude_entries: int, slot_rows: int
) -> FullBatch:
    """The shapes and dtypes (``jax.ShapeDtypeStruct`` leaves) of a :class:`FullBatch` of
    ``batch_size`` users, COO lists of ``target_entries`` and ``exclude_entries`` entries and
    ``slot_rows`` slot rows of :data:`SLOT_WIDTH` items."""
    i32, spec = jnp.int32, jax.ShapeDtypeStruct

    def coo(entries: int) -> CooList:
        return CooList(spec((entries,), i32), spec((entries,), i32))

    slots = TargetSlots(
        spec((slot_rows,), i32),
        spec((slot_rows, SLOT_WIDTH), i32),
        spec((slot_rows, SLOT_WIDTH), jnp.bool_),
    )
    users = UserBatch(
        spec((batch_size,), i32), spec((batch_size,), jnp.bool_), coo(exclude_entries)
    )
    return FullBatch(users, coo(target_entries), slots)
