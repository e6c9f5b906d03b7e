"""Natural interaction noise (robustjax.data.noise) and the natural-noise experiment."""

import dataclasses
import json
import os

import numpy as np
import pytest

import robustjax.data as rd
from robustjax.data import noise

NUM_ITEMS = 12


def _table(users, items, num_users=None):
    user = np.asarray(users, dtype=np.int32)
    num_users = num_users or int(user.max()) + 1
    return rd.InteractionTable(
        user=user,
        item=np.asarray(items, dtype=np.int32),
        rating=np.arange(len(user), dtype=np.float32),
        timestamp=np.arange(len(user), dtype=np.float64),
        user_tokens=np.array([f"u{i}" for i in range(num_users)]),
        item_tokens=np.array([f"i{i}" for i in range(NUM_ITEMS)]),
    )


# user 0: items 0..9 (10 rows), user 1: 0..4 (5), user 2: 5..9 (5); rows interleaved
ROWS = [(0, i) for i in range(10)] + [(1, i) for i in range(5)] + [(2, i) for i in range(5, 10)]
ROWS = ROWS[::2] + ROWS[1::2]
TABLE = _table(*zip(*ROWS))


def _counts(t):
    return np.bincount(t.user, minlength=t.num_users)


def _items(t, u):
    return set(t.item[t.user == u].tolist())


def _no_dup(t):
    return len(np.unique(t.pairs())) == len(t)


def _small_split():
    return rd.split_random(
        rd.synthetic(num_users=30, num_items=50, interactions_per_user=10, seed=0), seed=0
    )


@pytest.mark.parametrize(
    "frac, expected", [(0.0, [10, 5, 5]), (0.2, [8, 4, 4]), (0.4, [6, 3, 3]), (1.0, [1, 1, 1])]
)
def test_drop_exact_counts_order_and_keep_one(frac, expected):
    out = noise.drop(TABLE, frac, seed=3)
    assert _counts(out).tolist() == expected
    # kept rows are original rows, in the original order (timestamps are row numbers)
    assert np.all(np.diff(out.timestamp) > 0)
    assert np.array_equal(TABLE.item[out.timestamp.astype(int)], out.item)
    single = _table([0, 1, 1], [3, 4, 5])
    assert _counts(noise.drop(single, 0.9, seed=0)).tolist() == [1, 1]


@pytest.mark.parametrize(
    "frac, expected", [(0.2, [2, 1, 1]), (0.4, [2, 2, 2]), (1.0, [2, 5, 5])]
)  # user 0: only 2 unseen
def test_add_exact_counts_unseen_items(frac, expected):
    out = noise.add(TABLE, frac, seed=1)
    assert (_counts(out) - _counts(TABLE)).tolist() == expected
    assert _no_dup(out)
    for u in range(3):
        assert _items(TABLE, u) <= _items(out, u)
    # a new row copies its anchor's timestamp and rating and sits right after it
    assert np.all(np.diff(out.timestamp) >= 0)
    assert np.array_equal(out.rating, out.timestamp.astype(np.float32))


def test_add_and_swap_avoid_excluded_items():
    held = _table([1, 1, 2], [10, 11, 0], num_users=3)
    for fn in (noise.add, noise.swap):
        out = fn(TABLE, 1.0, seed=0, exclude=(held,))
        for u, item in zip(held.user, held.item):
            assert item not in _items(out, u), fn.__name__
    # user 1: 12 items - 5 seen - 2 excluded = 5 unseen; add(1.0) wants 5, gets exactly those
    out = noise.add(TABLE, 1.0, seed=0, exclude=(held,))
    assert _items(out, 1) - _items(TABLE, 1) == {5, 6, 7, 8, 9}
    # num_items restricts the pool of new items
    out = noise.add(TABLE, 0.4, 11, seed=0)
    assert out.item.max() <= 10


@pytest.mark.parametrize(
    "frac, expected", [(0.2, [2, 1, 1]), (0.6, [2, 3, 3]), (1.0, [2, 5, 5])]
)  # user 0: only 2 unseen
def test_swap_exact_counts_in_place(frac, expected):
    out = noise.swap(TABLE, frac, seed=2)
    assert np.array_equal(out.user, TABLE.user) and _no_dup(out)
    assert np.array_equal(out.timestamp, TABLE.timestamp)
    changed = out.item != TABLE.item
    assert np.bincount(out.user[changed], minlength=3).tolist() == expected
    for u in range(3):
        new = set(out.item[changed & (out.user == u)].tolist())
        assert not new & _items(TABLE, u)


