"""Adversarial training of SASRec, saved sequential runs, and sequence robustness sweeps."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from robustjax.data import synthetic
from robustjax.data.sequences import make_sequence_data
from robustjax.eval.seq_sweep import SeqSweepConfig, candidate_loss, run_seq_sweep
from robustjax.eval.sequence import make_sequence_eval_fn
from robustjax.losses.sequence import SeqAdvConfig, next_item_bce, sequence_objective
from robustjax.models.sasrec import SASRec
from robustjax.runs import is_sequence_run, load_sequence_run, run_sasrec
from robustjax.train.sequence import make_sasrec_epoch_fn
from robustjax.train.state import init_state

L, D = 6, 8
SYN = {"num_users": 16, "num_items": 140, "interactions_per_user": 10, "seed": 0}


@pytest.fixture(scope="module")
def data():
    return make_sequence_data(synthetic(**SYN), max_len=L, num_negatives=20)


def _sampled_metrics(graphdef, params, data):
    """Test metrics of the sampled protocol (the sweeps' clean reference)."""
    return make_sequence_eval_fn(graphdef, ks=(10,))(
        params, data.test_input, data.test_cands, data.seen_train
    )


def _model(data, dropout=0.0, seed=0):
    return SASRec(data.num_items, L, D, num_blocks=1, dropout=dropout, rngs=nnx.Rngs(seed))


def _batch(data):
    rows = data.train[:8]
    return {
        "seq": rows[:, :-1],
        "pos": rows[:, 1:],
        "neg": jnp.where(rows[:, :-1] != 0, (rows[:, 1:] % data.num_items) + 1, 0),
    }


def _per_pos(model, emb, ids, key):
    return next_item_bce(model, emb, ids, deterministic=True)


@pytest.mark.parametrize(
    "kw",
    [
        {"method": "magic"},
        {"eps": -1.0},
        {"lam": float("nan")},
        {"num_steps": 0},
        {"method": "apr", "num_steps": 3},
        {"norm": "l3"},
        {"start_epoch": 0},
        {"budget": 0},
    ],
)
def test_config_errors_name_the_value(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        SeqAdvConfig(**kw)


@pytest.mark.parametrize("method", ["apr", "pgd"])
def test_adversarial_term_not_below_clean_and_eps0_is_clean(data, method):
    model = _model(data)
    batch = _batch(data)
    emb = model.embed(batch)
    steps = 1 if method == "apr" else 3
    for eps, check in ((0.5, "ge"), (0.0, "eq")):
        obj = sequence_objective(SeqAdvConfig(method=method, eps=eps, num_steps=steps), _per_pos)
        total, parts = obj(model, emb, batch["seq"], key=jax.random.key(0))
        if check == "ge":
            assert float(parts["adv"]) > float(parts["clean"])
        else:
            np.testing.assert_allclose(parts["adv"], parts["clean"], rtol=1e-6)
        np.testing.assert_allclose(total, parts["clean"] + parts["adv"], rtol=1e-6)


def test_sequence_pgd_starts_at_random_unless_random_start_is_false(data):
    """PGD-AT on the input sequence starts uniformly in the ball by default (the
    adversarial loss depends on the key); ``random_start=False`` is the zero start (no key
    dependence). The AdvConfig <-> SeqAdvConfig conversions carry the option."""
    from robustjax.objectives import AdvConfig
    from robustjax.runs.keywords import adv_config_of
    from robustjax.runs.sequence import sequence_adv

    model = _model(data)
    batch = _batch(data)
    emb = model.embed(batch)
    adv = {}
    for random_start in (True, False):
        cfg = SeqAdvConfig(method="pgd", eps=0.5, num_steps=2, random_start=random_start)
        obj = sequence_objective(cfg, _per_pos)
        adv[random_start] = [
            float(obj(model, emb, batch["seq"], key=jax.random.key(k))[1]["adv"]) for k in (0, 1)
        ]
    assert adv[True][0] != adv[True][1]
    assert adv[False][0] == adv[False][1]
    assert adv[True][0] != adv[False][0]
    off = AdvConfig(method="pgd", targets=("seq",), random_start=False)
    assert sequence_adv(off).random_start is False
    assert sequence_adv(AdvConfig(method="pgd", targets=("seq",))).random_start is True
    assert adv_config_of(sequence_adv(off)).random_start is False


def test_no_adv_objective_is_the_masked_mean_bce(data):
    model = _model(data)
    batch = _batch(data)
    total, parts = sequence_objective(None, _per_pos)(
        model, model.embed(batch), batch["seq"], key=jax.random.key(0)
    )
    v = next_item_bce(model, model.embed(batch), batch["seq"], deterministic=True)
    ref = float(jnp.sum(v) / jnp.sum(batch["seq"] != 0))
    np.testing.assert_allclose(total, ref, rtol=1e-6)
    assert set(parts) == {"clean"}


def test_adversarial_epoch_compiles_once_and_trains(data):
    model = _model(data, dropout=0.2)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(1e-2)
    epoch = make_sasrec_epoch_fn(graphdef, tx, data.num_items, SeqAdvConfig(method="apr", eps=0.3))
    state = init_state(params, tx)
    batches = jnp.arange(16, dtype=jnp.int32).reshape(4, 4)
    for e in range(3):
        state, parts = epoch(state, data.train, data.seen_train, batches, jax.random.key(e))
    assert epoch._cache_size() == 1
    assert set(parts) == {"loss", "clean", "adv", "check/budget_excess/adv"}
    assert bool(jnp.all(parts["adv"] >= parts["clean"] - 1e-3))
    assert bool(jnp.all(parts["check/budget_excess/adv"] <= 1e-3))  # inside its ball


@pytest.mark.slow
def test_run_saves_reloadable_checkpoint_and_fine_tunes(tmp_path):
    plain = run_sasrec(
        data_path=None,
        out_dir=str(tmp_path / "plain"),
        epochs=2,
        max_len=L,
        dim=D,
        num_blocks=1,
        batch_size=4,
        eval_every=1,
        progress=False,
        synthetic=SYN,
    )
    assert is_sequence_run(str(tmp_path / "plain"))
    loaded = load_sequence_run(str(tmp_path / "plain"))
    d = loaded.data
    res = make_sequence_eval_fn(loaded.graphdef, ks=(10,))(
        loaded.params,
        d.test_input,
        d.test_cands,
        d.seen_train.at[jnp.arange(d.num_users), d.valid_target].set(True),  # + the valid item
    )
    for key in ("sampled_hr@10", "sampled_ndcg@10", "hr@10", "ndcg@10"):
        np.testing.assert_allclose(float(res[key]), plain[f"test/{key}"], rtol=1e-6)

    adv = SeqAdvConfig(method="apr", eps=0.5, start_epoch=2)
    m = run_sasrec(
        data_path=None,
        out_dir=str(tmp_path / "adv"),
        epochs=3,
        max_len=L,
        dim=D,
        num_blocks=1,
        batch_size=4,
        eval_every=1,
        progress=False,
        synthetic=SYN,
        adv=adv,
        init_from=str(tmp_path / "plain"),
    )
    hist = [json.loads(x) for x in (tmp_path / "adv" / "history.jsonl").read_text().splitlines()]
    assert [h["phase"] for h in hist if h["epoch"] > 0] == ["clean", "apr", "apr"]
    hist = [h for h in hist if h["epoch"] > 0]  # without the initial model's validation
    assert "adv" not in hist[0] and all("adv" in h for h in hist[1:])
    assert m["best_epoch"] >= 2 and math.isfinite(m["adv_epoch_seconds_median"])
    written = json.loads((tmp_path / "adv" / "config.json").read_text())
    assert written["train"]["init_from"] == str(tmp_path / "plain")

    with pytest.raises(ValueError, match="init_from"):
        run_sasrec(
            data_path=None,
            out_dir=str(tmp_path / "bad"),
            epochs=1,
            max_len=L,
            dim=D + 4,
            num_blocks=1,
            batch_size=4,
            progress=False,
            synthetic=SYN,
            init_from=str(tmp_path / "plain"),
        )
    with pytest.raises(ValueError, match="no adversarial epoch"):
        run_sasrec(
            data_path=None,
            out_dir=str(tmp_path / "late"),
            epochs=1,
            max_len=L,
            dim=D,
            num_blocks=1,
            progress=False,
            synthetic=SYN,
            adv=SeqAdvConfig(method="apr", start_epoch=5),
        )


@pytest.mark.slow
def test_embedding_sweep_level0_is_clean_and_vmap_matches_loop(data):
    model = _model(data, seed=3)
    graphdef, params = nnx.split(model, nnx.Param)
    clean = _sampled_metrics(graphdef, params, data)
    cfg = SeqSweepConfig(
        kind="pgd", levels=(0.0, 0.5, 2.0), num_steps=3, user_batch=5, objective="oracle"
    )
    out = run_seq_sweep(
        graphdef,
        params,
        data.test_input,
        data.test_cands,
        num_items=data.num_items,
        cfg=cfg,
        progress=False,
    )
    hr = out["metrics"]["sampled_hr@10"][0]
    np.testing.assert_allclose(hr[0], float(clean["sampled_hr@10"]), rtol=1e-6)
    np.testing.assert_allclose(
        out["metrics"]["sampled_ndcg@10"][0][0], float(clean["sampled_ndcg@10"]), rtol=1e-6
    )
    assert out["metrics"]["target_score_shift"][0][0] == pytest.approx(0.0, abs=1e-6)
    assert out["metrics"]["target_score_shift"][0][2] < 0  # the attack lowers the target
    for i, eps in enumerate(cfg.levels):  # one level at a time gives the same numbers
        one = run_seq_sweep(
            graphdef,
            params,
            data.test_input,
            data.test_cands,
            num_items=data.num_items,
            cfg=SeqSweepConfig(
                kind="pgd", levels=(eps,), num_steps=3, user_batch=7, objective="oracle"
            ),
            progress=False,
        )
        np.testing.assert_allclose(
            one["metrics"]["sampled_ndcg@10"][0][0],
            out["metrics"]["sampled_ndcg@10"][0][i],
            rtol=1e-5,
        )


@pytest.mark.slow
def test_default_objective_is_label_free(data):
    """The default sequential attack never reads the test item or the evaluation
    candidates: its gradient is the same whatever candidates the evaluation uses; the
    oracle objective's is not."""
    from robustjax.eval.seq_sweep import _objective

    model = _model(data, seed=3)
    ids = data.test_input[:6]
    emb = model.embed({"seq": ids})["seq"]
    a = data.test_cands[:6]
    b = jnp.roll(a, 1, axis=0)  # other targets and negatives

    def grad(cfg, cands):
        loss = _objective(model, cfg, ids, cands, emb)
        return np.asarray(jax.grad(lambda e: jnp.sum(loss(e, ids)))(emb))

    default = SeqSweepConfig()
    assert default.objective == "prediction"
    np.testing.assert_array_equal(grad(default, a), grad(default, b))
    oracle = SeqSweepConfig(objective="oracle")
    assert not np.allclose(grad(oracle, a), grad(oracle, b))
    out = run_seq_sweep(
        nnx.split(model, nnx.Param)[0], nnx.split(model, nnx.Param)[1], data.test_input,
        data.test_cands, num_items=data.num_items, progress=False,
        cfg=SeqSweepConfig(kind="substitute_gradient", levels=(0, 2), user_batch=8),
    )  # fmt: skip
    assert out["metrics"]["changed_positions"][0][1] > 0


def test_candidate_loss_is_cross_entropy_of_column_0(data):
    model = _model(data)
    ids, cands = data.test_input[:3], data.test_cands[:3]
    emb = model.embed({"seq": ids})["seq"]
    h = model.next_hidden(emb, ids)
    s = np.asarray(model.score_items(h, cands), np.float64)
    ref = -(s[:, 0] - np.log(np.exp(s).sum(axis=1)))
    np.testing.assert_allclose(candidate_loss(model, emb, ids, cands), ref, rtol=1e-5)


def test_sweep_config_errors():
    with pytest.raises(ValueError, match="kind"):
        SeqSweepConfig(kind="nope")
    with pytest.raises(ValueError, match="ascending"):
        SeqSweepConfig(levels=(0.5, 0.1))
    with pytest.raises(ValueError, match="budgets"):
        SeqSweepConfig(kind="truncate", levels=(0, 1.5))


@pytest.mark.slow  # runs with -m slow (long compile on 2 cores)
def test_hull_objective_raises_the_loss_and_trains_the_table(data):
    model = _model(data)
    batch = _batch(data)
    cfg = SeqAdvConfig(method="hull", budget=2, num_candidates=4, num_steps=3, step_size=5.0)
    obj = sequence_objective(cfg, _per_pos)
    _, parts = obj(model, model.embed(batch), batch["seq"], key=jax.random.key(1))
    assert float(parts["adv"]) >= float(parts["clean"]) - 1e-6

    graphdef, params = nnx.split(model, nnx.Param)

    def adv_only(p):
        m = nnx.merge(graphdef, p)
        return obj(m, m.embed(batch), batch["seq"], key=jax.random.key(1))[1]["adv"]

    g = jax.grad(adv_only)(params)
    assert float(jnp.abs(g["items"]["embedding"][...]).sum()) > 0


@pytest.mark.parametrize(
    "kind",
    ["substitute_gradient", "substitute_random", "truncate", "insert_gradient", "delete_gradient"],
)
def test_history_sweep_budget0_is_clean_and_never_improves_much(data, kind):
    model = _model(data, seed=3)
    graphdef, params = nnx.split(model, nnx.Param)
    cfg = SeqSweepConfig(kind=kind, levels=(0, 2), user_batch=8, objective="oracle")
    out = run_seq_sweep(
        graphdef,
        params,
        data.test_input,
        data.test_cands,
        num_items=data.num_items,
        cfg=cfg,
        progress=False,
    )
    clean = _sampled_metrics(graphdef, params, data)
    np.testing.assert_allclose(
        out["metrics"]["sampled_hr@10"][0][0], float(clean["sampled_hr@10"]), rtol=1e-6
    )
    assert out["metrics"]["changed_positions"][0][0] == 0
    if kind == "substitute_gradient":
        assert 0 < out["metrics"]["changed_positions"][0][1] <= 2
        assert out["metrics"]["target_score_shift"][0][1] < 0
