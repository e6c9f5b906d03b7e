"""Natural interaction noise (robustjax.data.noise) and the natural-noise experiment."""

import dataclasses
import importlib.util
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
        get_config("natural-noise"),
        ["kinds=drop,swap", "levels=0,0.2", "seeds=2", "first_seed=1", "epochs=3"],
    )
    assert cfg.kinds == ("drop", "swap") and cfg.levels == (0.0, 0.2)
    assert cfg.seeds == 2 and cfg.seed_list == (1, 2) and cfg.epochs == 3
    assert (
        get_config("natural-noise").seeds == 5 and get_config("natural-noise", tiny=True).seeds == 2
    )
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
    with pytest.raises(ValueError, match="seeds must be an int >= 1"):
        apply_overrides(cfg, ["seeds=0"])


def _close(entry, expected):
    """Two mean_ci entries agree (mean, interval, per-seed values, n)."""
    assert entry["n"] == expected["n"]
    for k in ("mean", "ci95", "values"):
        assert entry[k] == pytest.approx(expected[k]), k
    return True


def _fake_runs(models, seeds, tags):
    """Deterministic fabricated per-seed metrics: ``runs[model][tag]["seed<s>"]``."""
    rng = np.random.default_rng(0)
    return {
        m: {
            t: {
                f"seed{s}": {
                    "test/ndcg@10": float(rng.uniform(0.1, 0.4)),
                    "clean_mask/test/ndcg@10": float(rng.uniform(0.1, 0.4)),
                    "train_seconds": 1.0,  # not a metric: not summarised
                }
                for s in seeds
            }
            for t in tags
        }
        for m in models
    }


def test_summary_intervals_and_paired_differences():
    from robustjax.report.intervals import mean_ci, paired_diff
    from robustjax.report.summary import curve_summary
    from robustjax.studies.natural_noise import NaturalNoiseConfig, assemble

    cfg = NaturalNoiseConfig(
        models=("bpr-mf", "apr-mf"),
        kinds=("drop",),
        levels=(0.0, 0.2, 0.5),
        seeds=3,
        first_seed=7,
        metrics=("ndcg@10",),
    )
    seeds = [7, 8, 9]
    runs = _fake_runs(cfg.models, seeds, ["clean", "drop@0.2", "drop@0.5"])
    res = assemble(cfg, runs, {}, data="fake", seconds=1.0)
    assert res["seeds"] == seeds and res["n"] == 3 and res["baseline"] == "bpr-mf"
    sec = res["training_time"]["drop"]
    tags = ["clean", "drop@0.2", "drop@0.5"]
    key = "test/ndcg@10"

    def per_seed(model, tag):
        return [runs[model][tag][f"seed{s}"][key] for s in seeds]

    def auc(model):
        return [
            curve_summary(cfg.levels, [runs[model][t][f"seed{s}"][key] for t in tags])["auc"]
            for s in seeds
        ]

    def rel(model, tag):
        return [(a - b) / b for a, b in zip(per_seed(model, tag), per_seed(model, "clean"))]

    assert set(sec["models"]["bpr-mf"]) == {key, "clean_mask/" + key}
    for model in cfg.models:
        figs = sec["models"][model][key]
        for j, tag in enumerate(tags):
            e = figs["levels"][j]
            assert _close(e, mean_ci(per_seed(model, tag)))
            assert e["n"] == 3 and e["ci95"][0] < e["mean"] < e["ci95"][1]
        assert _close(figs["auc"], mean_ci(auc(model)))
        assert figs["rel_change"][0] is None
        assert _close(figs["rel_change"][2], mean_ci(rel(model, "drop@0.5")))
        vs_clean = sec["paired"]["vs_clean"][model][key]
        assert vs_clean[1]["values"] == pytest.approx(
            [a - b for a, b in zip(per_seed(model, "drop@0.2"), per_seed(model, "clean"))]
        )
    assert set(sec["paired"]["vs_baseline"]) == {"apr-mf"}
    d = sec["paired"]["vs_baseline"]["apr-mf"][key]
    for j, tag in enumerate(tags):  # per-seed differences on the same seeds
        expected = [a - b for a, b in zip(per_seed("apr-mf", tag), per_seed("bpr-mf", tag))]
        assert d["levels"][j]["values"] == pytest.approx(expected)
        assert _close(d["levels"][j], paired_diff(per_seed("apr-mf", tag), per_seed("bpr-mf", tag)))
    assert _close(d["auc"], paired_diff(auc("apr-mf"), auc("bpr-mf")))
    assert _close(
        d["rel_change"][1], paired_diff(rel("apr-mf", "drop@0.2"), rel("bpr-mf", "drop@0.2"))
    )

    from robustjax.studies._noise_report import markdown

    md = markdown(cfg, res)
    assert "| bpr-mf | drop | 3 |" in md and "Paired differences from bpr-mf" in md
    assert "includes 0 is not a ranking" in md


@pytest.mark.slow  # runs with -m slow (long compile on 2 cores)
def test_tiny_study_writes_intervals(tmp_path):
    from robustjax.cli.main import main
    from robustjax.report.intervals import mean_ci, paired_diff

    out = str(tmp_path / "noise")
    args = ["study", "natural-noise", "--tiny", "--seeds", "2", "--out", out, "--no-progress"]
    assert main(args) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert results["kinds"] == ["swap"] and results["levels"] == [0.0, 0.5]
    assert results["seeds"] == [2024, 2025] and results["n"] == 2
    runs = results["runs"]["bpr-mf"]
    sec = results["training_time"]["swap"]
    for key in ("test/ndcg@10", "clean_mask/test/ndcg@10"):
        per_seed = {t: [runs[t][f"seed{s}"][key] for s in (2024, 2025)] for t in runs}
        figs = sec["models"]["bpr-mf"][key]
        assert _close(figs["levels"][0], mean_ci(per_seed["clean"]))
        assert _close(figs["levels"][1], mean_ci(per_seed["swap@0.5"]))
        assert figs["levels"][1]["n"] == 2
        vs_clean = sec["paired"]["vs_clean"]["bpr-mf"][key][1]
        assert _close(vs_clean, paired_diff(per_seed["swap@0.5"], per_seed["clean"]))
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["test/ndcg@10/bpr-mf/clean"] == pytest.approx(
        sec["models"]["bpr-mf"]["test/ndcg@10"]["levels"][0]["mean"]
    )
    with open(os.path.join(out, "results.md")) as f:
        md = f.read()
    assert "| bpr-mf | swap | 2 |" in md and "not a ranking" in md
    for seed in (2024, 2025):
        with open(os.path.join(out, "runs", "bpr-mf", "swap@0.5", f"seed{seed}", "data.json")) as f:
            assert json.load(f)["name"] == "synthetic+swap@0.5"
    if importlib.util.find_spec("matplotlib") is not None:
        assert os.path.exists(os.path.join(out, "ndcg_at_10_swap.png"))


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
    tt = results["test_time"]["drop"]["models"]["lightgcn"]["test/ndcg@10"]
    assert len(tt["levels"]) == 2 and tt["levels"][0]["n"] == 2