def test_subsample_global_count_and_keep_one():
    out = noise.subsample(TABLE, 0.5, seed=0)
    assert len(out) == 10 and _counts(out).min() >= 1
    assert np.all(np.diff(out.timestamp) > 0)
    assert _counts(noise.subsample(TABLE, 0.0, seed=0)).tolist() == [1, 1, 1]
    assert noise.subsample(TABLE, 1.0, seed=0) is TABLE


def test_stochastic_rounding_is_unbiased_and_sampling_uniform():
    # 3 rows x 0.5 = 1.5 rows per user on average
    t = _table([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2])
    dropped = [6 - len(noise.drop(t, 0.5, seed=s)) for s in range(400)]
    assert abs(np.mean(dropped) / 2 - 1.5) < 0.1
    assert set(dropped) == {2, 3, 4}
    # 4 (plain path) or 6 (complement path) new items out of 9 unseen, uniformly
    for frac, share in ((4 / 3, 4 / 9), (2.0, 6 / 9)):
        hits = np.zeros(NUM_ITEMS)
        for s in range(300):
            out = noise.add(t, frac, seed=s)
            np.add.at(hits, np.setdiff1d(out.item[out.user == 0], [0, 1, 2]), 1)
        assert hits[:3].sum() == 0
        assert np.all(np.abs(hits[3:] / 300 - share) < 0.1), (frac, hits)


@pytest.mark.parametrize("kind", rd.NOISE_KINDS)
def test_apply_noise_invariants(kind):
    split = _small_split()
    out = rd.apply_noise(split, kind, 0.3, seed=5)
    assert out.valid is split.valid and out.test is split.test
    assert out.name == f"{split.name}+{kind}@0.3"
    assert _no_dup(out.train) and _counts(out.train)[_counts(split.train) > 0].min() >= 1
    held = np.concatenate([split.valid.pairs(), split.test.pairs()])
    assert not np.isin(out.train.pairs(), held).any()
    new = ~np.isin(out.train.pairs(), split.train.pairs())
    assert new.any() == (kind in ("add", "swap"))
    size = {"drop": 0.7, "sparsity": 0.7, "add": 1.3, "swap": 1.0}[kind]
    assert abs(len(out.train) / len(split.train) - size) < 0.03
    again = rd.apply_noise(split, kind, 0.3, seed=5)
    assert np.array_equal(again.train.item, out.train.item)
    assert np.array_equal(again.train.user, out.train.user)
    other = rd.apply_noise(split, kind, 0.3, seed=6)
    assert not (
        np.array_equal(other.train.item, out.train.item)
        and np.array_equal(other.train.user, out.train.user)
    )
    assert rd.apply_noise(split, kind, 0, seed=5) is split


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match=r"drop: frac must be in \[0, 1\], got frac=1.5"):
        noise.drop(TABLE, 1.5, seed=0)
    with pytest.raises(ValueError, match="frac=-0.1"):
        noise.add(TABLE, -0.1, seed=0)
    with pytest.raises(TypeError, match="frac='0.1'"):
        noise.swap(TABLE, "0.1", seed=0)
    with pytest.raises(TypeError, match="seed=None"):
        noise.drop(TABLE, 0.1, seed=None)
    with pytest.raises(ValueError, match="num_items=13"):
        noise.add(TABLE, 0.1, 13, seed=0)
    split = _small_split()
    with pytest.raises(ValueError, match="kind='bogus' is unknown"):
        rd.apply_noise(split, "bogus", 0.1, seed=0)
    with pytest.raises(ValueError, match="level=2"):
        rd.apply_noise(split, "swap", 2, seed=0)
    assert len(rd.apply_noise(split, "add", 2, seed=0).train) == 3 * len(split.train)


