import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.data import synthetic
from robustjax.losses import Term, clean_term, combine
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import ObjectivePhase
from robustjax.train import (
    build_train_arrays,
    epoch_permutation,
    fit,
    init_state,
    make_optimizer,
    make_train_epoch,
)


@pytest.fixture(scope="module")
def small():
    table = synthetic(num_users=60, num_items=80, interactions_per_user=10, seed=0)
    data = build_train_arrays(table.user, table.item, table.num_users, table.num_items)
    return table, data


def _fit(small, tmp_path=None, *, epochs=6, resume=False, **kw):
    table, data = small
    fns, params = build_model(ModelConfig(dim=8), table.num_users, table.num_items, seed=0)
    tx = make_optimizer("adam", 1e-2)
    return fit(
        params=params,
        tx=tx,
        phases=[ObjectivePhase(0, combine(bpr=Term(clean_term(fns))))],
        data=data,
        epochs=epochs,
        batch_size=128,
        seed=3,
        progress=False,
        checkpoint_dir=None if tmp_path is None else str(tmp_path),
        checkpoint_every=3,
        resume=resume,
        **kw,
    )


def test_permutation_covers_every_row_once():
    perm = epoch_permutation(1000, 128, seed=0, epoch=4)
    assert perm.shape == (8, 128)
    valid = perm[perm < 1000]
    np.testing.assert_array_equal(np.sort(valid), np.arange(1000))
    np.testing.assert_array_equal(perm, epoch_permutation(1000, 128, seed=0, epoch=4))
    assert not np.array_equal(perm, epoch_permutation(1000, 128, seed=0, epoch=5))


def test_training_lowers_the_loss_and_is_deterministic(small):
    a = _fit(small)
    b = _fit(small)
    losses = [r["loss"] for r in a.history]
    assert losses[-1] < losses[0] - 0.02
    chex.assert_trees_all_equal(a.final_params, b.final_params)


def test_resume_equals_uninterrupted(small, tmp_path):
    full = _fit(small, epochs=6)
    _fit(small, tmp_path, epochs=3)  # "interrupted" after the epoch-3 checkpoint
    resumed = _fit(small, tmp_path, epochs=6, resume=True)
    chex.assert_trees_all_equal(full.final_params, resumed.final_params)
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]


def test_epoch_compiles_once(small):
    table, data = small
    fns, params = build_model(ModelConfig(dim=8), table.num_users, table.num_items, seed=0)
    tx = make_optimizer("sgd", 0.1)
    objective = combine(bpr=Term(clean_term(fns)))
    traces = []

    def counted(params, batch, *, key):
        traces.append(1)
        return objective(params, batch, key=key)

    train_epoch = make_train_epoch(counted, tx)
    state = init_state(params, tx)
    for e in range(3):
        perm = epoch_permutation(data.num_interactions, 64, seed=0, epoch=e)
        state, _ = train_epoch(state, perm, data, jax.random.key(e))
    assert len(traces) == 1


def test_padding_rows_do_not_move_parameters(small):
    """A batch whose rows are all padding leaves the parameters unchanged (masked mean)."""
    table, data = small
    fns, params = build_model(ModelConfig(dim=8), table.num_users, table.num_items, seed=0)
    tx = make_optimizer("sgd", 1.0)
    train_epoch = make_train_epoch(combine(bpr=Term(clean_term(fns))), tx)
    before = jax.tree.map(jnp.copy, params)
    perm = np.full((1, 16), data.num_interactions, np.int32)  # only padding
    state, metrics = train_epoch(init_state(params, tx), perm, data, jax.random.key(0))
    chex.assert_trees_all_close(state.params, before)
    assert np.isfinite(float(metrics["loss"]))


def test_early_stopping_uses_validation_only(small):
    calls = []

    def validate(params):
        calls.append(1)
        return {"ndcg@20": 1.0 / len(calls)}  # gets worse every time

    res = _fit(small, epochs=20, validate=validate, eval_every=1, patience=2)
    assert res.epochs_run == 3 and res.best_epoch == 1


def test_phases_switch_objective(small):
    table, data = small
    fns, params = build_model(ModelConfig(dim=8), table.num_users, table.num_items, seed=0)
    seen = []

    def tagged(name):
        base = clean_term(fns)

        def fn(p, b, *, key):
            return base(p, b, key=key)

        return combine(**{name: Term(fn)})

    res = fit(
        params=params,
        tx=make_optimizer("adam", 1e-2),
        phases=[ObjectivePhase(0, tagged("first"), "a"), ObjectivePhase(2, tagged("second"), "b")],
        data=data,
        epochs=4,
        batch_size=128,
        seed=0,
        progress=False,
        on_epoch=lambda r: seen.append(r),
    )
    assert [r["phase"] for r in seen] == ["a", "a", "b", "b"]
    assert "first" in seen[0] and "second" in seen[-1]
    assert res.epochs_run == 4
    with pytest.raises(ValueError, match="first phase must start at epoch 0"):
        fit(
            params=params,
            tx=make_optimizer("adam", 1e-2),
            phases=[ObjectivePhase(1, tagged("x"))],
            data=data,
            epochs=2,
            batch_size=8,
            seed=0,
            progress=False,
        )
    _ = dataclasses
