"""Optional per-interaction weights in the training arrays (robust training)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.data import synthetic
from robustjax.losses import Term, clean_term, combine
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import ObjectivePhase
from robustjax.train import build_train_arrays, fit, make_batch, make_optimizer


@pytest.fixture(scope="module")
def table():
    return synthetic(num_users=30, num_items=40, interactions_per_user=6, seed=0)


def _fit(table, weight):
    data = build_train_arrays(
        table.user, table.item, table.num_users, table.num_items, weight=weight
    )
    fns, params = build_model(ModelConfig(dim=4), table.num_users, table.num_items, seed=0)
    return fit(
        params=params,
        tx=make_optimizer("adam", 1e-2),
        phases=[ObjectivePhase(0, combine(bpr=Term(clean_term(fns))))],
        data=data,
        epochs=2,
        batch_size=64,
        seed=1,
        progress=False,
    )


@pytest.mark.slow
def test_default_has_no_weight_and_unit_weights_train_identically(table):
    data = build_train_arrays(table.user, table.item, table.num_users, table.num_items)
    assert data.weight is None
    rows = jnp.array([0, 5, len(table) + 3])
    batch = make_batch(
        data, rows, jnp.array([0.1, 0.5, 0.9]), sampler="uniform", key=jax.random.key(0)
    )
    np.testing.assert_array_equal(batch["mask"], [1.0, 1.0, 0.0])
    plain = _fit(table, None)
    ones = _fit(table, np.ones(len(table), np.float32))
    chex.assert_trees_all_equal(plain.final_params, ones.final_params)


def test_weights_scale_the_mask_and_zero_weights_freeze_a_user(table):
    w = np.where(table.user == 0, 0.0, 1.0).astype(np.float32)
    data = build_train_arrays(table.user, table.item, table.num_users, table.num_items, weight=w)
    rows = jnp.array([0, 7, len(table)])
    batch = make_batch(
        data, rows, jnp.array([0.1, 0.5, 0.9]), sampler="uniform", key=jax.random.key(0)
    )
    np.testing.assert_array_equal(batch["mask"], [w[0], w[7], 0.0])
    before = build_model(ModelConfig(dim=4), table.num_users, table.num_items, seed=0)[1]
    after = _fit(table, w).final_params
    u0 = lambda p: np.asarray(p["users"]["embedding"][...])[0]
    np.testing.assert_array_equal(u0(before), u0(after))  # user 0 gets no gradient


def test_bad_weights_are_named(table):
    with pytest.raises(ValueError, match="weight must have shape"):
        build_train_arrays(
            table.user, table.item, table.num_users, table.num_items, weight=np.ones(3)
        )
    with pytest.raises(ValueError, match=">= 0"):
        build_train_arrays(
            table.user, table.item, table.num_users, table.num_items, weight=-np.ones(len(table))
        )
