import dataclasses
import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from robustjax.poison.transfer import (
    filler_probabilities,
    item_embeddings,
    similarity_logits,
    surrogate_guided_attack,
)


def _angles_embedding(num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Items on the unit circle; items 0 and 1 (the targets) point along x, item ``i >= 2``
    at angle ``pi * (i - 1) / (I - 1)``: similarity to the targets falls with the id."""
    theta = np.concatenate([[0.0, 0.0], np.pi * np.arange(1, num_items - 1) / (num_items - 1)])
    return np.stack([np.cos(theta), np.sin(theta)], axis=1), np.array([0, 1])


def test_profiles_respect_budget_targets_and_differ_across_surrogates():
    rng = np.random.default_rng(0)
    targets = np.array([3, 17, 40])
    profs = [
        surrogate_guided_attack(
            rng.standard_normal((60, 8)), targets, 7, 10, seed=5, temperature=0.2, surrogate=name
        )
        for name in ("mf", "neumf")
    ]
    for prof in profs:
        assert prof.items.shape == (7, 13) and prof.items.dtype == np.int32
        assert prof.num_fake == 7 and prof.filler_size == 10
        np.testing.assert_array_equal(prof.items[:, :3], np.broadcast_to(targets, (7, 3)))
        fill = prof.items[:, 3:]
        assert not np.isin(fill, targets).any()
        assert all(len(set(row)) == 10 for row in fill.tolist())
        assert fill.min() >= 0 and fill.max() < 60
    assert profs[0].attack == "surrogate-mf" and profs[1].attack == "surrogate-neumf"
    assert not np.array_equal(profs[0].items, profs[1].items)
    # deterministic in the seed
    emb = rng.standard_normal((60, 8))
    a = surrogate_guided_attack(emb, targets, 7, 10, seed=9)
    b = surrogate_guided_attack(emb, targets, 7, 10, seed=9)
    c = surrogate_guided_attack(emb, targets, 7, 10, seed=10)
    np.testing.assert_array_equal(a.items, b.items)
    assert not np.array_equal(a.items, c.items)


def test_most_similar_items_are_preferred():
    emb, targets = _angles_embedding(40)
    probs = filler_probabilities(emb, targets, temperature=0.1)
    assert probs[targets].sum() == 0.0 and np.isclose(probs.sum(), 1.0)
    assert np.all(np.diff(probs[2:]) < 0)  # similarity falls with the id
    prof = surrogate_guided_attack(emb, targets, 20000, 4, seed=0, temperature=0.1)
    fill = prof.items[:, 2:]
    # the first filler of a Gumbel top-k draw is distributed as softmax(logits)
    first = np.bincount(fill[:, 0], minlength=40) / fill.shape[0]
    np.testing.assert_allclose(first, probs, atol=0.015)
    freq = np.bincount(fill.reshape(-1), minlength=40)
    assert freq[2:7].min() > 10 * freq[20:].max()
    assert np.all(np.diff(freq[2:12]) <= 0.02 * fill.shape[0])  # non-increasing up to noise
    # a higher temperature spreads the fillers out
    hot = surrogate_guided_attack(emb, targets, 20000, 4, seed=0, temperature=10.0)
    assert np.unique(hot.items[:, 2:]).size == 38
    assert np.bincount(hot.items[:, 2:].reshape(-1), minlength=40)[20:].sum() > 10 * freq[20:].sum()


def test_bad_arguments_name_the_value():
    emb, targets = _angles_embedding(10)
    with pytest.raises(ValueError, match="temperature"):
        similarity_logits(emb, targets, temperature=0.0)
    with pytest.raises(ValueError, match="NaN"):
        similarity_logits(np.full((10, 2), np.nan), targets, temperature=1.0)
    with pytest.raises(ValueError, match="filler_size"):
        surrogate_guided_attack(emb, targets, 3, 9, seed=0)
    with pytest.raises(ValueError, match="item_emb"):
        surrogate_guided_attack(np.zeros(10), targets, 3, 2, seed=0)


def test_item_embeddings_are_the_rows_models_score_with():
    from robustjax.models import ModelConfig, build_model

    users, items = np.array([0, 0, 1, 2, 3]), np.array([0, 1, 2, 3, 4])
    fns, params = build_model(ModelConfig(name="mf", dim=4), 4, 7, seed=0)
    np.testing.assert_allclose(
        item_embeddings(fns, params, batch_size=3),
        np.asarray(fns.get_tables(params)["item"]),
        rtol=1e-6,
    )
    fns, params = build_model(
        ModelConfig(name="lightgcn", dim=4, num_layers=1), 4, 7, seed=0, train_pairs=(users, items)
    )
    emb = item_embeddings(fns, params)
    assert emb.shape == (7, 4)
    # propagated rows: an item with an edge differs from its layer-0 row, an isolated one not
    layer0 = np.asarray(fns.get_tables(params)["item"])
    assert not np.allclose(emb[0], layer0[0]) and np.allclose(emb[6], layer0[6] / 2)


@pytest.fixture(scope="module")
def seq_setup():
    from robustjax.data import synthetic
    from robustjax.data.sequences import make_sequence_data
    from robustjax.models.bert4rec import BERT4Rec
    from robustjax.models.sasrec import SASRec

    data = make_sequence_data(
        synthetic(num_users=24, num_items=120, interactions_per_user=10, seed=1), max_len=8, seed=0
    )
    kw = {
        "num_items": data.num_items,
        "max_len": 8,
        "dim": 8,
        "num_blocks": 1,
        "num_heads": 1,
        "dropout": 0.0,
    }
    models = {
        "sasrec-s0": nnx.split(SASRec(**kw, rngs=nnx.Rngs(0)), nnx.Param),
        "sasrec-s1": nnx.split(SASRec(**kw, rngs=nnx.Rngs(1)), nnx.Param),
        "bert4rec-s0": nnx.split(BERT4Rec(**kw, rngs=nnx.Rngs(0)), nnx.Param),
    }
    return data, models


@pytest.mark.slow
def test_victims_see_exactly_the_histories_crafted_on_the_surrogate(seq_setup, tmp_path):
    from robustjax.studies._transfer_histories import (
        craft_histories,
        histories_hash,
        transfer_matrix,
    )

    data, models = seq_setup
    out = transfer_matrix(models, data, ("sasrec-s0",), budget=2, seed=3, out_dir=str(tmp_path))
    saved = np.load(tmp_path / "edits.npz")
    clean = np.asarray(data.test_input)
    np.testing.assert_array_equal(saved["clean"], clean)
    g, p = models["sasrec-s0"]
    crafted = craft_histories(
        g,
        p,
        data.test_input,
        data.test_cands,
        kind="gradient",
        budget=2,
        num_items=data.num_items,
        key=jax.random.key(3),
    )
    np.testing.assert_array_equal(saved["sasrec-s0"], crafted)
    cands = np.asarray(data.test_cands)
    for row in out["rows"]:
        edited = saved[row["surrogate"]]
        assert (
            {c["histories_sha1"] for c in row["cells"].values()}
            == {histories_hash(edited)}
            == {row["histories_sha1"]}
        )
        changed = edited != clean
        assert changed.sum(axis=1).max() <= 2 and row["changed"] > 0
        assert np.all((edited == 0) == (clean == 0))  # layout kept, real ids only
        for u, pos in zip(*np.nonzero(changed)):
            assert edited[u, pos] not in cands[u]  # candidates never written
        assert set(row["cells"]) == set(models)
        for m, cell in row["cells"].items():
            assert np.isclose(cell["hr@10/drop"], out["clean"][m]["hr@10"] - cell["hr@10"])
    assert [r["attack"] for r in out["rows"]] == ["gradient", "random"]
    assert out["clean"]["sasrec-s0"]["histories_sha1"] == histories_hash(clean)


def test_config_validation():
    from robustjax.experiments import get_config

    with pytest.raises(ValueError, match="victim_seed"):
        get_config("transfer", surrogate_seed=3, victim_seed=3)
    with pytest.raises(ValueError, match="surrogates"):
        get_config("transfer", surrogates=("mf", "svd"))
    with pytest.raises(ValueError, match="seq_surrogates"):
        get_config("transfer", seq_surrogates=("bert4rec-s1",))
    cfg = get_config("transfer")
    assert dataclasses.replace(cfg, temperature=0.5).temperature == 0.5


@pytest.mark.slow  # runs with -m slow (long compile on 2 cores)
def test_tiny_study_writes_intervals_and_resumes(tmp_path):
    from robustjax.cli.main import main
    from robustjax.report.intervals import mean_ci

    out = str(tmp_path / "transfer")
    args = ["study", "transfer", "--tiny", "--seeds", "2", "--out", out, "--no-progress"]
    assert main(args) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    fake, hist = results["fake_profiles"], results["histories"]
    assert results["n"] == fake["n"] == hist["n"] == 2
    assert [s["victim_seed"] for s in results["seeds"]] == [1, 3]
    assert [s["surrogate_seed"] for s in results["seeds"]] == [0, 2]
    assert fake["rows"] == ["mf", "random"] and fake["victims"] == ["mf"]
    assert len(fake["cells"]) == 2
    reps = results["repetitions"]
    for j, cell in enumerate(fake["cells"]):
        values = [r["fake_profiles"]["cells"][j]["target_hr@5/delta"] for r in reps]
        assert cell["target_hr@5/delta"] == mean_ci(values)
        assert all(-1.0 <= v <= 1.0 for v in values)
    (paired,) = fake["paired"]["cells"]
    np.testing.assert_allclose(
        paired["test_ndcg@20/delta"]["values"],
        np.subtract(*(fake["cells"][j]["test_ndcg@20/delta"]["values"] for j in (0, 1))),
    )
    assert [r["surrogate"] for r in hist["rows"]] == ["sasrec-s0", "random"]
    assert set(hist["rows"][0]["cells"]) == {"sasrec-s0", "sasrec-s1"}
    assert hist["model_seeds"] == [
        {"sasrec-s0": 0, "sasrec-s1": 1},
        {"sasrec-s0": 2, "sasrec-s1": 3},
    ]
    drops = [
        [r["histories"]["rows"][j]["cells"]["sasrec-s1"]["hr@10/drop"] for r in reps]
        for j in (0, 1)
    ]
    assert hist["rows"][0]["cells"]["sasrec-s1"]["hr@10/drop"] == mean_ci(drops[0])
    np.testing.assert_allclose(
        hist["paired"]["rows"][0]["cells"]["sasrec-s1"]["hr@10/drop"]["values"],
        np.subtract(*drops),
    )
    with open(os.path.join(out, "results.md")) as f:
        text = f.read()
    assert "Fake-profile transfer" in text and "History-edit transfer" in text
    assert "| mf surrogate | 2 |" in text and "not a ranking" in text
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["test/target_hr@5_delta/mf/mf"] == fake["cells"][0]["target_hr@5/delta"]["mean"]
    for i in range(2):
        assert os.path.exists(os.path.join(out, f"rep{i}", "profiles", "mf.npz"))
    # --resume reads the finished repetitions back instead of retraining them
    stamp = os.path.getmtime(os.path.join(out, "rep0", "repetition.json"))
    assert main(args + ["--resume"]) == 0
    assert os.path.getmtime(os.path.join(out, "rep0", "repetition.json")) == stamp
    with open(os.path.join(out, "results.json")) as f:
        again = json.load(f)
    assert again["fake_profiles"]["cells"] == fake["cells"]


def _fake_rep(rng, rows, victims, k=5):
    cells = []
    clean = {
        v: {f"target_hr@{k}": 0.0, "test_ndcg@20": float(rng.uniform(0.2, 0.3))} for v in victims
    }
    for r in rows:
        for v in victims:
            after, ndcg = float(rng.uniform(0, 0.1)), float(rng.uniform(0.2, 0.3))
            cells.append(
                {
                    "surrogate": r,
                    "victim": v,
                    "kind": "heuristic" if r == "random" else "transfer",
                    f"target_hr@{k}/before": 0.0,
                    f"target_hr@{k}/after": after,
                    f"target_hr@{k}/delta": after,
                    "test_ndcg@20/before": clean[v]["test_ndcg@20"],
                    "test_ndcg@20/after": ndcg,
                    "test_ndcg@20/delta": ndcg - clean[v]["test_ndcg@20"],
                }
            )
    return {
        "data": {"name": "synthetic"},
        "num_fake": 2,
        "targets": rng.integers(0, 50, 2).tolist(),
        "target_users": int(rng.integers(30, 40)),
        "k": k,
        "rows": list(rows),
        "victims": list(victims),
        "cells": cells,
        "clean": clean,
        "training": {},
        "seconds": 1.0,
    }


def _hist_rep(rng, models, i):
    def metrics():
        hr = float(rng.uniform(0.3, 0.7))
        return {"hr@10": hr, "ndcg@10": hr / 2, "histories_sha1": "x"}

    clean = {m: metrics() for m in models}
    rows = []
    for attack, surrogate in (("gradient", models[0]), ("random", "random")):
        cells = {}
        for m in models:
            c = metrics()
            c["hr@10/drop"] = clean[m]["hr@10"] - c["hr@10"]
            c["ndcg@10/drop"] = clean[m]["ndcg@10"] - c["ndcg@10"]
            cells[m] = c
        rows.append(
            {
                "attack": attack,
                "surrogate": surrogate,
                "histories_sha1": f"h{i}",
                "changed": 2.0,
                "craft_seconds": 0.1,
                "cells": cells,
            }
        )
    return {
        "source": "synthetic",
        "num_users": 10,
        "num_items": 20,
        "max_len": 8,
        "budget": 2,
        "models": list(models),
        "surrogates": [models[0]],
        "model_seeds": {m: 2 * i for m in models},
        "attack_seed": i,
        "training": {m: {"best_epoch": 1, "train_seconds": 0.5} for m in models},
        "clean": clean,
        "rows": rows,
        "seconds": 2.0,
    }


def test_summary_intervals_and_paired_differences_are_per_repetition():
    from robustjax.report.intervals import mean_ci
    from robustjax.studies._transfer_summary import summarise_fake, summarise_histories
    from robustjax.studies.transfer import markdown

    rng = np.random.default_rng(0)
    fakes = [_fake_rep(rng, ("mf", "lightgcn", "random"), ("mf", "neumf")) for _ in range(3)]
    fake = summarise_fake(fakes, "random")
    assert fake["n"] == 3 and len(fake["targets"]) == 3
    for cell in fake["cells"]:
        at = (cell["surrogate"], cell["victim"])
        values = [next(c for c in f["cells"] if (c["surrogate"], c["victim"]) == at) for f in fakes]
        for fig in ("target_hr@5/delta", "test_ndcg@20/delta", "test_ndcg@20/after"):
            assert cell[fig] == mean_ci([v[fig] for v in values])
    assert fake["paired"]["baseline"] == "random"
    assert {(c["surrogate"], c["victim"]) for c in fake["paired"]["cells"]} == {
        (r, v) for r in ("mf", "lightgcn") for v in ("mf", "neumf")
    }
    by = {(c["surrogate"], c["victim"]): c for c in fake["cells"]}
    for p in fake["paired"]["cells"]:
        mine = by[p["surrogate"], p["victim"]]["target_hr@5/delta"]["values"]
        base = by["random", p["victim"]]["target_hr@5/delta"]["values"]
        np.testing.assert_allclose(p["target_hr@5/delta"]["values"], np.subtract(mine, base))
        assert p["target_hr@5/delta"]["n"] == 3
    # no reference: the paired figure is after − before on each repetition
    none = summarise_fake([_fake_rep(rng, ("mf",), ("mf",)) for _ in range(2)], "none")
    assert none["paired"]["baseline"] == "clean victim"
    assert (
        none["paired"]["cells"][0]["test_ndcg@20/delta"] == none["cells"][0]["test_ndcg@20/delta"]
    )

    models = ("sasrec-s0", "sasrec-s1")
    hists = [_hist_rep(rng, models, i) for i in range(3)]
    hist = summarise_histories(hists)
    assert hist["n"] == 3 and hist["attack_seeds"] == [0, 1, 2]
    for j, row in enumerate(hist["rows"]):
        assert row["histories_sha1"] == ["h0", "h1", "h2"]
        for m in models:
            assert row["cells"][m]["hr@10/drop"] == mean_ci(
                [h["rows"][j]["cells"][m]["hr@10/drop"] for h in hists]
            )
    assert hist["clean"][models[1]]["hr@10"] == mean_ci(
        [h["clean"][models[1]]["hr@10"] for h in hists]
    )
    (paired,) = hist["paired"]["rows"]
    for m in models:
        diff = [
            h["rows"][0]["cells"][m]["hr@10/drop"] - h["rows"][1]["cells"][m]["hr@10/drop"]
            for h in hists
        ]
        np.testing.assert_allclose(paired["cells"][m]["hr@10/drop"]["values"], diff)

    seeds = [{"victim_seed": 1 + 2 * i, "surrogate_seed": 2 * i} for i in range(3)]
    config = {"fake_fraction": 0.05, "target_band": "tail", "filler_size": 5, "reference": "random"}
    text = markdown(
        {
            "config": config,
            "seeds": seeds,
            "fake_profiles": fake,
            "histories": hist,
            "total_seconds": 3.0,
        }
    )
    assert "| surrogate → victim | n | mf | neumf |" in text
    assert "| edits crafted on → evaluated on | n | sasrec-s0 | sasrec-s1 |" in text
    assert "includes 0 is not a ranking" in text
    ci = by["mf", "neumf"]["target_hr@5/delta"]
    assert f"{ci['mean']:+.4f} [{ci['ci95'][0]:+.4f}, {ci['ci95'][1]:+.4f}]" in text
    assert "| mf surrogate | 3 |" in text and "| sasrec-s0 (gradient) − random | 3 |" in text


@pytest.mark.parametrize("surrogate_seed, victim_seed", [(0, 1), (3, 1), (0, 4)])
def test_repetition_seeds_never_share_a_surrogate_and_victim_seed(surrogate_seed, victim_seed):
    from robustjax.experiments import get_config
    from robustjax.studies.transfer import repetition_seeds

    cfg = get_config("transfer", surrogate_seed=surrogate_seed, victim_seed=victim_seed)
    assert cfg.seeds == 5 and get_config("transfer", tiny=True).seeds == 2
    reps = [repetition_seeds(cfg, i) for i in range(cfg.seeds)]
    surrogate = {r["surrogate_seed"] for r in reps}
    victim = {r["victim_seed"] for r in reps}
    assert len(surrogate) == len(victim) == 5 and not surrogate & victim
    assert len({r["seed"] for r in reps}) == 5
    assert len({r["seq_attack_seed"] for r in reps}) == 5
    # sasrec-s0 / sasrec-s1 / bert4rec-s0: seeds move by 2, never recurring across repetitions
    seq = [(r["seq_seed_offset"] + 0, r["seq_seed_offset"] + 1) for r in reps]
    flat = [s for pair in seq for s in pair]
    assert len(set(flat)) == len(flat)
    if (surrogate_seed, victim_seed) == (0, 1):
        assert [r["surrogate_seed"] for r in reps] == [0, 2, 4, 6, 8]
        assert [r["victim_seed"] for r in reps] == [1, 3, 5, 7, 9]
    with pytest.raises(ValueError, match="seeds"):
        get_config("transfer", seeds=0)
