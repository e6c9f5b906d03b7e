"""Every sequential model x every history/embedding attack and every adversarial objective."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from robustjax.attacks.sequence import SEQUENCE_ATTACKS
from robustjax.data import synthetic
from robustjax.data.sequences import make_sequence_data
from robustjax.eval.seq_sweep import EMBEDDING_KINDS, SeqSweepConfig, run_seq_sweep
from robustjax.losses.sequence import SeqAdvConfig
from robustjax.models.bert4rec import BERT4Rec
from robustjax.models.sasrec import SASRec
from robustjax.train.sequence import make_bert4rec_epoch_fn, make_sasrec_epoch_fn
from robustjax.train.state import init_state

L, D = 6, 8
MODELS = ("sasrec", "bert4rec")


@pytest.fixture(scope="module")
def data():
    table = synthetic(num_users=12, num_items=120, interactions_per_user=10, seed=2)
    return make_sequence_data(table, max_len=L, num_negatives=15)


def _model(name, data):
    cls = SASRec if name == "sasrec" else BERT4Rec
    return cls(data.num_items, L, D, num_blocks=1, num_heads=1, dropout=0.1, rngs=nnx.Rngs(0))


# the model-agnostic kinds (noise, random edits, truncation) run with -m slow; the default
# run keeps every kind that differentiates through the model
GRADIENT_KINDS = ("fgsm", "pgd", "substitute_gradient", "insert_gradient", "delete_gradient")
KINDS = [
    k if k in GRADIENT_KINDS else pytest.param(k, marks=pytest.mark.slow)
    for k in EMBEDDING_KINDS + SEQUENCE_ATTACKS
]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_attack_on_every_sequence_model(data, name, kind):
    graphdef, params = nnx.split(_model(name, data), nnx.Param)
    discrete = kind in SEQUENCE_ATTACKS
    levels = (0, 2) if discrete else (0.0, 1.0)
    # the oracle objective (the target among its candidates): gradient attacks must lower it
    cfg = SeqSweepConfig(kind=kind, levels=levels, num_steps=2, user_batch=12, objective="oracle")
    out = run_seq_sweep(
        graphdef,
        params,
        data.test_input,
        data.test_cands,
        num_items=data.num_items,
        cfg=cfg,
        progress=False,
    )
    m = out["metrics"]
    assert all(np.isfinite(v).all() for v in m.values())
    assert m["target_score_shift"][0][0] == pytest.approx(0.0, abs=1e-6)  # level 0 = clean
    if discrete:
        assert 0 < m["changed_positions"][0][1] / 12 <= L  # something changed, within L
    if kind in ("fgsm", "pgd", "substitute_gradient"):  # gradient attacks lower the target
        assert m["target_score_shift"][0][1] < 0
    # the input rows' norms (what an absolute eps is measured against) are recorded
    model = nnx.merge(graphdef, params)
    rows = np.asarray(model.item_table())[1:] * model.input_scale
    want = np.linalg.norm(rows, axis=-1)
    np.testing.assert_allclose(out["norms"]["seq"]["mean"], want.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["norms"]["seq"]["median"], np.median(want), rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
# apr runs by default; pgd and hull (a longer inner loop to compile) with -m slow
@pytest.mark.parametrize(
    "method", ["apr"] + [pytest.param(m, marks=pytest.mark.slow) for m in ("pgd", "hull")]
)
def test_every_objective_on_every_sequence_model(data, name, method):
    graphdef, params = nnx.split(_model(name, data), nnx.Param)
    tx = optax.adam(1e-2)
    adv = SeqAdvConfig(
        method=method, eps=0.5, num_steps=1 if method == "apr" else 2, budget=2, num_candidates=3
    )
    batches = jnp.arange(12, dtype=jnp.int32).reshape(3, 4)
    before = [np.asarray(x) for x in jax.tree.leaves(params)]
    state = init_state(params, tx)  # donated by the epoch call
    if name == "sasrec":
        epoch = make_sasrec_epoch_fn(graphdef, tx, data.num_items, adv)
        state, parts = epoch(state, data.train, data.seen_train, batches, jax.random.key(0))
        assert bool(jnp.all(parts["adv"] >= parts["clean"] - 1e-3))
        losses = parts["loss"]
    else:
        epoch = make_bert4rec_epoch_fn(
            graphdef, tx, data.num_items, mask_prob=0.4, max_len=L, adv=adv
        )
        state, losses = epoch(state, data.train[:, 1:], batches, jax.random.key(0))
    assert losses.shape == (3,) and bool(jnp.all(jnp.isfinite(losses)))
    assert epoch._cache_size() == 1
    moved = [not np.allclose(a, b) for a, b in zip(before, jax.tree.leaves(state.params))]
    assert any(moved)
