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
def test_tiny_experiment_writes_results(tmp_path):
    from robustjax.cli.main import main

    out = str(tmp_path / "transfer")
    assert main(["train", "--experiment", "transfer", "--tiny", "--out", out, "--no-progress"]) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    fake, hist = results["fake_profiles"], results["histories"]
    assert fake["rows"] == ["mf", "random"] and fake["victims"] == ["mf"]
    assert len(fake["cells"]) == 2
    for cell in fake["cells"]:
        assert -1.0 <= cell["target_hr@5/delta"] <= 1.0
    assert [r["surrogate"] for r in hist["rows"]] == ["sasrec-s0", "random"]
    assert set(hist["rows"][0]["cells"]) == {"sasrec-s0", "sasrec-s1"}
    with open(os.path.join(out, "results.md")) as f:
        text = f.read()
    assert "Fake-profile transfer" in text and "History-edit transfer" in text
    assert os.path.exists(os.path.join(out, "profiles", "mf.npz"))
