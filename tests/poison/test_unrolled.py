import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.data import synthetic
from robustjax.poison import (
    UnrolledConfig,
    binarise,
    init_surrogate,
    init_victim,
    project_budget,
    train_surrogate,
    unrolled_attack,
    unrolled_objective,
    victim_objective,
)
from robustjax.train import build_train_arrays


@pytest.mark.parametrize(("loss", "kind"), [("bpr", "hit"), ("wrmf", "cw")])
def test_unrolled_gradient_matches_finite_differences(loss, kind):
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        num_real, num_fake, num_items, dim = 6, 2, 8, 3
        x_real = jnp.asarray((rng.random((num_real, num_items)) < 0.35).astype(np.float64))
        x_fake = jnp.asarray(rng.uniform(0.2, 0.8, (num_fake, num_items)))
        base, opt = init_surrogate(
            num_real + num_fake, num_items, dim, key=jax.random.key(1), dtype=jnp.float64
        )
        base, opt = train_surrogate(
            base,
            opt,
            jnp.concatenate([x_real, x_fake]),
            key=jax.random.key(2),
            steps=3,
            lr=0.05,
            alpha=2.0,
            l2=0.1,
            loss=loss,
        )
        targets = jnp.array([1, 4])
        eligible = jnp.asarray((np.asarray(x_real)[:, [1, 4]].sum(1) == 0).astype(np.float64))

        def f(xf):
            return unrolled_objective(
                xf,
                x_real,
                base,
                opt,
                targets,
                eligible,
                key=jax.random.key(3),
                steps=4,
                lr=0.05,
                alpha=2.0,
                l2=0.1,
                k=2,
                temperature=0.5,
                loss=loss,
                kind=kind,
            )

        f = jax.jit(f)
        g = jax.jit(jax.grad(f))(x_fake)
        assert g.dtype == jnp.float64 and g.shape == x_fake.shape
        assert float(jnp.abs(g).max()) > 0
        for seed in range(2):
            v = jnp.asarray(np.random.default_rng(seed).normal(size=x_fake.shape))
            h = 1e-6
            fd = (f(x_fake + h * v) - f(x_fake - h * v)) / (2 * h)
            np.testing.assert_allclose(float(jnp.vdot(g, v)), float(fd), rtol=1e-5, atol=1e-9)


def test_victim_surrogate_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        num_real, num_fake, num_items, dim = 6, 2, 8, 3
        dense = rng.random((num_real, num_items)) < 0.35
        dense[np.arange(num_real), np.arange(num_real)] = True  # every user has a positive
        user, item = np.nonzero(dense)
        data = build_train_arrays(user, item, num_real, num_items)
        x_fake = jnp.asarray(rng.uniform(0.2, 0.8, (num_fake, num_items)))
        base, opt = init_victim(
            num_real + num_fake, num_items, dim, key=jax.random.key(1), dtype=jnp.float64
        )
        targets = jnp.array([1, 4])
        eligible = jnp.asarray((dense[:, [1, 4]].sum(1) == 0).astype(np.float64))

        def f(xf):
            return victim_objective(
                xf,
                data,
                jnp.asarray(dense),
                base,
                opt,
                targets,
                eligible,
                key=jax.random.key(3),
                epochs=2,
                batch_size=4,
                lr=0.05,
                k=2,
                temperature=0.5,
                kind="cw",
            )

        f = jax.jit(f)
        g = jax.jit(jax.grad(f))(x_fake)
        assert g.dtype == jnp.float64 and g.shape == x_fake.shape
        assert float(jnp.abs(g).max()) > 0
        for seed in range(2):
            v = jnp.asarray(np.random.default_rng(seed).normal(size=x_fake.shape))
            h = 1e-6
            fd = (f(x_fake + h * v) - f(x_fake - h * v)) / (2 * h)
            np.testing.assert_allclose(float(jnp.vdot(g, v)), float(fd), rtol=1e-5, atol=1e-9)


def test_project_budget_and_binarise():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 10)).astype(np.float32))
    free = np.ones(10, bool)
    free[[2, 7]] = False
    z = np.asarray(project_budget(x, jnp.asarray(free), 3))
    assert z.min() >= 0 and z.max() <= 1
    np.testing.assert_allclose(z[:, free].sum(axis=1), 3.0, atol=1e-4)
    np.testing.assert_array_equal(z[:, ~free], 1.0)
    items = binarise(z, np.array([2, 7]), 3)
    assert items.shape == (4, 5)
    for row in items:
        assert {2, 7} <= set(row.tolist()) and len(set(row.tolist())) == 5


@pytest.mark.slow
def test_unrolled_attack_respects_budget_and_is_seeded():
    table = synthetic(num_users=30, num_items=40, interactions_per_user=6, seed=0)
    cfg = UnrolledConfig(dim=4, pretrain_steps=3, unroll_steps=2, outer_steps=2, k=5)
    targets = np.array([3, 9])
    a = unrolled_attack(table, targets, 3, 6, key=jax.random.key(0), config=cfg)
    b = unrolled_attack(table, targets, 3, 6, key=jax.random.key(0), config=cfg)
    assert a.items.shape == (3, 8) and a.attack == "unrolled"
    assert a.filler_size == 6
    for row in a.items:
        assert {3, 9} <= set(row.tolist()) and len(set(row.tolist())) == 8
    assert a.fingerprint() == b.fingerprint()
    assert len(a.params["objective_history"]) == 3
    assert a.params["objective_best"] == min(a.params["objective_history"])
    vcfg = UnrolledConfig(
        surrogate="victim", dim=4, warm_epochs=1, unroll_epochs=1, batch_size=32, outer_steps=1, k=5
    )
    c = unrolled_attack(table, targets, 3, 6, key=jax.random.key(0), config=vcfg)
    assert c.items.shape == (3, 8) and len(c.params["objective_history"]) == 2
    # an ensemble of surrogate initialisations: member 0 is the single surrogate above
    e = unrolled_attack(
        table, targets, 3, 6, key=jax.random.key(0), config=dataclasses.replace(vcfg, surrogates=2)
    )
    assert e.items.shape == (3, 8) and e.params["surrogates"] == 2
    v1, v2 = c.params["objective_history"][0], e.params["objective_history"][0]
    assert np.isfinite(v2) and v2 != v1


def test_unrolled_config_names_bad_values():
    with pytest.raises(ValueError, match="unroll_steps"):
        UnrolledConfig(unroll_steps=0)
    with pytest.raises(ValueError, match="loss"):
        UnrolledConfig(loss="mse")
    with pytest.raises(ValueError, match="surrogate"):
        UnrolledConfig(surrogate="gnn")
    with pytest.raises(ValueError, match="surrogates"):
        UnrolledConfig(surrogates=0, surrogate="victim")
    with pytest.raises(ValueError, match="surrogates=2 needs surrogate='victim'"):
        UnrolledConfig(surrogates=2, surrogate="dense")
