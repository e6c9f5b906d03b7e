"""NeuMF and LightGCN behind the ModelFns boundary: numerics, attacks, training, tables."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from robustjax.attacks import AttackConfig, make_attack
from robustjax.data import synthetic
from robustjax.eval import make_table_attack
from robustjax.losses import emb_loss
from robustjax.models.lightgcn import (
    Graph,
    LightGCN,
    OutputTables,
    build_graph,
    lightgcn_fns,
    propagate,
)
from robustjax.models.neumf import NeuMF, neumf_fns
from robustjax.objectives import AdvConfig, build_phases
from robustjax.train import build_train_arrays, fit, make_optimizer

# every model shares these table sizes, so initialisers and steps compile once per shape
TABLE = synthetic(num_users=30, num_items=40, interactions_per_user=6, seed=0)
U, I, B, N = TABLE.num_users, TABLE.num_items, 5, 3
# a hand-made graph for the dense reference: a repeated pair, an isolated user and item
SMALL_U, SMALL_I = 7, 9
PAIRS_U = np.array([0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 5, 0], np.int32)  # user 6: isolated
PAIRS_I = np.array([0, 1, 2, 2, 3, 4, 0, 5, 6, 1, 6, 7, 1], np.int32)  # (0, 1) twice; item 8


@functools.cache
def _graph():
    return build_graph(TABLE.user, TABLE.item, U, I)


@functools.cache
def _data():
    return build_train_arrays(TABLE.user, TABLE.item, U, I)


@functools.cache
def _module(name):
    # one jitted program with the cheap "rbg" PRNG: eager threefry initialisers compile
    # one program per shape (seconds in all)
    def rngs():
        return nnx.Rngs(params=jax.random.key(0, impl="rbg"))

    if name == "neumf":
        return nnx.jit(
            lambda: NeuMF(U, I, gmf_dim=4, mlp_dim=3, hidden=(8,), embed_std=0.5, rngs=rngs())
        )()
    return nnx.jit(lambda: LightGCN(U, I, 4, num_layers=2, rngs=rngs()))()


@functools.cache
def _make(name):
    """``(fns, params)``; modules are built once (tests never mutate them)."""
    if name == "neumf":
        return neumf_fns(_module(name))
    return lightgcn_fns(_module("lightgcn"), _graph(), perturb=name.split("-")[1])


MODELS = ["neumf", "lightgcn-layer0", "lightgcn-output"]


def _batch(neg_rows=False):
    rng = np.random.default_rng(0)
    neg = rng.integers(0, I, (B, N) if neg_rows else (B,))
    return {
        "user": jnp.array([0, 1, 2, 6, 0]),
        "pos": jnp.array([1, 2, 4, 8, 0]),
        "neg": jnp.asarray(neg, jnp.int32),
        "mask": jnp.ones(B, jnp.float32),
    }


# ------------------------------------------------------------------ LightGCN graph numerics


@pytest.mark.parametrize("num_layers", [0, 1, 3])
def test_lightgcn_propagation_equals_dense_reference(num_layers, strict_promotion):
    rng = np.random.default_rng(1)
    U, I = SMALL_U, SMALL_I
    e_user, e_item = rng.normal(size=(U, 4)), rng.normal(size=(I, 4))
    r = np.zeros((U, I))
    r[PAIRS_U, PAIRS_I] = 1.0  # the repeated pair counts once
    a = np.block([[np.zeros((U, U)), r], [r.T, np.zeros((I, I))]])
    deg = a.sum(1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1)), 0.0)
    a_hat = inv[:, None] * a * inv[None, :]
    e, layer = np.concatenate([e_user, e_item]), np.concatenate([e_user, e_item])
    total = e.copy()
    for _ in range(num_layers):
        layer = a_hat @ layer
        total += layer
    want = total / (num_layers + 1)
    graph = build_graph(PAIRS_U, PAIRS_I, U, I)
    assert graph.num_edges == 12
    got_u, got_i = jax.jit(propagate, static_argnums=3)(
        jnp.asarray(e_user, jnp.float32), jnp.asarray(e_item, jnp.float32), graph, num_layers
    )
    np.testing.assert_allclose(got_u, want[:U], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_i, want[U:], rtol=1e-5, atol=1e-6)
    # the module's propagation is the same function of its layer-0 tables
    fns, params = _make("lightgcn-layer0")
    t = fns.get_tables(params)
    want_u, _ = propagate(t["user"], t["item"], _graph(), 2)
    np.testing.assert_allclose(
        fns.embed(params, {"user": jnp.arange(SMALL_U)})["user"], want_u[:SMALL_U], rtol=1e-6
    )


def test_build_graph_and_lightgcn_fns_validate_inputs():
    with pytest.raises(ValueError, match=r"item ids must lie in \[0, 9\), got range \[0, 9\]"):
        build_graph(np.array([0, 1]), np.array([0, 9]), SMALL_U, SMALL_I)
    with pytest.raises(ValueError, match="equal length"):
        build_graph(np.array([0, 1]), np.array([0]), SMALL_U, SMALL_I)
    with pytest.raises(ValueError, match=f"graph has 7 users x 9 items but the model {U} x {I}"):
        lightgcn_fns(_module("lightgcn"), build_graph(PAIRS_U, PAIRS_I, SMALL_U, SMALL_I))
    with pytest.raises(ValueError, match="perturb='input' is unknown"):
        lightgcn_fns(_module("lightgcn"), _graph(), perturb="input")
    with pytest.raises(ValueError, match="hidden must be a non-empty tuple"):
        NeuMF(U, I, hidden=(), rngs=nnx.Rngs(params=0))
    with pytest.raises(ValueError, match="num_layers must be an int >= 0"):
        LightGCN(U, I, 4, num_layers=-1, rngs=nnx.Rngs(params=0))
    assert isinstance(_graph(), Graph) and _graph().num_edges == U * 6


# ------------------------------------------------------------------ both models: the boundary


@pytest.mark.parametrize("name", MODELS)
def test_shapes_scores_and_gradients(name):
    fns, params = _make(name)
    rows = jnp.arange(B)

    @jax.jit  # one compile for every check of this model
    def run(params, batch):
        out = {}
        for tag, neg in (("1", batch["neg"][:, 0]), ("N", batch["neg"])):
            emb = fns.embed(params, {**batch, "neg": neg})
            user = emb["user"] if tag == "1" else emb["user"][:, None, :]
            out[tag] = {
                "emb": emb,
                "pos": fns.score(params, emb["user"], emb["pos"]),
                "neg": fns.score(params, user, emb["neg"]),
                "loss": emb_loss(fns, "bpr" if tag == "1" else "softmax")(params, emb),
            }
        out["all"] = fns.score_all(params, batch["user"])
        out["items"] = fns.score_items(
            params, batch["user"], jnp.broadcast_to(jnp.arange(I), (B, I))
        )
        out["grads"] = jax.grad(
            lambda p: jnp.mean(emb_loss(fns)(p, fns.embed(p, {**batch, "neg": neg[:, 0]})))
        )(params)
        return out

    batch = _batch(neg_rows=True)
    out = run(params, batch)
    d = out["1"]["emb"]["user"].shape[-1]
    assert jax.tree.map(jnp.shape, out["1"]["emb"]) == {
        "user": (B, d),
        "pos": (B, d),
        "neg": (B, d),
    }
    assert out["N"]["emb"]["neg"].shape == (B, N, d)
    assert out["1"]["loss"].shape == out["N"]["loss"].shape == (B,)
    assert out["1"]["loss"].dtype == jnp.float32
    assert out["N"]["neg"].shape == (B, N) and out["all"].shape == (B, I)
    # score_all / score_items agree with score on the embedded pairs
    np.testing.assert_allclose(
        out["all"][rows, batch["pos"]], out["1"]["pos"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        out["all"][rows, batch["neg"][:, 0]], out["1"]["neg"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        out["all"][rows[:, None], batch["neg"]], out["N"]["neg"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(out["items"], out["all"], rtol=1e-5, atol=1e-6)
    for path, g in jax.tree_util.tree_leaves_with_path(out["grads"]):
        assert np.all(np.isfinite(g)), path
        if "predict" in str(path) and "bias" in str(path):
            continue  # NeuMF's output bias shifts both scores: zero gradient in BPR
        assert float(jnp.abs(g).sum()) > 0, path


ATTACKS = [
    (kind, norm) for kind in ("fgsm", "pgd", "gaussian", "uniform") for norm in ("l2", "linf")
]


@pytest.mark.parametrize("name", ["neumf", "lightgcn-layer0"])
def test_every_attack_stays_in_the_ball(name):
    fns, params = _make(name)
    eps = 0.05  # small enough for one FGSM step to raise the loss (first order)
    loss = emb_loss(fns, "softmax")
    attacks = [
        make_attack(AttackConfig(kind=kind, eps=eps, num_steps=2, norm=norm), fns.embedding_names)
        for kind, norm in ATTACKS
    ]

    @jax.jit
    def run(params, batch, key):
        emb = fns.embed(params, batch)
        deltas = [a(lambda e: loss(params, e), emb, key=key) for a in attacks]
        adv = [loss(params, jax.tree.map(jnp.add, emb, d)) for d in deltas]
        return emb, deltas, loss(params, emb), adv

    emb, deltas, clean, adv = run(params, _batch(neg_rows=True), jax.random.key(0))
    for (kind, norm), delta, adv_loss in zip(ATTACKS, deltas, adv):
        assert jax.tree.map(jnp.shape, delta) == jax.tree.map(jnp.shape, emb)
        for v in delta.values():
            size = jnp.linalg.norm(v, axis=-1) if norm == "l2" else jnp.max(jnp.abs(v), axis=-1)
            assert np.all(np.asarray(size) <= eps * (1 + 1e-5)), (kind, norm)
            assert float(jnp.max(size)) > 0, (kind, norm)
        if kind in ("fgsm", "pgd"):
            assert float(jnp.mean(adv_loss)) > float(jnp.mean(clean)), (kind, norm)


# ------------------------------------------------------------------ tables


@pytest.mark.parametrize("name", MODELS)
def test_table_round_trip_and_table_attack(name):
    fns, params = _make(name)
    tables = fns.get_tables(params)
    assert {k: v.shape[0] for k, v in tables.items()} == fns.table_sizes
    same = fns.set_tables(params, tables)
    users = jnp.arange(U)
    np.testing.assert_allclose(
        fns.score_all(same, users), fns.score_all(params, users), rtol=1e-6, atol=1e-7
    )
    moved = fns.set_tables(params, {"item": tables["item"] + 1.0})
    np.testing.assert_allclose(fns.get_tables(moved)["item"], tables["item"] + 1.0, rtol=1e-6)
    np.testing.assert_array_equal(fns.get_tables(moved)["user"], tables["user"])
    if name == "neumf":  # the concatenated view splits back into both towers
        np.testing.assert_array_equal(
            moved["gmf_items"]["embedding"][...], params["gmf_items"]["embedding"][...] + 1.0
        )
        np.testing.assert_array_equal(
            moved["mlp_items"]["embedding"][...], params["mlp_items"]["embedding"][...] + 1.0
        )
    if name == "lightgcn-output":
        assert isinstance(moved, OutputTables)
    data = _data()
    attack = make_table_attack(fns, AttackConfig(kind="pgd", eps=0.1, num_steps=2))
    attacked = attack(params, data, jax.random.key(0), jnp.float32(0.1))
    after = fns.get_tables(attacked)
    for k in tables:
        rows = np.linalg.norm(np.asarray(after[k] - tables[k]), axis=-1)
        assert np.all(rows <= 0.1 * (1 + 1e-4)) and rows.max() > 0.05, k
    scores = fns.score_all(attacked, users)
    assert np.all(np.isfinite(scores))
    assert not np.allclose(scores, fns.score_all(params, users))
    if name == "lightgcn-layer0":  # layer 0 was attacked; propagation spreads the change
        assert isinstance(attacked, nnx.State)
        final = fns.embed(attacked, {"user": users})["user"]
        assert not np.allclose(final, fns.embed(params, {"user": users})["user"])


def test_lightgcn_layer0_fns_reject_output_tables():
    fns_out, params = _make("lightgcn-output")
    fns_l0, _ = _make("lightgcn-layer0")
    cached = fns_out.set_tables(params, fns_out.get_tables(params))
    np.testing.assert_allclose(
        fns_l0.score_all(cached, jnp.arange(U)), fns_l0.score_all(params, jnp.arange(U)), rtol=1e-6
    )
    with pytest.raises(TypeError, match="perturb='output'"):
        fns_l0.get_tables(cached)


# ------------------------------------------------------------------ training


@pytest.mark.parametrize("name", ["neumf", "lightgcn-layer0"])
# each fit compiles one epoch program (3 to 8 s on a loaded 2-core CPU): the PGD-based
# methods run with -m slow (all pass)
@pytest.mark.parametrize(
    "method",
    ["apr", "free"] + [pytest.param(m, marks=pytest.mark.slow) for m in ("pgd", "trades", "vat")],
)
def test_every_objective_trains_two_epochs(name, method):
    fns, params = _make(name)
    adv = AdvConfig(method=method, eps=0.1, num_steps=2, replays=2)
    phases = build_phases(fns, loss="bpr", l2=0.0, adv=adv, epochs=2)  # l2: a bigger program
    res = fit(
        params=params,
        tx=make_optimizer("adam", 1e-2),
        phases=phases,
        data=_data(),
        epochs=2,
        batch_size=64,
        seed=0,
        progress=False,
    )
    assert [r["phase"] for r in res.history] == [method, method]
    assert all(np.isfinite(r["loss"]) for r in res.history)
    for leaf in jax.tree.leaves(res.final_params):
        assert np.all(np.isfinite(leaf))
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(res.final_params))
    )


@pytest.mark.parametrize("name", ["lightgcn-layer0", "lightgcn-output"])
def test_lightgcn_l2_regularises_layer0_rows(name):
    """LightGCN's batch-level L2 is on the layer-0 rows E^(0) (He et al., 2020), whatever
    the table-attack point; the propagated embeddings are what it scores with."""
    from robustjax.losses import l2_term

    fns, params = _make(name)
    batch = _batch()
    got = np.asarray(l2_term(fns)(params, batch, key=None))
    u0 = np.asarray(params["users"]["embedding"][...], np.float64)
    i0 = np.asarray(params["items"]["embedding"][...], np.float64)
    b = {k: np.asarray(v) for k, v in batch.items()}
    want = 0.5 * sum(
        np.sum(t[b[k]] ** 2, axis=-1) for t, k in ((u0, "user"), (i0, "pos"), (i0, "neg"))
    )
    np.testing.assert_allclose(got, want, rtol=1e-5)
    emb = fns.embed(params, batch)
    propagated = 0.5 * sum(np.sum(np.asarray(emb[k]) ** 2, axis=-1) for k in ("user", "pos", "neg"))
    assert not np.allclose(got, propagated)
