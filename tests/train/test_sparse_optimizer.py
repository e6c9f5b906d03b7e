"""Row-sparse (lazy) optimizers and the row-view training step."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from robustjax.config import ExperimentConfig, TrainConfig
from robustjax.data.negatives import build_train_arrays
from robustjax.losses import Term, clean_term, combine, l2_term
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import AdvConfig, build_phases
from robustjax.train import epoch_permutation, init_state, load_pytree, save_pytree
from robustjax.train.sparse import (
    SparseRows,
    apply_updates,
    dedupe_ids,
    lazy_adagrad,
    lazy_adam,
    lazy_sgd,
)
from robustjax.train.sparse_step import (
    auto_min_rows,
    check_row_model,
    row_sparse_optimizer,
    row_value_and_grad,
    row_view,
    use_sparse_updates,
)
from robustjax.train.step import apply_gradients, make_train_epoch

R, D = 5, 3


def _params():
    k1, k2 = jax.random.split(jax.random.key(0))
    return {"table": jax.random.normal(k1, (R, D)), "dense": jax.random.normal(k2, (2,))}


def _grads(step, ids):
    """Row gradients for ``ids`` (duplicates allowed) and the equal dense gradient."""
    k1, k2 = jax.random.split(jax.random.fold_in(jax.random.key(1), step))
    rows = jax.random.normal(k1, (ids.shape[0], D))
    dense_g = jax.random.normal(k2, (2,))
    table = jnp.zeros((R, D)).at[ids].add(rows)
    return {"table": SparseRows(ids, rows), "dense": dense_g}, {"table": table, "dense": dense_g}


def _run(tx, params, grads):
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    return apply_updates(params, updates), state


@pytest.mark.parametrize(
    ("lazy", "dense"),
    [
        (lazy_adam(0.1), optax.adam(0.1)),
        (lazy_adagrad(0.1), optax.adagrad(0.1)),
        (lazy_sgd(0.1), optax.sgd(0.1)),
    ],
    ids=["adam", "adagrad", "sgd"],
)
def test_lazy_equals_dense_when_every_row_is_touched(lazy, dense):
    @jax.jit  # one compile: the three steps run unrolled
    def run(params):
        p_lazy = p_dense = params
        s_lazy, s_dense = lazy.init(p_lazy), dense.init(p_dense)
        for step in range(3):
            # every row, shuffled, plus duplicates of rows 1 and 3 (summed in both)
            ids = jnp.asarray(np.r_[np.random.default_rng(step).permutation(R), 1, 3], jnp.int32)
            sparse_g, dense_g = _grads(step, ids)
            u, s_lazy = lazy.update(sparse_g, s_lazy, p_lazy)
            p_lazy = apply_updates(p_lazy, u)
            u, s_dense = dense.update(dense_g, s_dense, p_dense)
            p_dense = optax.apply_updates(p_dense, u)
        return p_lazy, p_dense

    p_lazy, p_dense = run(_params())
    for k in p_dense:
        np.testing.assert_allclose(p_lazy[k], p_dense[k], rtol=1e-6, atol=1e-6)


def test_lazy_adam_leaves_untouched_rows_and_moments_bit_unchanged():
    tx = lazy_adam(0.1)

    @jax.jit
    def run(params):
        state = tx.init(params)
        sparse_g, _ = _grads(0, jnp.arange(R, dtype=jnp.int32))
        updates, state = tx.update(sparse_g, state, params)  # every row has moments now
        params = apply_updates(params, updates)
        ids = jnp.asarray([1, 3, 1, R], jnp.int32)  # a duplicate and a padding id
        sparse_g, _ = _grads(1, ids)
        updates, new_state = tx.update(sparse_g, state, params)
        return params, state, apply_updates(params, updates), new_state

    params, state, new, new_state = run(_params())
    untouched = np.array([0, 2, 4])
    for a, b in ((new, params), (new_state.mu, state.mu), (new_state.nu, state.nu)):
        np.testing.assert_array_equal(a["table"][untouched], b["table"][untouched])
        assert not np.array_equal(a["table"][1], b["table"][1])
    assert int(new_state.count) == 2  # bias correction by the global step count


def test_duplicates_are_summed_and_match_dense_adam_at_the_first_step():
    # at step 1 dense Adam moves no row with a zero gradient: lazy equals it exactly
    params = _params()
    ids = jnp.asarray([4, 0, 4, 4, 2], jnp.int32)
    sparse_g, dense_g = _grads(0, ids)
    p_lazy, _ = _run(lazy_adam(0.1), params, sparse_g)
    p_dense, _ = _run(optax.adam(0.1), params, dense_g)
    np.testing.assert_allclose(p_lazy["table"], p_dense["table"], rtol=1e-6, atol=1e-7)
    rows = SparseRows(jnp.arange(R, dtype=jnp.int32), dense_g["table"], unique=True)
    summed = {"table": rows, "dense": dense_g["dense"]}
    p_summed, _ = _run(lazy_adam(0.1), params, summed)
    np.testing.assert_allclose(p_lazy["table"], p_summed["table"], rtol=1e-6, atol=1e-7)


def test_dedupe_ids_maps_every_id_to_its_slot():
    ids = jnp.asarray([7, 2, 7, 9, 2, 0, 10], jnp.int32)  # 10 = padding for 10 rows
    slots, pos = dedupe_ids(ids, 10)
    np.testing.assert_array_equal(slots[pos][:-1], ids[:-1])
    real = np.asarray(slots)[np.asarray(slots) < 10]
    assert sorted(real.tolist()) == [0, 2, 7, 9]


def _mf(num_users=4, num_items=6, *, use_bias=True, name="mf"):
    cfg = ModelConfig(name=name, dim=4, use_bias=use_bias)
    return build_model(cfg, num_users, num_items, seed=0)


def _covering_batch():
    """Every user and item of a 4 x 6 MF in one batch (with repeats)."""
    return {
        "user": jnp.asarray([0, 1, 2, 3, 0, 1], jnp.int32),
        "pos": jnp.asarray([0, 1, 2, 3, 4, 5], jnp.int32),
        "neg": jnp.asarray([5, 4, 3, 2, 1, 1], jnp.int32),
        "mask": jnp.ones(6, jnp.float32),
    }


def test_sparse_mf_step_equals_dense_step_when_every_row_is_touched():
    fns, params = _mf()
    objective = combine(bpr=Term(clean_term(fns)), l2=Term(l2_term(fns), 0.1))
    sparse_tx, dense_tx = row_sparse_optimizer(fns, "adam", 0.05), optax.adam(0.05)
    vg = row_value_and_grad(fns)

    @jax.jit
    def run(params, batch):
        s_sparse, s_dense = init_state(params, sparse_tx), init_state(params, dense_tx)
        losses = []
        for step in range(3):
            key = jax.random.key(step)
            (l_sparse, _), g = vg(objective, s_sparse.params, batch, key=key)
            s_sparse = apply_gradients(s_sparse, g, sparse_tx)
            (l_dense, _), g = jax.value_and_grad(objective, has_aux=True)(
                s_dense.params, batch, key=key
            )
            s_dense = apply_gradients(s_dense, g, dense_tx)
            losses.append((l_sparse, l_dense))
        return s_sparse, s_dense, losses

    s_sparse, s_dense, losses = run(params, _covering_batch())
    for l_sparse, l_dense in losses:
        np.testing.assert_allclose(l_sparse, l_dense, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(s_sparse.params), jax.tree.leaves(s_dense.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_sparse_epoch_equals_dense_epoch_with_adagrad():
    # Adagrad is exact under row-sparse updates, so a whole epoch must match
    fns, params = _mf(6, 9, use_bias=False)
    rng = np.random.default_rng(0)
    user, item = rng.integers(0, 6, 40).astype(np.int32), rng.integers(0, 9, 40).astype(np.int32)
    keys = np.unique(user * 9 + item)
    data = build_train_arrays((keys // 9).astype(np.int32), (keys % 9).astype(np.int32), 6, 9)
    perm = epoch_permutation(data.num_interactions, 8, seed=0, epoch=0)
    objective = combine(bpr=Term(clean_term(fns)))
    out = {}
    for name, tx in (
        ("sparse", row_sparse_optimizer(fns, "adagrad", 0.1)),
        ("dense", optax.adagrad(0.1)),
    ):
        state = init_state(jax.tree.map(jnp.copy, params), tx)
        out[name] = make_train_epoch(objective, tx)(state, perm, data, jax.random.key(3))
    np.testing.assert_allclose(out["sparse"][1]["loss"], out["dense"][1]["loss"], rtol=1e-6)
    for a, b in zip(
        jax.tree.leaves(out["sparse"][0].params), jax.tree.leaves(out["dense"][0].params)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


ADV_CASES = {
    "clean+l2": AdvConfig(),
    "apr_span": AdvConfig(method="apr"),
    "apr_pair": AdvConfig(method="apr", span=False),
    "apr_published": AdvConfig(method="apr", apr_mode="published"),
    "pgd": AdvConfig(method="pgd", num_steps=2),
    "fast": AdvConfig(method="fast"),
    "trades": AdvConfig(method="trades", num_steps=2),
    "vat": AdvConfig(method="vat"),
    "injected": AdvConfig(method="pgd", num_steps=1, fraction=0.5),
    "relative": AdvConfig(method="pgd", num_steps=1, budget_kind="relative"),
}


def _objective_cases(model, cases):
    fns, params = _mf(name=model, use_bias=model == "mf")
    batch = {
        **_covering_batch(),
        "neg": jnp.asarray([[5, 4], [3, 2], [1, 1], [0, 5], [2, 2], [4, 4]], jnp.int32),
    }
    batch["mask"] = batch["mask"].at[-1].set(0.0)
    view, vbatch, _ = row_view(fns, params, batch)
    rows = {
        leaf.shape[0] for leaf in jax.tree.leaves(view) if leaf.ndim == 2 and leaf.shape[1] == 4
    }
    assert rows <= {6, 6 + 12}  # user slots: 6 lookups; item slots: 6 pos + 12 neg
    objectives = {
        name: build_phases(fns, loss="bpr", l2=0.1, adv=ADV_CASES[name], epochs=2)[-1].objective
        for name in cases
    }

    @jax.jit  # one compile for every case
    def losses(params, batch, view, vbatch):
        key = jax.random.key(7)
        return {
            n: (f(params, batch, key=key), f(view, vbatch, key=key)) for n, f in objectives.items()
        }

    for name, ((full, parts), (on_view, view_parts)) in losses(params, batch, view, vbatch).items():
        np.testing.assert_allclose(on_view, full, rtol=1e-5, err_msg=name)
        assert set(parts) == set(view_parts), name
        for part in parts:
            np.testing.assert_allclose(view_parts[part], parts[part], rtol=1e-5, err_msg=name)


def test_objectives_give_the_same_loss_on_the_row_view():
    # masked padding, [B, N] negatives, item bias; per-row sums (published APR), PGD
    _objective_cases("mf", ["clean+l2", "apr_published", "pgd"])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mf", "neumf"])
def test_every_objective_gives_the_same_loss_on_the_row_view(model):
    _objective_cases(model, list(ADV_CASES))


def test_refusals_name_the_reason():
    fns_lgcn, _ = build_model(
        ModelConfig(name="lightgcn", dim=4),
        4,
        6,
        seed=0,
        train_pairs=(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3])),
    )
    with pytest.raises(ValueError, match="LightGCN"):
        check_row_model(fns_lgcn)
    with pytest.raises(ValueError, match="sparse_updates='on' cannot run.*LightGCN"):
        use_sparse_updates(TrainConfig(sparse_updates="on"), fns_lgcn)
    assert use_sparse_updates(TrainConfig(sparse_updates="auto"), fns_lgcn) is False
    with pytest.raises(ValueError, match="weight_decay"):
        TrainConfig(sparse_updates="on", weight_decay=1e-4)
    with pytest.raises(ValueError, match="adamw"):
        TrainConfig(sparse_updates="on", optimizer="adamw")
    with pytest.raises(ValueError, match="clip_norm"):
        TrainConfig(sparse_updates="on", clip_norm=1.0)
    with pytest.raises(ValueError, match="sparse_updates"):
        TrainConfig(sparse_updates="yes")
    seq = dataclasses.replace(
        ExperimentConfig(),
        model=ModelConfig(name="sasrec"),
        train=TrainConfig(sparse_updates="on", loss="bce", early_metric="ndcg@10"),
    )
    with pytest.raises(ValueError, match="sparse_updates='on' applies to pair models"):
        seq.validate()
    fns, _ = _mf()
    # weight decay under auto: dense, silently exact (nothing else changes)
    assert use_sparse_updates(TrainConfig(weight_decay=1e-4), fns) is False


def test_auto_chooses_by_table_rows():
    small, _ = _mf()
    assert use_sparse_updates(TrainConfig(), small) is False
    rows = auto_min_rows(2048, 1)
    assert rows == 36_864  # 6 rows per lookup: the measured crossover
    big = dataclasses.replace(small, table_sizes={"user": rows - 1, "item": 1})
    assert use_sparse_updates(TrainConfig(), big) is True
    assert use_sparse_updates(TrainConfig(batch_size=4096), big) is False
    assert use_sparse_updates(TrainConfig(num_negatives=2), big) is False
    assert use_sparse_updates(TrainConfig(sparse_updates="off"), big) is False
    assert use_sparse_updates(TrainConfig(sparse_updates="on"), small) is True


def test_lazy_state_checkpoints_round_trip(tmp_path):
    fns, params = _mf()
    tx = row_sparse_optimizer(fns, "adam", 0.05)
    state = init_state(params, tx)
    state = dataclasses.replace(  # moments that differ from the template's zeros
        state, opt_state=jax.tree.map(lambda x: x + 1, state.opt_state)
    )
    path = str(tmp_path / "state.npz")
    save_pytree(path, state)
    back = load_pytree(path, init_state(params, tx))
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(state)):
        np.testing.assert_array_equal(a, b)
