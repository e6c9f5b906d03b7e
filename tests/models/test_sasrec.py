"""SASRec: causality, padding invariance, shapes, a tiny training run, and attacks."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from robustjax.attacks import AttackConfig, make_attack
from robustjax.data import synthetic
from robustjax.data.sequences import (
    bucketed_batches,
    history_lengths,
    length_buckets,
    make_sequence_data,
    sample_unseen,
)
from robustjax.eval.sequence import make_sequence_eval_fn
from robustjax.losses.sequence import next_item_bce
from robustjax.models.sasrec import SASRec
from robustjax.runs import run_sasrec
from robustjax.train.sequence import make_sasrec_epoch_fn
from robustjax.train.state import init_state

I, L, D = 20, 6, 8


def _model(dropout=0.0, num_heads=1):
    return SASRec(I, L, D, num_blocks=2, num_heads=num_heads, dropout=dropout, rngs=nnx.Rngs(0))


SEQ = jnp.array([[0, 0, 3, 5, 7, 2], [1, 4, 9, 11, 13, 17]], jnp.int32)


def _encode(model, seq):
    return model.encode(model.embed({"seq": seq})["seq"], seq, deterministic=True)


@pytest.mark.parametrize("num_heads", [1, 2])
def test_causal(strict_promotion, num_heads):
    model = _model(num_heads=num_heads)
    out = _encode(model, SEQ)
    for t in range(2, L - 1):
        changed = SEQ.at[:, t + 1 :].set(19)
        out2 = _encode(model, changed)
        np.testing.assert_allclose(out2[:, : t + 1], out[:, : t + 1], atol=1e-5)
        assert not np.allclose(out2[:, t + 1 :], out[:, t + 1 :])


def test_padding_does_not_leak(strict_promotion):
    model = _model()
    emb = model.embed({"seq": SEQ})["seq"]
    out = model.encode(emb, SEQ, deterministic=True)
    noise = jax.random.normal(jax.random.key(1), emb.shape)
    pad = (SEQ == 0)[..., None]
    out2 = model.encode(emb + jnp.where(pad, noise, 0.0), SEQ, deterministic=True)
    np.testing.assert_allclose(out2[0, 2:], out[0, 2:], atol=1e-5)
    np.testing.assert_allclose(out2[1], out[1], atol=1e-5)
    # removing leading padding (shorter L, same right-aligned positions) changes nothing
    np.testing.assert_allclose(_encode(model, SEQ[:1, 2:]), out[:1, 2:], atol=1e-5)


def test_shapes_and_dropout_key(strict_promotion):
    model = _model(dropout=0.5)
    batch = {"seq": SEQ, "pos": SEQ, "neg": SEQ}
    emb = model.embed(batch)
    assert {k: v.shape for k, v in emb.items()} == {k: (2, L, D) for k in batch}
    np.testing.assert_allclose(emb["seq"], emb["pos"] * math.sqrt(D), rtol=1e-6)
    h = model.encode(emb["seq"], SEQ, deterministic=False, key=jax.random.key(0))
    assert h.shape == (2, L, D)
    assert model.score(h, emb["pos"]).shape == (2, L)
    assert model.score_items(h[:, -1], jnp.ones((2, 4), jnp.int32)).shape == (2, 4)
    h2 = model.encode(emb["seq"], SEQ, deterministic=False, key=jax.random.key(1))
    assert not np.allclose(h, h2)
    with pytest.raises(ValueError, match="key"):
        model.encode(emb["seq"], SEQ, deterministic=False)


def test_sample_negatives_avoid_seen():
    # 5 of 20 items seen: all 8 rejection draws hit a seen item with prob. 0.25**8 ~ 2e-5
    seen = jnp.zeros((3, I + 1), bool).at[:, 1:6].set(True)
    neg = sample_unseen(seen, (3, 50), I, key=jax.random.key(0))
    assert neg.dtype == jnp.int32 and neg.shape == (3, 50)
    assert bool(jnp.all((neg >= 6) & (neg <= I)))


def test_sequence_data_split():
    table = synthetic(num_users=4, num_items=30, interactions_per_user=8, seed=0)
    data = make_sequence_data(table, max_len=5, num_negatives=10)
    order = np.argsort(table.user, kind="stable")
    first = table.item[order][table.user[order] == 0] + 1
    np.testing.assert_array_equal(data.test_target[0], first[-1])
    np.testing.assert_array_equal(data.valid_target[0], first[-2])
    np.testing.assert_array_equal(data.test_input[0], first[-6:-1])
    np.testing.assert_array_equal(data.valid_input[0], first[-7:-2])
    np.testing.assert_array_equal(data.train[0], first[:-2][-6:])
    np.testing.assert_array_equal(data.test_cands[:, 0], data.test_target)
    assert not np.isin(np.asarray(data.test_cands[0, 1:]), first).any()


def test_tiny_training_run(tmp_path):
    table = synthetic(num_users=12, num_items=130, interactions_per_user=10, seed=0)
    m = run_sasrec(
        data_path="synthetic",
        out_dir=str(tmp_path),
        epochs=2,
        max_len=8,
        dim=8,
        num_blocks=1,
        batch_size=4,
        eval_every=1,
        progress=False,
        table=table,
    )
    for k in (
        "test/hr@10",
        "test/ndcg@10",
        "test/sampled_hr@10",
        "test/sampled_ndcg@10",
        "valid/sampled_hr@10",
        "valid/sampled_ndcg@10",
        "epoch_seconds_median",
        "train_seconds",
    ):
        assert math.isfinite(m[k]), k
    hist = [json.loads(x) for x in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert len(hist) == 2 and all(math.isfinite(h["loss"]) for h in hist)
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs_run"] == 2


@pytest.mark.slow
def test_epoch_and_eval_fns():
    table = synthetic(num_users=8, num_items=30, interactions_per_user=8, seed=1)
    data = make_sequence_data(table, max_len=L, num_negatives=10)
    model = SASRec(data.num_items, L, D, dropout=0.2, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(1e-2, b1=0.9, b2=0.98)
    epoch = make_sasrec_epoch_fn(graphdef, tx, data.num_items)
    state = init_state(params, tx)
    batches = jnp.arange(8, dtype=jnp.int32).reshape(2, 4)
    state, parts = epoch(state, data.train, data.seen_train, batches, jax.random.key(0))
    losses = parts["loss"]
    assert losses.shape == (2,) and bool(jnp.all(jnp.isfinite(losses)))
    assert int(state.step) == 2
    res = make_sequence_eval_fn(graphdef, ks=(10,), batch_size=3)(
        state.params, data.test_input, data.test_cands, data.seen_train
    )
    assert 0.0 <= float(res["sampled_ndcg@10"]) <= float(res["sampled_hr@10"]) <= 1.0
    assert 0.0 <= float(res["ndcg@10"]) <= float(res["hr@10"]) <= 1.0


def test_bucketed_batches_plan():
    rng = np.random.default_rng(0)
    need = rng.integers(1, 21, 50)  # input history lengths, max_len 20
    train = np.zeros((50, 21), np.int32)
    for u, n in enumerate(need):
        train[u, 20 - n :] = rng.integers(1, 9, n + 1)
    bounds = length_buckets(train, 4)
    assert bounds.tolist() == [5, 10, 15, 20]
    assert length_buckets(train, 1).tolist() == [20]
    with pytest.raises(ValueError, match="num_buckets"):
        length_buckets(train, 0)
    shapes = None
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(50)
        assert np.array_equal(history_lengths(train), need)
        plan = bucketed_batches(need, perm, 8, bounds)
        users = np.concatenate([b.reshape(-1) for _, b in plan])
        assert len(set(users.tolist())) == len(users) == 48  # only the last remainder
        for length, b in plan:
            assert b.dtype == np.int32 and b.shape[1] == 8
            assert np.all(need[b] <= length)  # every history fits
        # the batch counts depend only on the lengths: compiled functions are reused
        got = [(length, b.shape) for length, b in plan]
        assert shapes is None or got == shapes
        shapes = got
        one = bucketed_batches(need, perm, 8, length_buckets(train, 1))
        assert len(one) == 1 and np.array_equal(one[0][1], perm[:48].reshape(6, 8))


@pytest.mark.slow
def test_short_length_epoch_equals_full_length():
    """Training a batch of short histories on its bucket length is the same computation."""
    table = synthetic(num_users=8, num_items=30, interactions_per_user=6, seed=1)
    data = make_sequence_data(table, max_len=12, num_negatives=10)
    need = np.count_nonzero(np.asarray(data.train)[:, :-1], axis=1)
    assert need.max() <= 5
    model = SASRec(data.num_items, 12, D, dropout=0.0, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    # SGD: Adam would blow roundoff-sized gradients (e.g. of the padding row) up to lr-sized
    # steps, hiding the comparison behind float noise
    tx = optax.sgd(0.5)
    epoch = make_sasrec_epoch_fn(graphdef, tx, data.num_items)
    batches = jnp.arange(8, dtype=jnp.int32).reshape(2, 4)
    out = {}
    for length in (None, 6):
        state = init_state(jax.tree.map(jnp.copy, params), tx)
        state, parts = epoch(
            state, data.train, data.seen_train, batches, jax.random.key(0), length=length
        )
        out[length] = (state.params, parts["loss"])
    np.testing.assert_allclose(out[6][1], out[None][1], rtol=1e-5)
    assert not np.allclose(
        out[6][0]["items"]["embedding"][...], params["items"]["embedding"][...]
    )  # it trained
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), out[6][0], out[None][0]
    )
    with pytest.raises(ValueError, match="length must lie in"):
        epoch(
            init_state(params, tx),
            data.train,
            data.seen_train,
            batches,
            jax.random.key(0),
            length=13,
        )


@pytest.mark.parametrize("kind", ["pgd", "fgsm"])
def test_attack_on_seq_embeddings(strict_promotion, kind):
    model = _model(dropout=0.2)
    batch = {"seq": SEQ, "pos": jnp.roll(SEQ, -1, axis=1), "neg": jnp.full_like(SEQ, 19)}
    emb = model.embed(batch)
    key = jax.random.key(0)

    def loss_fn(e):  # per-example; same dropout key so clean and attacked compare
        return jnp.sum(next_item_bce(model, e, batch["seq"], deterministic=False, key=key), axis=1)

    cfg = AttackConfig(kind=kind, eps=0.1, num_steps=2, targets=("seq",))
    attack = make_attack(cfg, ("seq", "pos", "neg"))
    delta = jax.jit(lambda e: attack(loss_fn, e, key=jax.random.key(3)))(emb)
    assert delta["seq"].shape == emb["seq"].shape
    assert bool(jnp.all(jnp.linalg.norm(delta["seq"], axis=-1) <= 0.1 + 1e-5))
    assert float(jnp.abs(delta["pos"]).max()) == 0.0 == float(jnp.abs(delta["neg"]).max())
    adv = jax.tree.map(jnp.add, emb, delta)
    assert float(jnp.sum(loss_fn(adv))) >= float(jnp.sum(loss_fn(emb))) - 1e-5
