"""Text-aware models: item texts, the text item tower, text-MF and text-SASRec."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.attacks import fgsm
from robustjax.config import TrainConfig
from robustjax.data.item_text import load_item_texts
from robustjax.losses import emb_loss
from robustjax.models import ModelConfig, build_model
from robustjax.models.text_sasrec import TextSASRec, sequence_text_features, with_text_features
from robustjax.runs.folder import optimizer_of
from robustjax.train.sparse_step import optimizer_for, with_frozen

U, I, H, D = 6, 9, 16, 8
BATCH = {"user": jnp.array([0, 1, 2]), "pos": jnp.array([0, 1, 2]), "neg": jnp.array([3, 4, 5])}


def _features(seed=0):
    f = np.random.default_rng(seed).normal(size=(I, H)).astype(np.float32)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def _build(**kw):
    cfg = ModelConfig(name="text-mf", dim=D, **kw)
    return build_model(cfg, U, I, seed=0, item_features=_features())


def _item_file(tmp_path, name="toy"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\tprice:float\n"
        "10\tA Film\t1999\tDrama Comedy\t3.5\n"
        "7\tAnother  One\t\tHorror\t1.0\n"
    )
    return folder


def test_item_texts_from_a_recbole_file(tmp_path):
    folder = _item_file(tmp_path)
    texts = load_item_texts(str(folder), ["7", "10"])  # matched by token, not row order
    assert texts == ["Another One Horror", "A Film (1999) Drama Comedy"]
    assert load_item_texts(str(folder / "toy.item"), ["10"]) == ["A Film (1999) Drama Comedy"]
    with pytest.raises(ValueError, match=r"1 of 2 items have no row.*\['99'\]"):
        load_item_texts(str(folder), ["10", "99"])
    assert load_item_texts(str(folder), ["99"], missing="token") == ["item 99"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no RecBole item file"):
        load_item_texts(str(tmp_path / "empty"), ["1"])


def test_item_texts_of_ml100k(shared_data):
    texts = load_item_texts(os.path.join(shared_data, "ml-100k"), [str(i) for i in range(1, 1683)])
    assert len(texts) == 1682
    assert texts[0] == "Toy Story (1995) Animation Children's Comedy"


def test_text_mf_shapes_equality_and_tables():
    fns, params = _build()
    fns2, _ = _build()
    assert fns == fns2 and hash(fns) == hash(fns2)
    assert fns != _build(text_id_embedding=False)[0]
    assert fns.frozen_params == ("items/features",)
    assert (fns.text.encoder, fns.text.max_len) == ("all-minilm-l6-v2", 32)
    emb = fns.embed(params, {**BATCH, "neg": BATCH["neg"][:, None]})
    assert {k: v.shape for k, v in emb.items()} == {
        "user": (3, D),
        "pos": (3, D),
        "neg": (3, 1, D),
    }
    users = jnp.arange(U)
    assert fns.score_all(params, users).shape == (U, I)
    assert fns.score_items(params, users[:2], jnp.array([[0, 1], [2, 3]])).shape == (2, 2)
    # the tower on the features themselves is embed's item embedding
    feats = params["items"]["features"][...]
    items = jnp.array([0, 4])
    np.testing.assert_allclose(
        fns.text.item_from_text(params, feats[items], items),
        fns.embed(params, {"user": items, "pos": items})["pos"],
        rtol=1e-6,
    )
    # a batch with as many lookups as items projects the whole table: same embeddings
    every = jnp.arange(I)
    np.testing.assert_allclose(
        fns.embed(params, {"user": every % U, "pos": every})["pos"],
        fns.text.item_from_text(params, feats, every),
        rtol=1e-6,
    )
    # table attacks: set_tables(get_tables) scores the same, perturbed tables change scores
    tables = fns.get_tables(params)
    assert tables["item"].shape == (I, D)
    same = fns.set_tables(params, tables)
    np.testing.assert_allclose(fns.score_all(same, users), fns.score_all(params, users), rtol=1e-6)
    moved = fns.set_tables(params, {"item": tables["item"] + 1.0})
    assert not np.allclose(fns.score_all(moved, users), fns.score_all(params, users))
    with pytest.raises(ValueError, match=r"table 'item' has shape \(2, 8\); expected \(9, 8\)"):
        fns.set_tables(params, {"item": jnp.zeros((2, D))})


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_training_moves_the_projection_not_the_features(weight_decay):
    fns, params = _build()
    cfg = TrainConfig(optimizer="adam", learning_rate=0.1, weight_decay=weight_decay)
    tx = optimizer_for(cfg, fns, lambda: optimizer_of(cfg))
    loss_on_emb = emb_loss(fns, "bpr")
    grads = jax.grad(lambda p: jnp.mean(loss_on_emb(p, fns.embed(p, BATCH))))(params)
    assert not np.any(grads["items"]["features"][...])  # stop_gradient
    updates, _ = tx.update(grads, tx.init(params), params)
    new = jax.tree.map(jnp.add, params, updates)
    np.testing.assert_array_equal(new["items"]["features"][...], params["items"]["features"][...])
    for leaf in ("proj", "ids"):
        old, now = jax.tree.leaves(params["items"][leaf]), jax.tree.leaves(new["items"][leaf])
        assert any(not np.allclose(a, b) for a, b in zip(old, now)), leaf
    with pytest.raises(ValueError, match=r"frozen parameters \['nope'\] are not leaves"):
        with_frozen(optimizer_of(cfg), ("nope",)).init(params)


def test_fgsm_attack_runs_on_text_mf():
    fns, params = _build()
    loss_on_emb = emb_loss(fns, "bpr")
    emb = fns.embed(params, BATCH)
    delta = jax.jit(lambda e: fgsm(lambda x: loss_on_emb(params, x), e, eps=0.5))(emb)
    assert set(delta) == set(fns.embedding_names)
    np.testing.assert_allclose(np.linalg.norm(delta["pos"], axis=-1), 0.5, rtol=1e-5)
    clean = jnp.sum(loss_on_emb(params, emb))
    attacked = jnp.sum(loss_on_emb(params, jax.tree.map(jnp.add, emb, delta)))
    assert attacked > clean


def test_text_mf_scores_unseen_items_from_text_alone(tmp_path):
    """Items 6..8 are never trained on: their ID rows stay zero, their scores come from text
    (encoded by a tiny random checkpoint) and differ between items."""
    from robustjax.text import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(str(tmp_path / "enc"), hidden=H, num_layers=1)
    texts = ["a comedy", "a drama", "horror film", "space opera", "war film", "a musical",
             "new comedy", "new horror", "new western"]  # fmt: skip
    cfg = ModelConfig(name="text-mf", dim=D, text_encoder=ckpt, text_max_len=8)
    fns, params = build_model(cfg, U, I, seed=0, item_texts=texts)
    assert params["items"]["features"][...].shape == (I, H)
    tx = optimizer_for(TrainConfig(learning_rate=0.05), fns, lambda: optimizer_of(TrainConfig()))
    state = tx.init(params)
    loss_on_emb = emb_loss(fns, "bpr")
    for _ in range(3):
        g = jax.grad(lambda p: jnp.mean(loss_on_emb(p, fns.embed(p, BATCH))))(params)
        updates, state = tx.update(g, state, params)
        params = jax.tree.map(jnp.add, params, updates)
    assert not np.any(params["items"]["ids"]["embedding"][...][6:])
    cold = np.asarray(fns.score_all(params, jnp.arange(U)))[:, 6:]
    assert np.all(cold != 0) and np.unique(cold.round(6)).size == cold.size


def test_text_sasrec_reads_items_through_the_tower():
    num_items, f = I - 1, _features()[: I - 1]
    model = TextSASRec(num_items, 5, D, num_blocks=1, dropout=0.0, text_dim=H, rngs=_rngs())
    from flax import nnx

    graphdef, params = nnx.split(model, nnx.Param)
    params = with_text_features(params, sequence_text_features(f))
    assert not np.any(params["items"]["features"][...][0])  # padding row
    m = nnx.merge(graphdef, params)
    table = m.item_table()
    assert table.shape == (num_items + 1, D)
    seq = jnp.array([[0, 0, 1, 2, 3]])
    emb = m.embed({"seq": seq, "pos": seq})
    np.testing.assert_allclose(emb["pos"], table[seq], rtol=1e-6)
    hidden = m.next_hidden(emb["seq"], seq)
    np.testing.assert_allclose(m.score_all(hidden), hidden @ table[1:].T, rtol=1e-5)
    assert TextSASRec.frozen_params == ("items/features",)
    with pytest.raises(ValueError, match=r"features of shape \(3, 16\)"):
        with_text_features(params, np.zeros((3, H), np.float32))


def _rngs():
    from flax import nnx

    return nnx.Rngs(0)


def test_text_model_errors():
    with pytest.raises(ValueError, match="needs item_texts="):
        build_model(ModelConfig(name="text-mf", dim=D), U, I, seed=0)
    with pytest.raises(ValueError, match=r"item_features of shape \(3, 16\); expected \(9, H\)"):
        build_model(ModelConfig(name="text-mf"), U, I, seed=0, item_features=np.zeros((3, H)))
