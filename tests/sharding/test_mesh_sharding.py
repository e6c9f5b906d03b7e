"""Sharding on 4 CPU devices (tests/conftest.py sets ``jax_num_cpu_devices=4`` for the
whole suite): training on a mesh equals the one-device run, tables are split 1/4 per
device, the fused epoch compiles once, and full-ranking evaluation on a mesh equals the
unsharded one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax import sharding
from robustjax.data import user_item_csr
from robustjax.data.config import DataConfig, prepare
from robustjax.eval import evaluate_full
from robustjax.models import build_model
from robustjax.models.registry import ModelConfig
from robustjax.objectives import AdvConfig, build_phases
from robustjax.train import build_train_arrays, fit, make_optimizer
from robustjax.train.pairs import PairEpoch, pair_epoch_fn
from robustjax.train.state import init_state

U, I, N = 40, 60, 320


@pytest.fixture(scope="module", autouse=True)
def four_devices():
    if jax.device_count() < 4:
        pytest.skip(f"needs 4 devices (tests/conftest.py forces them), got {jax.device_count()}")


def _case(num_users=U, num_items=I):
    rng = np.random.default_rng(0)
    user = rng.integers(0, num_users, N).astype(np.int32)
    item = rng.integers(0, num_items, N).astype(np.int32)
    fns, params = build_model(ModelConfig(name="mf", dim=8), num_users, num_items, seed=0)
    return fns, params, build_train_arrays(user, item, num_users, num_items)


def _train(fns, params, data, mesh, adv, epochs=2):
    phases = build_phases(fns, loss="bpr", l2=1e-4, adv=adv, epochs=epochs)
    tx = make_optimizer("adam", 1e-2)
    task = PairEpoch(pair_epoch_fn(phases[-1], tx), sharding.replicate(data, mesh), 64, 0, mesh)
    state = sharding.shard_params(init_state(jax.tree.map(jnp.copy, params), tx), mesh)
    losses = []
    for epoch in range(epochs):
        state, metrics = task(state, task.plan(epoch), jax.random.key(epoch))
        losses.append(float(metrics["loss"]))
    return state, losses, task.epoch_fn


def test_bpr_epochs_on_mesh_equal_one_device():
    fns, params, data = _case()
    mesh, adv = sharding.mesh_from_string("model=4"), AdvConfig()
    ref, ref_losses, _ = _train(fns, params, data, None, adv, epochs=3)
    state, losses, epoch_fn = _train(fns, params, data, mesh, adv, epochs=3)
    assert epoch_fn._cache_size() == 1  # three epochs, one compilation
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    model = sharding.mesh_sizes(mesh)["model"]
    tables = jax.tree.leaves(state.params) + jax.tree.leaves(state.opt_state)
    tables = [t for t in tables if t.ndim == 2]
    assert len(tables) == 6  # users, items and their two Adam moments
    for table in tables:
        shards = table.addressable_shards
        assert len(shards) == 4
        assert all(s.data.shape == (table.shape[0] // model, 8) for s in shards), table.sharding


def test_uneven_table_stays_replicated_and_trains_the_same():
    fns, params, data = _case(num_users=42)  # 42 rows: not divisible by 4
    mesh = sharding.make_mesh(model=4)
    assert sharding.layout(params, mesh) == {
        "items/embedding": "P('model',)",
        "users/embedding": "P()",
    }
    state, losses, _ = _train(fns, params, data, mesh, AdvConfig(), epochs=1)
    ref, ref_losses, _ = _train(fns, params, data, None, AdvConfig(), epochs=1)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    users = state.params["users"]["embedding"][...]
    assert [s.data.shape for s in users.addressable_shards] == [(42, 8)] * 4
    np.testing.assert_allclose(users, ref.params["users"]["embedding"][...], rtol=1e-5, atol=1e-6)


def test_apr_fit_on_mesh_equals_one_device():
    fns, params, data = _case()
    adv = AdvConfig(method="apr", eps=0.5, weight=1.0)
    phases = build_phases(fns, loss="bpr", l2=1e-4, adv=adv, epochs=2)
    kw = {"params": params, "tx": make_optimizer("adam", 1e-2), "phases": phases, "data": data,
          "epochs": 2, "batch_size": 64, "seed": 3, "progress": False}  # fmt: skip
    a = fit(**kw, mesh=sharding.make_mesh(data=2, model=2))
    b = fit(**kw)
    assert [r["loss"] for r in a.history] == pytest.approx([r["loss"] for r in b.history])
    for x, y in zip(jax.tree.leaves(a.final_params), jax.tree.leaves(b.final_params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_full_ranking_on_mesh_equals_unsharded():
    split = prepare(DataConfig(synthetic_users=40, synthetic_items=60, synthetic_per_user=8))
    fns, params = build_model(ModelConfig(name="mf", dim=8), split.num_users, split.num_items,
                              seed=1)  # fmt: skip
    csr = {p: user_item_csr(getattr(split, p), split.num_users) for p in ("train", "test")}

    def run(score_fn, p):
        return evaluate_full(score_fn, p, target_csr=csr["test"], exclude_csrs=[csr["train"]],
                             num_items=split.num_items, ks=(5, 10), batch_size=16,
                             return_topk=5)  # fmt: skip

    mesh = sharding.make_mesh(data=2, model=2)
    ref, ref_top = run(fns.score_all, params)
    got, top = run(sharding.shard_scores(fns.score_all, mesh), sharding.shard_params(params, mesh))
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k] == pytest.approx(ref[k], rel=1e-6, abs=1e-7), k
    np.testing.assert_array_equal(top.items, ref_top.items)


def test_one_device_mesh_changes_nothing():
    fns, params, data = _case()
    mesh = sharding.make_mesh()
    assert sharding.is_trivial(mesh) and sharding.is_trivial(None)
    assert sharding.shard_params(params, mesh) is params
    assert sharding.replicate(data, mesh) is data
    assert sharding.shard_batch(params, mesh) is params
    assert sharding.shard_scores(fns.score_all, mesh) is fns.score_all


@pytest.mark.parametrize(
    "text, sizes",
    [("data=2,model=2", {"data": 2, "model": 2}), ("model=4", {"data": 1, "model": 4}),
     (" data = 4 ", {"data": 4, "model": 1}), ("", {"data": 1, "model": 1})],
)  # fmt: skip
def test_parse_mesh(text, sizes):
    assert sharding.parse_mesh(text) == sizes


@pytest.mark.parametrize("text", ["data=0", "data=2,data=2", "dp=2", "model=2x", "model"])
def test_parse_mesh_rejects(text):
    with pytest.raises(ValueError, match="train.mesh=.*expected comma-separated 'axis=size'"):
        sharding.parse_mesh(text, key="train.mesh")


def test_mesh_needs_enough_devices():
    with pytest.raises(
        ValueError, match="needs 8 devices, but JAX sees 4.*ROBUSTJAX_CPU_DEVICES=8"
    ):
        sharding.mesh_from_string("data=4,model=2", key="train.mesh")


def test_config_mesh_key():
    from robustjax.config import ExperimentConfig, apply_overrides

    cfg = apply_overrides(ExperimentConfig(), ["train.mesh=data=2,model=2"])
    assert cfg.train.mesh == "data=2,model=2"
    with pytest.raises(ValueError, match="TrainConfig.mesh='data=two'"):
        apply_overrides(ExperimentConfig(), ["train.mesh=data=two"])


def test_initialize_from_env_needs_all_three():
    assert sharding.initialize_from_env({}) is False
    with pytest.raises(ValueError, match="ROBUSTJAX_PROCESS_ID not set"):
        sharding.initialize_from_env(
            {"ROBUSTJAX_COORDINATOR": "localhost:1", "ROBUSTJAX_NUM_PROCESSES": "2"}
        )
    with pytest.raises(ValueError, match="process_id=2 must lie in"):
        sharding.initialize_distributed("localhost:1", 2, 2)


def test_sweep_on_mesh_equals_unsharded():
    import dataclasses

    from robustjax.eval.sweep import SweepConfig, run_sweep

    split = prepare(DataConfig(synthetic_users=40, synthetic_items=60, synthetic_per_user=8))
    fns, params = build_model(ModelConfig(name="mf", dim=8), split.num_users, split.num_items,
                              seed=1)  # fmt: skip
    csr = {p: user_item_csr(getattr(split, p), split.num_users) for p in ("train", "test")}
    data = build_train_arrays(split.train.user, split.train.item, split.num_users, split.num_items)
    cfg = SweepConfig(eps=(0.0, 0.5), num_steps=2, ks=(5,), stability_k=5, user_groups=0,
                      user_batch=16)  # fmt: skip

    def run(f, p):
        return run_sweep(f, p, data=data, target_csr=csr["test"], exclude_csrs=[csr["train"]],
                         num_items=split.num_items, cfg=cfg, progress=False)  # fmt: skip

    mesh = sharding.make_mesh(data=2, model=2)
    ref = run(fns, params)
    sharded = dataclasses.replace(fns, score_all=sharding.shard_scores(fns.score_all, mesh))
    got = run(sharded, sharding.shard_params(params, mesh))
    assert got["metrics"].keys() == ref["metrics"].keys()
    for k, v in ref["metrics"].items():
        np.testing.assert_allclose(got["metrics"][k], v, rtol=1e-5, atol=1e-6, err_msg=k)
