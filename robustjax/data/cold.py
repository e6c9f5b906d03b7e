"""Cold-item split: a seeded share of items is held out of training entirely.

``split_cold_items`` chooses ``round(cold_item_ratio * num_items)`` items uniformly (numpy
Generator seeded by ``seed``) among the items with interactions and remaps the item ids so
that the warm items keep their relative order in ``[0, num_warm)`` and the cold items follow
in ``[num_warm, num_items)`` (tokens reordered alike, so files and recommendations still
show the original ids). Then:

- the warm items' rows are split per user at random with ``ratios``, exactly as
  :func:`robustjax.data.splits.split_random` (so the usual valid/test metrics exist and
  contain warm items only);
- the cold items' rows are split **by user**: each user's cold rows all go to
  ``cold_valid`` with probability ``ratios[1] / (ratios[1] + ratios[2])`` (seeded), else all
  to ``cold_test``. A test user therefore has no cold item in valid, and the cold-start
  ranking of a user excludes nothing among the cold items.

No cold item appears in ``train``; training samplers draw negatives from ``[0, num_warm)``
only (``SplitData.num_warm_items``), so an ID model's cold rows keep their initialisation.
Cold rows of users without training rows raise, or are dropped with ``drop_cold=True``.
"""

import dataclasses

import numpy as np

from robustjax.data.splits import _check_ratios, split_random
from robustjax.data.table import InteractionTable, SplitData


def check_cold_item_ratio(ratio) -> float:
    """``ratio`` as a float in (0, 1), or a ValueError naming it."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ValueError(
            f"DataConfig.cold_item_ratio must be a number in (0, 1) (the share of items held "
            f"out of training), got cold_item_ratio={ratio!r}."
        )
    return float(ratio)


def _cold_order(table: InteractionTable, ratio: float, seed: int) -> tuple[np.ndarray, int]:
    """Old item ids in their new order (warm ascending, then cold ascending) and the count
    of cold items."""
    active = np.flatnonzero(np.bincount(table.item, minlength=table.num_items))
    num_cold = round(ratio * table.num_items)
    if num_cold == 0 or active.size == 0:
        raise ValueError(
            f"split_cold_items on a table with {table.num_items} items "
            f"({active.size} with interactions): cold_item_ratio={ratio} holds out "
            f"{num_cold} item(s) with interactions; expected at least one. Raise "
            f"DataConfig.cold_item_ratio (to >= {0.5 / max(table.num_items, 1):.3g})."
        )
    if num_cold >= active.size:
        raise ValueError(
            f"split_cold_items: cold_item_ratio={ratio} holds out {num_cold} of the "
            f"{active.size} items with interactions, leaving no warm item to train on; "
            "lower DataConfig.cold_item_ratio."
        )
    rng = np.random.default_rng(seed)
    is_cold = np.zeros(table.num_items, dtype=bool)
    is_cold[rng.choice(active, size=num_cold, replace=False)] = True
    order = np.concatenate([np.flatnonzero(~is_cold), np.flatnonzero(is_cold)])
    return order, num_cold


def split_cold_items(
    table: InteractionTable,
    ratios=(0.8, 0.1, 0.1),
    *,
    cold_item_ratio: float,
    seed: int,
    drop_cold: bool = False,
    name: str = "data",
) -> SplitData:
    """Holds out a seeded share of items entirely (protocol in the module docstring).

    Args:
        table: interactions (dense ids).
        ratios: (train, valid, test) fractions of the warm items' per-user random split;
            ``ratios[1] : ratios[2]`` is also the valid : test share of users for the cold
            items' rows.
        cold_item_ratio: share of all items held out, in (0, 1).
        seed: seeds the choice of cold items, the warm split and the cold valid/test users.
        drop_cold: drop valid/test rows (warm or cold) of users without training rows
            instead of raising.
        name: name of the SplitData.

    Returns:
        SplitData with ``num_cold_items``, ``cold_valid``, ``cold_test`` and
        ``cold_held_out`` set; item ids remapped (cold items last).
    """
    ratio = check_cold_item_ratio(cold_item_ratio)
    _, r_valid, r_test = _check_ratios(ratios)
    order, num_cold = _cold_order(table, ratio, seed)
    new_id = np.empty(table.num_items, dtype=np.int32)
    new_id[order] = np.arange(table.num_items, dtype=np.int32)
    table = dataclasses.replace(
        table, item=new_id[table.item], item_tokens=table.item_tokens[order]
    )
    num_warm = table.num_items - num_cold
    is_cold_row = table.item >= num_warm
    warm = split_random(
        table.subset(~is_cold_row), ratios, seed=seed, drop_cold=drop_cold, name=name
    )
    cold_rows = table.subset(is_cold_row)
    share_valid = r_valid / (r_valid + r_test) if r_valid + r_test > 0 else 0.0
    to_valid = np.random.default_rng([seed, 1]).random(table.num_users) < share_valid
    in_train = np.zeros(table.num_users, dtype=bool)
    in_train[warm.train.user] = True
    orphan = ~in_train[cold_rows.user]
    if orphan.any():
        if not drop_cold:
            example = table.user_tokens[cold_rows.user[orphan][0]]
            raise ValueError(
                f"split_cold_items(cold_item_ratio={ratio}, seed={seed}) on {name!r}: "
                f"{np.unique(cold_rows.user[orphan]).size} user(s) have cold-item rows but no "
                f"training rows (e.g. user {str(example)!r}). Apply kcore (DataConfig.kcore), "
                "lower cold_item_ratio, or pass drop_cold=True to drop those rows."
            )
        cold_rows = cold_rows.subset(~orphan)
    cold_valid = cold_rows.subset(to_valid[cold_rows.user])
    cold_test = cold_rows.subset(~to_valid[cold_rows.user])
    if len(cold_test) == 0:
        raise ValueError(
            f"split_cold_items(cold_item_ratio={ratio}, seed={seed}) on {name!r}: no cold "
            f"item has test interactions (cold rows: {len(cold_rows)}, in valid: "
            f"{len(cold_valid)}); expected at least one. Raise cold_item_ratio or "
            f"ratios[2] (ratios={ratios})."
        )
    held = {
        "cold_item_ratio": ratio,
        "seed": seed,
        "valid_share_of_users": share_valid,
        "items": table.item_tokens[num_warm:].tolist(),
    }
    return dataclasses.replace(
        warm,
        num_cold_items=num_cold,
        cold_valid=cold_valid,
        cold_test=cold_test,
        cold_held_out=held,
    )