def test_data_config_train_noise_option():
    from robustjax.config import apply_overrides
    from robustjax.experiments import get_config

    base = rd.DataConfig(synthetic_users=30, synthetic_items=50, synthetic_per_user=10)
    clean = rd.prepare(base)
    cfg = apply_overrides(
        get_config("bpr-mf"),
        ["data.train_noise_level=0.5", "data.train_noise=drop", "data.train_noise_seed=3"],
    )
    assert (cfg.data.train_noise, cfg.data.train_noise_level) == ("drop", 0.5)
    noisy = rd.prepare(
        dataclasses.replace(base, train_noise="drop", train_noise_level=0.5, train_noise_seed=3)
    )
    expected = rd.apply_noise(clean, "drop", 0.5, seed=3)
    assert np.array_equal(noisy.train.pairs(), expected.train.pairs())
    assert np.array_equal(noisy.test.pairs(), clean.test.pairs())
    assert np.array_equal(noisy.valid.pairs(), clean.valid.pairs())
    assert rd.DataConfig().train_noise is None  # off by default
    with pytest.raises(ValueError, match="DataConfig.train_noise must be .*'bogus'"):
        rd.DataConfig(train_noise="bogus")
    with pytest.raises(ValueError, match="train_noise_level=0.2 has no effect"):
        rd.prepare(dataclasses.replace(base, train_noise_level=0.2))
    with pytest.raises(ValueError, match="train_noise_level=1.5 is out of range"):
        rd.prepare(dataclasses.replace(base, train_noise="swap", train_noise_level=1.5))


def test_experiment_config_overrides():
    from robustjax.config import apply_overrides
    from robustjax.experiments import get_config

    cfg = apply_overrides(
        get_config("natural-noise"), ["kinds=drop,swap", "levels=0,0.2", "seeds=1,2", "epochs=3"]
    )
    assert cfg.kinds == ("drop", "swap") and cfg.levels == (0.0, 0.2)
    assert cfg.seeds == (1, 2) and cfg.epochs == 3
    from robustjax.studies.natural_noise import model_config

    apr = model_config(cfg, "apr-mf", kind="swap", level=0.2, seed=2)
    assert (apr.train.epochs, apr.adv.warm_epochs, apr.train.seed) == (6, 3, 2)
    assert (apr.data.train_noise, apr.data.train_noise_level) == ("swap", 0.2)
    with pytest.raises(ValueError, match="levels must be strictly ascending and start at 0"):
        apply_overrides(cfg, ["levels=0.1,0.2"])
    with pytest.raises(ValueError, match="kinds must be a tuple of"):
        apply_overrides(cfg, ["kinds=drop,typo"])
    with pytest.raises(ValueError, match="levels must be valid for kind 'drop'"):
        apply_overrides(cfg, ["levels=0,1.5"])
    with pytest.raises(ValueError, match="not computed by 'bpr-mf'"):
        apply_overrides(cfg, ["metrics=ndcg@7"])


@pytest.mark.slow  # runs with -m slow (long compile on 2 cores)
def test_tiny_experiment_writes_results(tmp_path):
    from robustjax.cli.main import main

    out = str(tmp_path / "noise")
    assert (
        main(["train", "--experiment", "natural-noise", "--tiny", "--out", out, "--no-progress"])
        == 0
    )
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["kinds"] == ["swap"] and results["levels"] == [0.0, 0.5]
    ck = results["training_time"]["swap"]["checkpoints"]["bpr-mf"]
    assert len(ck["metrics"]["test/ndcg@10"][0]) == 2
    s = ck["summary"]["test/ndcg@10"]
    assert {"auc", "clean", "drop@0.5"} <= set(s)  # drop@<level>: relative change
    assert "clean_mask/test/ndcg@10" in ck["summary"]
    with open(os.path.join(out, "results.md")) as f:
        md = f.read()
    assert "| bpr-mf | swap |" in md
    with open(os.path.join(out, "runs", "bpr-mf", "swap@0.5", "seed2024", "data.json")) as f:
        data = json.load(f)
    assert data["name"] == "synthetic+swap@0.5"


@pytest.mark.slow
def test_lightgcn_test_time_noise(tmp_path):
    from robustjax.cli.main import main

    out = str(tmp_path / "noise")
    assert (
        main(
            [
                "train",
                "--experiment",
                "natural-noise",
                "--tiny",
                "--out",
                out,
                "--no-progress",
                "--set",
                "models=lightgcn",
                "--set",
                "kinds=drop",
            ]
        )
        == 0
    )
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    tt = results["test_time"]["drop"]["checkpoints"]["lightgcn"]["summary"]["test/ndcg@10"]
    assert len(tt["mean_over_seeds"]) == 2
