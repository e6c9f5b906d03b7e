"""BERT4Rec: bidirectionality, padding invariance, the [MASK] next-item state, masking,
training, evaluation (sampled + full ranking), errors and the experiment's tiny path."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from robustjax.attacks import AttackConfig, make_attack
from robustjax.data import synthetic
from robustjax.data.cloze import mask_items, num_predictions
from robustjax.data.sequences import make_sequence_data
from robustjax.eval.sequence import make_sequence_eval_fn
from robustjax.losses.sequence import masked_item_loss
from robustjax.models import BERT4Rec
from robustjax.train.sequence import make_bert4rec_epoch_fn
from robustjax.train.state import init_state

I, L, D = 20, 6, 8
SEQ = jnp.array([[0, 0, 3, 5, 7, 2], [1, 4, 9, 11, 13, 17]], jnp.int32)


def _model(dropout=0.0, num_heads=2):
    return BERT4Rec(I, L, D, num_blocks=2, num_heads=num_heads, dropout=dropout, rngs=nnx.Rngs(0))


def _encode(model, seq):
    return model.encode(model.embed({"seq": seq})["seq"], seq, deterministic=True)


def test_input_embeddings_are_the_item_rows_unscaled(strict_promotion):
    """The paper's input is h0 = v + p: ``embed(...)["seq"]`` is exactly the item table's
    rows (``input_scale == 1``, no sqrt(D) factor), [MASK] included."""
    model = _model()
    assert model.input_scale == 1.0
    seq = SEQ.at[0, 1].set(model.mask_id)
    table = model.items.embedding[...]
    emb = model.embed({"seq": seq})
    assert emb["seq"].dtype == table.dtype
    np.testing.assert_array_equal(emb["seq"], table[seq])
    np.testing.assert_array_equal(emb["seq"][1], model.item_table()[SEQ[1]])


@pytest.mark.slow
def test_shapes_scale_and_dropout_key(strict_promotion):
    model = _model(dropout=0.5)
    assert model.items.embedding[...].shape == (I + 2, D) and model.mask_id == I + 1
    batch = {"seq": SEQ, "pos": SEQ, "neg": jnp.ones((2, L), jnp.int32)}
    emb = model.embed(batch)
    assert {k: v.shape for k, v in emb.items()} == {k: (2, L, D) for k in batch}
    np.testing.assert_array_equal(emb["seq"], emb["pos"])  # h0 = v + p: no sqrt(D)
    h = model.encode(emb["seq"], SEQ, deterministic=False, key=jax.random.key(0))
    h2 = model.encode(emb["seq"], SEQ, deterministic=False, key=jax.random.key(1))
    assert h.shape == (2, L, D) and h.dtype == jnp.float32 and not np.allclose(h, h2)
    nh = model.next_hidden(emb["seq"], SEQ)
    assert nh.shape == (2, D)
    items = jnp.array([[1, 2, 3], [I, 5, 6]], jnp.int32)
    s_items, s_all = model.score_items(nh, items), model.score_all(nh)
    assert s_items.shape == (2, 3) and s_all.shape == (2, I)
    np.testing.assert_allclose(
        s_items, jnp.take_along_axis(s_all, items - 1, axis=1), rtol=1e-5, atol=1e-6
    )
    assert model.score_all(h).shape == (2, L, I)


@pytest.mark.parametrize("num_heads", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_bidirectional(strict_promotion, num_heads):
    model = _model(num_heads=num_heads)
    out = _encode(model, SEQ)
    for t in range(2, L - 1):  # a later item changes every earlier real position
        out2 = _encode(model, SEQ.at[:, t + 1].set(19))
        assert not np.allclose(out2[0, 2 : t + 1], out[0, 2 : t + 1], atol=1e-4)
        assert not np.allclose(out2[1, : t + 1], out[1, : t + 1], atol=1e-4)


@pytest.mark.slow
def test_padding_does_not_leak(strict_promotion):
    model = _model()
    emb = model.embed({"seq": SEQ})["seq"]
    out = model.encode(emb, SEQ, deterministic=True)
    noise = jax.random.normal(jax.random.key(1), emb.shape)
    pad = (SEQ == 0)[..., None]
    out2 = model.encode(emb + jnp.where(pad, noise, 0.0), SEQ, deterministic=True)
    np.testing.assert_allclose(out2[0, 2:], out[0, 2:], atol=1e-5)
    np.testing.assert_allclose(out2[1], out[1], atol=1e-5)
    # removing (or adding) leading padding, positions stay right-aligned: no change
    np.testing.assert_allclose(_encode(model, SEQ[:1, 2:]), out[:1, 2:], atol=1e-5)
    shorter = SEQ[:1, 1:]  # next_hidden drops a padding slot either way
    np.testing.assert_allclose(
        model.next_hidden(model.embed({"seq": shorter})["seq"], shorter),
        model.next_hidden(emb[:1], SEQ[:1]),
        atol=1e-5,
    )


def test_next_hidden_uses_mask_token(strict_promotion):
    model = _model()
    emb = model.embed({"seq": SEQ})["seq"]
    nh = model.next_hidden(emb, SEQ)
    shifted = jnp.concatenate([SEQ[:, 1:], jnp.full((2, 1), I + 1, jnp.int32)], axis=1)
    np.testing.assert_allclose(nh, _encode(model, shifted)[:, -1], atol=1e-5)
    # the oldest item is dropped, so changing it (ids and embedding) changes nothing
    seq2 = SEQ.at[1, 0].set(19)
    np.testing.assert_allclose(
        model.next_hidden(model.embed({"seq": seq2})["seq"], seq2), nh, atol=1e-5
    )
    # the [MASK] row of the table feeds the last position
    table = model.items.embedding[...]
    bump = jnp.linspace(-1.0, 1.0, D)  # not constant: LayerNorm removes constant shifts
    model.items.embedding[...] = table.at[I + 1].add(bump)
    assert not np.allclose(model.next_hidden(emb, SEQ), nh, atol=1e-4)
    np.testing.assert_allclose(
        jax.jit(lambda e: model.next_hidden(e, SEQ))(emb), model.next_hidden(emb, SEQ), atol=1e-5
    )


def test_mask_items():
    rows = jnp.array(
        [
            [0, 0, 0, 3, 4, 5, 6, 7, 8, 9],
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
        ],
        jnp.int32,
    )
    p = num_predictions(0.3, 10)
    assert p == 3
    seq, pos, tgt, valid = mask_items(
        rows, mask_prob=0.3, mask_id=99, num_slots=p, key=jax.random.key(0)
    )
    np.testing.assert_array_equal(valid.sum(1), [2, 3, 1])  # round(0.3 * len), at least 1
    np.testing.assert_array_equal((seq == 99).sum(1), [2, 3, 1])
    np.testing.assert_array_equal(jnp.where(seq == 99, rows, seq), rows)
    np.testing.assert_array_equal(jnp.where(valid, jnp.take_along_axis(rows, pos, 1), 0), tgt)
    assert bool(jnp.all(jnp.where(valid, tgt, 1) > 0))
    seq, pos, tgt, valid = mask_items(
        rows, mask_prob=0.3, mask_id=99, num_slots=p, mask_last_prob=1.0, key=jax.random.key(0)
    )
    np.testing.assert_array_equal(seq[:, -1], [99, 99, 99])
    np.testing.assert_array_equal(seq[:, :-1], rows[:, :-1])
    np.testing.assert_array_equal(pos[:, 0], [9, 9, 9])
    np.testing.assert_array_equal(valid.sum(1), [1, 1, 1])


def _data():
    table = synthetic(num_users=16, num_items=40, interactions_per_user=10, seed=1)
    return make_sequence_data(table, max_len=L, num_negatives=10)


@pytest.mark.slow
def test_masked_loss_decreases():
    data = _data()
    model = BERT4Rec(data.num_items, L, 16, num_heads=2, dropout=0.0, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(1e-2)
    epoch = make_bert4rec_epoch_fn(
        graphdef, tx, data.num_items, mask_prob=0.4, max_len=L, mask_last_prob=0.2
    )
    state = init_state(params, tx)
    batches = jnp.zeros((80, 16), jnp.int32) + jnp.arange(16, dtype=jnp.int32)[None, :]
    state, losses = epoch(state, data.train[:, 1:], batches, jax.random.key(0))
    assert losses.shape == (80,) and bool(jnp.all(jnp.isfinite(losses)))
    assert int(state.step) == 80
    assert float(jnp.mean(losses[-10:])) < 0.75 * float(jnp.mean(losses[:10]))


@pytest.mark.slow
def test_loss_values_and_all_masked(strict_promotion):
    model = _model()
    seq = jnp.array([[0, 0, 3, 5, I + 1, 2]], jnp.int32)
    pos, tgt = jnp.array([[4, 0]], jnp.int32), jnp.array([[7, 0]], jnp.int32)
    valid = jnp.array([[True, False]])
    emb = model.embed({"seq": seq})["seq"]
    v = masked_item_loss(model, emb, seq, pos, tgt, valid, deterministic=True)
    logits = model.score_all(_encode(model, seq)[0, 4])
    np.testing.assert_allclose(v[0, 0], jax.nn.logsumexp(logits) - logits[6], rtol=1e-5)
    assert float(v[0, 1]) == 0.0
    # sampled softmax over [target, negatives]; a negative equal to the target is dropped
    neg = jnp.array([[[1, 7, 9], [1, 2, 3]]], jnp.int32)
    v = masked_item_loss(model, emb, seq, pos, tgt, valid, negatives=neg, deterministic=True)
    sub = logits[jnp.array([6, 0, 8])]
    np.testing.assert_allclose(v[0, 0], jax.nn.logsumexp(sub) - sub[0], rtol=1e-5)
    assert float(v[0, 1]) == 0.0
    none = jnp.zeros_like(valid)
    g = jax.grad(
        lambda e: jnp.sum(masked_item_loss(model, e, seq, pos, tgt, none, deterministic=True))
    )(emb)
    assert bool(jnp.all(jnp.isfinite(g)))


@pytest.mark.slow
def test_eval_fn_sampled_and_full():
    data = _data()
    model = BERT4Rec(data.num_items, L, D, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    evaluate = make_sequence_eval_fn(
        graphdef, ks=(10, 20), batch_size=5
    )  # 16 users: padded last batch
    res = evaluate(params, data.test_input, data.test_cands, data.seen_train)
    for k, v in res.items():
        assert 0.0 <= float(v) <= 1.0, k
    assert float(res["sampled_ndcg@10"]) <= float(res["sampled_hr@10"])
    assert float(res["hr@10"]) <= float(res["recall@20"])
    # excluding every item but the target puts it first in the full ranking
    everything = jnp.ones_like(data.seen_train)
    res = evaluate(params, data.test_input, data.test_cands, everything)
    assert float(res["hr@10"]) == 1.0 == float(res["ndcg@10"])
    # sampled rank, by hand for user 0
    m = nnx.merge(graphdef, params)
    s = m.score_items(
        m.next_hidden(m.embed({"seq": data.test_input})["seq"], data.test_input), data.test_cands
    )
    ranks = np.sum(np.asarray(s[:, 1:] > s[:, :1]), axis=1)
    res = evaluate(params, data.test_input, data.test_cands, data.seen_train)
    np.testing.assert_allclose(res["sampled_hr@10"], np.mean(ranks < 10), rtol=1e-6)


@pytest.mark.slow  # the same attack path runs on SASRec by default
def test_attack_on_seq_embeddings(strict_promotion):
    model = _model(dropout=0.1)
    emb = model.embed({"seq": SEQ})
    cands = jnp.array([[2, 8, 9], [18, 1, 2]], jnp.int32)
    key = jax.random.key(0)

    def loss_fn(e):  # per-example: negative log-probability of candidate 0
        h = model.next_hidden(e["seq"], SEQ, deterministic=False, key=key)
        return -jax.nn.log_softmax(model.score_items(h, cands), axis=-1)[:, 0]

    attack = make_attack(AttackConfig(kind="pgd", eps=0.1, num_steps=2, targets=("seq",)), ("seq",))
    delta = jax.jit(lambda e: attack(loss_fn, e, key=jax.random.key(3)))(emb)
    assert bool(jnp.all(jnp.linalg.norm(delta["seq"], axis=-1) <= 0.1 + 1e-5))
    adv = jax.tree.map(jnp.add, emb, delta)
    assert float(jnp.sum(loss_fn(adv))) >= float(jnp.sum(loss_fn(emb))) - 1e-5


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"num_heads": 3}, ValueError, "num_heads=3 must divide dim=8"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"num_blocks": 0}, ValueError, "num_blocks"),
        ({"max_len": 6.0}, TypeError, "max_len"),
    ],
)
def test_constructor_errors(kwargs, err, match):
    args = {"num_items": I, "max_len": L, "dim": D, **kwargs}
    with pytest.raises(err, match=match):
        BERT4Rec(
            args.pop("num_items"), args.pop("max_len"), args.pop("dim"), **args, rngs=nnx.Rngs(0)
        )


def test_call_errors():
    model = _model(dropout=0.2)
    emb = model.embed({"seq": SEQ})["seq"]
    with pytest.raises(ValueError, match="key"):
        model.encode(emb, SEQ, deterministic=False)
    long = jnp.ones((1, L + 1), jnp.int32)
    with pytest.raises(ValueError, match="exceeds max_len=6"):
        model.encode(model.embed({"seq": long})["seq"], long, deterministic=True)
    with pytest.raises(ValueError, match=r"\(2, 6, 8\).*\(2, 5\)"):
        model.next_hidden(emb, SEQ[:, 1:])
    with pytest.raises(ValueError, match="score_items"):
        model.score_items(emb[:, -1], jnp.ones((3,), jnp.int32))
    graphdef, _ = nnx.split(model, nnx.Param)
    for kw, match in (
        ({"mask_prob": 0.0}, "mask_prob"),
        ({"mask_prob": 0.2, "mask_last_prob": 1.5}, "mask_last_prob"),
        ({"mask_prob": 0.2, "num_sampled": -1}, "num_sampled"),
    ):
        with pytest.raises(ValueError, match=match):
            make_bert4rec_epoch_fn(graphdef, optax.adam(1e-3), I, max_len=L, **kw)


def test_experiment_config_errors():
    from robustjax.config import apply_overrides
    from robustjax.data import DataConfig
    from robustjax.experiments import load_module

    get_config = load_module("bert4rec-ml1m").get_config

    with pytest.raises(ValueError, match="mask_prob"):
        apply_overrides(get_config(), ["train.mask_prob=1.5"])
    with pytest.raises(ValueError, match="num_heads=3 must divide dim=64"):
        apply_overrides(get_config(), ["model.num_heads=3"])
    with pytest.raises(ValueError, match="early_metric='sampled_ndcg@10' is not computed"):
        apply_overrides(get_config(), ["eval.sampled_negatives=0"])
    with pytest.raises(ValueError, match="does not apply to model 'bert4rec'"):
        apply_overrides(get_config(), ["adv.method=trades"])
    with pytest.raises(ValueError, match="trains with loss='softmax'"):
        apply_overrides(get_config(), ["train.loss=bpr"])
    # full ranking only: the same config with the sampled protocol off
    cfg = apply_overrides(
        get_config(tiny=True), ["eval.sampled_negatives=0", "train.early_metric=ndcg@10"]
    )
    assert cfg.eval.sampled_negatives == 0 and isinstance(cfg.data, DataConfig)


@pytest.mark.slow  # runs with -m slow (long compile on 2 cores)
def test_experiment_tiny_cli(tmp_path, capsys):
    from robustjax.cli.main import main

    out = tmp_path / "run"
    assert (
        main(
            ["train", "--experiment", "bert4rec-ml1m", "--tiny", "--out", str(out), "--no-progress"]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    for k in (
        "test/sampled_hr@10",
        "test/sampled_ndcg@10",
        "test/hr@10",
        "test/ndcg@10",
        "test/recall@20",
        "test/ndcg@20",
        "valid/sampled_ndcg@10",
    ):
        assert 0.0 <= m[k] <= 1.0, k
    assert m["epochs_run"] == 2
    assert len((out / "history.jsonl").read_text().splitlines()) == 2
    assert (out / "checkpoint" / "params.npz").exists()
    assert "test/hr@10" in capsys.readouterr().out
