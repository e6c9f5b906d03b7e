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
    inner_optimizer,
    project_budget,
    train_surrogate,
    unrolled_attack,
    unrolled_objective,
    victim_objective,
    victim_step_loss,
)
from robustjax.train import build_train_arrays, init_state, make_batch


def _reference_adam(params, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam as written in Kingma & Ba (2015), Algorithm 1, with 1e-30 inside the root."""
    t = t + 1
    m = jax.tree.map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
    v = jax.tree.map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
    c1, c2 = 1 - b1**t, 1 - b2**t
    step = lambda w, a, b: w - lr * (a / c1) / (jnp.sqrt(b / c2 + 1e-30) + eps)
    return jax.tree.map(step, params, m, v), m, v, t


@pytest.mark.parametrize("loss", ["bpr", "wrmf", "bce"])
def test_train_surrogate_is_adam_on_the_dense_loss(loss):
    # optax's Adam inside train_surrogate against a plain loop: the reference Adam on
    # {P, Q} with the loss written out over P Q^T and the negatives of fold_in(key, t)
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x = jnp.asarray((rng.random((5, 7)) < 0.4).astype(np.float64))
        fns, params = init_surrogate(5, 7, 3, key=jax.random.key(0), dtype=jnp.float64)
        tx = inner_optimizer(0.05)
        key = jax.random.key(1)
        state = train_surrogate(
            init_state(params, tx),
            x,
            fns=fns,
            tx=tx,
            key=key,
            steps=4,
            alpha=2.0,
            l2=0.1,
            loss=loss,
        )

        def ref_loss(pq, neg):
            s = pq["user"] @ pq["item"].T
            if loss == "bpr":
                xn = jnp.take_along_axis(x, neg, axis=1)
                sn = jnp.take_along_axis(s, neg, axis=1)
                fit = jnp.sum(x * (1 - xn) * jnp.log1p(jnp.exp(sn - s)))
            elif loss == "wrmf":
                fit = jnp.sum((1 + 2.0 * x) * (x - s) ** 2)
            else:
                fit = jnp.sum(2.0 * x * jnp.log1p(jnp.exp(-s)) + (1 - x) * jnp.log1p(jnp.exp(s)))
            return (fit + 0.1 * sum(jnp.sum(w**2) for w in pq.values())) / 5

        @jax.jit
        def reference(pq):
            m = v = jax.tree.map(jnp.zeros_like, pq)
            t = 0
            for _ in range(4):
                neg = jax.random.randint(jax.random.fold_in(key, t), x.shape, 0, 7)
                pq, m, v, t = _reference_adam(pq, jax.grad(ref_loss)(pq, neg), m, v, t, 0.05)
            return pq

        pq = reference(fns.get_tables(params))
        got = fns.get_tables(state.params)
        assert int(state.step) == 4
        for name in ("user", "item"):
            assert got[name].dtype == jnp.float64
            np.testing.assert_allclose(got[name], pq[name], rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_victim_step_loss_is_the_masked_bpr_mean_plus_fake_rows():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        num_real, num_fake, num_items = 4, 2, 6
        user, item = np.nonzero(
            np.eye(num_real, num_items, dtype=bool) | (rng.random((4, 6)) < 0.3)
        )
        data = build_train_arrays(user, item, num_real, num_items)
        fns, params = init_victim(6, num_items, 3, key=jax.random.key(0), dtype=jnp.float64)
        rows = jnp.array([0, 2, 3, data.num_interactions])  # the last is padding
        batch = make_batch(data, rows, jnp.linspace(0.1, 0.9, 4), sampler="uniform", key=None)
        x_fake = jnp.asarray(rng.uniform(size=(num_fake, num_items)))
        fake_neg = jnp.asarray(rng.integers(0, num_items, (num_fake, num_items)))
        got = victim_step_loss(
            params, x_fake, batch, fake_neg, fns=fns, num_real=num_real, fake_scale=0.5
        )
        p, q = (np.asarray(fns.get_tables(params)[n]) for n in ("user", "item"))
        batch, x_fake, fake_neg = jax.device_get((batch, x_fake, fake_neg))
        bpr = lambda d: np.log1p(np.exp(d))
        real = 0.0
        for b in range(3):  # unpadded rows
            u, i, j = (int(batch[n][b]) for n in ("user", "pos", "neg"))
            real += bpr(p[u] @ q[j] - p[u] @ q[i])
        fake, weight = 0.0, 0.0
        for f in range(num_fake):
            for i in range(num_items):
                j = int(fake_neg[f, i])
                w = 0.5 * x_fake[f, i] * (1 - x_fake[f, j])
                fake += w * bpr(p[num_real + f] @ q[j] - p[num_real + f] @ q[i])
                weight += 0.5 * x_fake[f, i]
        np.testing.assert_allclose(float(got), (real + fake) / (3 + weight), rtol=1e-12)


@pytest.mark.parametrize(("loss", "kind"), [("bpr", "hit"), ("wrmf", "cw")])
def test_unrolled_gradient_matches_finite_differences(loss, kind):
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        num_real, num_fake, num_items, dim = 6, 2, 8, 3
        x_real = jnp.asarray((rng.random((num_real, num_items)) < 0.35).astype(np.float64))
        x_fake = jnp.asarray(rng.uniform(0.2, 0.8, (num_fake, num_items)))
        fns, params = init_surrogate(
            num_real + num_fake, num_items, dim, key=jax.random.key(1), dtype=jnp.float64
        )
        tx = inner_optimizer(0.05)
        base = train_surrogate(
            init_state(params, tx),
            jnp.concatenate([x_real, x_fake]),
            fns=fns,
            tx=tx,
            key=jax.random.key(2),
            steps=3,
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
                targets,
                eligible,
                fns=fns,
                tx=tx,
                key=jax.random.key(3),
                steps=4,
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


@pytest.mark.slow
def test_victim_surrogate_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        num_real, num_fake, num_items, dim = 6, 2, 8, 3
        dense = rng.random((num_real, num_items)) < 0.35
        dense[np.arange(num_real), np.arange(num_real)] = True  # every user has a positive
        user, item = np.nonzero(dense)
        data = build_train_arrays(user, item, num_real, num_items)
        x_fake = jnp.asarray(rng.uniform(0.2, 0.8, (num_fake, num_items)))
        fns, params = init_victim(
            num_real + num_fake, num_items, dim, key=jax.random.key(1), dtype=jnp.float64
        )
        tx = inner_optimizer(0.05)
        targets = jnp.array([1, 4])
        eligible = jnp.asarray((dense[:, [1, 4]].sum(1) == 0).astype(np.float64))

        def f(xf):
            return victim_objective(
                xf,
                data,
                jnp.asarray(dense),
                init_state(params, tx),
                targets,
                eligible,
                fns=fns,
                tx=tx,
                key=jax.random.key(3),
                epochs=2,
                batch_size=4,
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
