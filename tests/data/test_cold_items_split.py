"""split='cold_items': a seeded share of items held out of training entirely."""

import numpy as np
import pytest

from robustjax.data import DataConfig, data_fingerprint, prepare
from robustjax.data.cold import split_cold_items
from robustjax.data.noise import apply_noise
from robustjax.data.table import InteractionTable

SMALL = {"synthetic_users": 60, "synthetic_items": 50, "synthetic_per_user": 10}


def _cold(**kw):
    return prepare(DataConfig(split="cold_items", **{**SMALL, **kw}))


def _token_pairs(*tables):
    return sorted(
        (str(t.user_tokens[u]), str(t.item_tokens[i]))
        for t in tables
        for u, i in zip(t.user, t.item, strict=True)
    )


def test_no_cold_item_in_train_and_every_row_kept():
    s = _cold(cold_item_ratio=0.2)
    warm = s.num_warm_items
    assert (s.num_items, s.num_cold_items, warm) == (50, 10, 40)
    assert s.train.item.max() < warm and s.valid.item.max() < warm and s.test.item.max() < warm
    assert s.cold_valid.item.min() >= warm and s.cold_test.item.min() >= warm
    cold_seedens = set(s.train.item_tokens[warm:].tolist())
    assert not cold_seedens & set(s.train.item_tokens[s.train.item].tolist())
    # the same (user, item) token pairs as the plain random split's table, ids remapped
    plain = prepare(DataConfig(split="random", **SMALL))
    parts = (s.train, s.valid, s.test, s.cold_valid, s.cold_test)
    assert _token_pairs(*parts) == _token_pairs(plain.train, plain.valid, plain.test)
    # cold rows split by user: no user has cold rows in both parts
    assert not set(s.cold_valid.user.tolist()) & set(s.cold_test.user.tolist())
    assert len(s.cold_test) > 0 and len(s.cold_valid) > 0


def test_seeded_and_deterministic():
    a, b = _cold(seed=3), _cold(seed=3)
    for part in ("train", "valid", "test", "cold_valid", "cold_test"):
        assert np.array_equal(getattr(a, part).item, getattr(b, part).item)
        assert np.array_equal(getattr(a, part).user, getattr(b, part).user)
    assert data_fingerprint(a) == data_fingerprint(b)
    c = _cold(seed=4)
    assert c.cold_held_out["items"] != a.cold_held_out["items"]
    assert data_fingerprint(c) != data_fingerprint(a)


@pytest.mark.parametrize("ratio, num_cold", [(0.1, 5), (0.3, 15), (0.5, 25)])
def test_ratio_honoured(ratio, num_cold):
    s = _cold(cold_item_ratio=ratio)
    assert s.num_cold_items == num_cold == len(s.cold_held_out["items"])
    assert np.unique(np.concatenate([s.cold_valid.item, s.cold_test.item])).size == num_cold


def test_summary_records_what_was_held_out():
    s = _cold(cold_item_ratio=0.2, seed=5)
    info = s.summary()["cold_items"]
    assert info["cold_item_ratio"] == 0.2 and info["seed"] == 5
    assert (info["num_cold_items"], info["num_warm_items"]) == (10, 40)
    assert info["items"] == s.train.item_tokens[40:].tolist()
    assert info["cold_test_rows"] == len(s.cold_test)
    assert info["cold_valid_rows"] == len(s.cold_valid)
    assert "cold_items" not in prepare(DataConfig(**SMALL)).summary()


@pytest.mark.parametrize("kind", ["add", "swap"])
def test_training_noise_never_adds_cold_items(kind):
    s = _cold(cold_item_ratio=0.3)
    noisy = apply_noise(s, kind, 0.5, seed=0)
    assert noisy.train.item.max() < s.num_warm_items
    assert noisy.num_cold_items == s.num_cold_items and noisy.cold_test is s.cold_test


@pytest.mark.parametrize("ratio", [0, 1, -0.1, 1.5, True, "0.1", None])
def test_ratio_outside_0_1_is_an_error(ratio):
    with pytest.raises(
        ValueError, match=r"DataConfig.cold_item_ratio must be a number in \(0, 1\)"
    ):
        DataConfig(split="cold_items", cold_item_ratio=ratio)


def _table(users, items, num_items=None):
    num_items = num_items or max(items) + 1
    return InteractionTable(
        user=np.asarray(users, np.int32),
        item=np.asarray(items, np.int32),
        rating=None,
        timestamp=None,
        user_tokens=np.array([f"u{u}" for u in range(max(users) + 1)]),
        item_tokens=np.array([f"i{i}" for i in range(num_items)]),
    )


def test_no_cold_item_is_an_error():
    t = _table([0, 0, 1, 1], [0, 1, 1, 2])  # 3 items: 0.1 * 3 rounds to 0
    with pytest.raises(ValueError, match=r"holds out 0 item\(s\).*Raise DataConfig.cold_item"):
        split_cold_items(t, cold_item_ratio=0.1, seed=0)
    t = _table([0, 1], [0, 0], num_items=4)  # items 1..3 have no rows: none can be cold
    with pytest.raises(ValueError, match="leaving no warm item"):
        split_cold_items(t, cold_item_ratio=0.5, seed=0)


def test_no_cold_test_row_is_an_error():
    users = np.repeat(np.arange(10), 10)
    items = np.tile(np.arange(10), 10)
    with pytest.raises(ValueError, match="no cold item has test interactions"):
        split_cold_items(_table(users, items), (0.8, 0.2, 0.0), cold_item_ratio=0.2, seed=0)


def test_users_with_only_cold_rows_raise_or_are_dropped():
    users = np.concatenate([np.repeat(np.arange(10), 10), [10]])
    items = np.concatenate([np.tile(np.arange(10), 10), [0]])
    t = _table(users, items)
    cold_seed = None
    for seed in range(20):  # a seed where item i0 (user u10's only item) is cold
        s = split_cold_items(t, cold_item_ratio=0.2, seed=seed, drop_cold=True)
        if "i0" in s.cold_held_out["items"]:
            cold_seed = seed
            break
    assert cold_seed is not None
    assert 10 not in s.cold_valid.user and 10 not in s.cold_test.user
    with pytest.raises(ValueError, match="cold-item rows but no training rows.*'u10'"):
        split_cold_items(t, cold_item_ratio=0.2, seed=cold_seed)


def test_split_folder_with_cold_items_is_an_error(tmp_path):
    d = tmp_path / "split"
    d.mkdir()
    rows = "".join(f"{u}\t{i}\n" for u in range(5) for i in range(6))
    for name in ("train.tsv", "valid.tsv", "test.tsv"):
        (d / name).write_text(rows)
    with pytest.raises(ValueError, match=r"split='cold_items'.*is a split folder.*plain"):
        prepare(DataConfig(path=str(d), split="cold_items"))
