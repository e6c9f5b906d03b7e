import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.data import synthetic
from robustjax.models import ModelConfig, build_model
from robustjax.train import (
    build_train_arrays,
    draw_for_generator,
    epoch_permutation,
    init_state,
    make_d_epoch,
    make_g_epoch,
    make_optimizer,
    positive_mask,
    reinforce_loss,
    sample_categorical,
    user_positives,
)

# 0.999 quantiles of the chi-square distribution by degrees of freedom
CHI2_999 = {3: 16.27, 4: 18.47, 5: 20.52}


@pytest.fixture(scope="module")
def small():
    table = synthetic(num_users=24, num_items=30, interactions_per_user=6, seed=0)
    data = build_train_arrays(table.user, table.item, table.num_users, table.num_items)
    (g_fns, g_params), (d_fns, d_params) = (
        build_model(ModelConfig(dim=8), table.num_users, table.num_items, seed=s) for s in (0, 1)
    )
    return data, g_fns, g_params, d_fns, d_params


def _chi2(counts, probs):
    expected = probs * counts.sum()
    live = expected > 0
    assert counts[~live].sum() == 0, "an item of probability 0 was drawn"
    return float(np.sum((counts[live] - expected[live]) ** 2 / expected[live])), int(live.sum()) - 1


def test_generator_sampling_matches_its_softmax(strict_promotion):
    logits = jnp.array(
        [[0.5, -1.0, 2.0, 0.0, 1.0, -0.5], [1.0, -jnp.inf, 0.0, 3.0, -2.0, -jnp.inf]], jnp.float32
    )
    draws = np.asarray(
        sample_categorical(jax.nn.log_softmax(logits), num=40_000, key=jax.random.key(0))
    )
    assert draws.shape == (2, 40_000) and draws.dtype == np.int32
    probs = np.asarray(jax.nn.softmax(logits, axis=-1), np.float64)
    for row in range(2):
        stat, dof = _chi2(np.bincount(draws[row], minlength=6), probs[row])
        assert stat < CHI2_999[dof], (row, stat)


@pytest.mark.slow
def test_importance_draws_follow_the_mixture(strict_promotion):
    # q = (1 - lam) p + lam * Uniform({1, 3}); weights must equal p / q
    log_p = jax.nn.log_softmax(jnp.array([[0.2, -1.0, 1.5, 0.0, 0.7]], jnp.float32))
    positives = jnp.array([[1, 3, 5]], jnp.int32)  # padded with num_items = 5
    lam = 0.3
    items, w = draw_for_generator(
        log_p, positives, num=40_000, importance_mix=lam, key=jax.random.key(1)
    )
    p = np.asarray(jnp.exp(log_p[0]), np.float64)
    q = (1 - lam) * p + lam * np.isin(np.arange(5), [1, 3]) / 2
    stat, dof = _chi2(np.bincount(np.asarray(items[0]), minlength=5), q)
    assert stat < CHI2_999[dof], stat
    np.testing.assert_allclose(np.asarray(w[0]), (p / q)[np.asarray(items[0])], rtol=1e-5)


@pytest.mark.parametrize(
    "baseline,mix", [("none", 0.0), ("loo", 0.0), ("expected", 0.0), ("loo", 0.3)]
)
def test_reinforce_gradient_is_unbiased(baseline, mix, strict_promotion):
    theta = jnp.array([0.3, -0.8, 1.2, 0.0, -0.4], jnp.float32)
    r = jnp.array([1.0, -0.5, 0.2, 2.0, 0.7], jnp.float32)
    positives = jnp.array([[1, 3, 5]], jnp.int32)

    def expected_reward(t):
        return jnp.sum(jax.nn.softmax(t) * r)

    exact = np.asarray(jax.grad(expected_reward)(theta))

    def estimate(key):  # minus the surrogate's gradient estimates grad E_p[r]
        def surrogate(t):
            log_p = jax.nn.log_softmax(t)[None, :]
            items, w = draw_for_generator(log_p, positives, num=4, importance_mix=mix, key=key)
            return jnp.mean(
                reinforce_loss(
                    log_p,
                    items,
                    r[items],
                    baseline=baseline,
                    weights=w,
                    expected_reward=expected_reward(t)[None],
                )
            )

        return -jax.grad(surrogate)(theta)

    grads = np.asarray(jax.jit(jax.vmap(estimate))(jax.random.split(jax.random.key(2), 20_000)))
    mean, se = grads.mean(0), grads.std(0) / np.sqrt(grads.shape[0])
    assert np.all(np.abs(mean - exact) < 4.5 * se + 1e-4), (mean, exact, se)


def test_loo_baseline_needs_two_draws():
    with pytest.raises(ValueError, match="K=1"):
        reinforce_loss(
            jnp.zeros((1, 3)), jnp.zeros((1, 1), jnp.int32), jnp.zeros((1, 1)), baseline="loo"
        )


@pytest.mark.slow
def test_positive_mask_and_exclusion(small):
    data, *_ = small
    positives = user_positives(data)
    users = jnp.arange(data.num_users, dtype=jnp.int32)
    mask = np.asarray(positive_mask(positives, users, data.num_items))
    dense = np.zeros((data.num_users, data.num_items), bool)
    dense[np.asarray(data.user), np.asarray(data.item)] = True
    np.testing.assert_array_equal(mask, dense)
    log_p = jnp.where(mask, -jnp.inf, jnp.zeros(mask.shape))
    draws = np.asarray(sample_categorical(log_p, num=200, key=jax.random.key(3)))
    assert not dense[np.arange(data.num_users)[:, None], draws].any()


def _run_d(small, calls, **kw):
    data, g_fns, g_params, d_fns, d_params = small
    tx = make_optimizer("adam", 0.05)
    d_epoch = make_d_epoch(d_fns, g_fns, tx, **kw)
    perm = jnp.asarray(epoch_permutation(data.num_interactions, 64, seed=0, epoch=0)[:1])
    state, losses = init_state(jax.tree.map(jnp.copy, d_params), tx), []  # donated
    for _ in range(calls):  # one fixed batch, same negatives (same key, G fixed)
        state, metrics = d_epoch(
            state, g_params, perm, data, user_positives(data), jax.random.key(4)
        )
        losses.append(float(metrics["loss"]))
    return d_epoch, losses


@pytest.mark.parametrize("loss,exclude", [("bce", False), ("bpr", True)])
def test_d_step_lowers_the_discriminator_loss(small, loss, exclude):
    d_epoch, losses = _run_d(small, 6, loss=loss, num_negatives=2, exclude_positives=exclude)
    assert losses[-1] < losses[0] - 0.05, losses
    assert d_epoch._cache_size() == 1


@pytest.mark.parametrize(
    "estimator,baseline", [("reinforce", "loo"), ("reinforce", "expected"), ("gumbel", "none")]
)
def test_g_steps_raise_the_expected_reward_with_one_compile(small, estimator, baseline):
    data, g_fns, g_params, d_fns, d_params = small
    tx = make_optimizer("adam", 0.05)
    g_epoch = make_g_epoch(
        g_fns,
        d_fns,
        tx,
        estimator=estimator,
        baseline=baseline,
        num_samples=4,
        reward="irgan",
        importance_mix=0.0,
    )
    positives = user_positives(data)
    users = jnp.arange(data.num_users, dtype=jnp.int32)

    def expected_reward(params):
        p = jax.nn.softmax(g_fns.score_all(params, users), axis=-1)
        return float(
            jnp.mean(
                jnp.sum(p * (2 * jax.nn.sigmoid(d_fns.score_all(d_params, users)) - 1), axis=-1)
            )
        )

    state, before = init_state(jax.tree.map(jnp.copy, g_params), tx), expected_reward(g_params)
    for epoch in range(4):
        perm = jnp.asarray(epoch_permutation(data.num_interactions, 64, seed=0, epoch=epoch))
        state, metrics = g_epoch(state, d_params, perm, data, positives, jax.random.key(epoch))
        assert all(np.isfinite(float(v)) for v in metrics.values())
    assert expected_reward(state.params) > before + 0.01
    assert g_epoch._cache_size() == 1


def test_bad_arguments_name_the_value(small):
    _, g_fns, _, d_fns, _ = small
    tx = make_optimizer("adam", 0.01)
    with pytest.raises(ValueError, match="estimator='ppo'"):
        make_g_epoch(g_fns, d_fns, tx, estimator="ppo")
    with pytest.raises(ValueError, match="temperature"):
        make_d_epoch(d_fns, g_fns, tx, temperature=0.0)
    with pytest.raises(ValueError, match="num_samples=1"):
        make_g_epoch(g_fns, d_fns, tx, num_samples=1, baseline="loo")


@pytest.mark.slow  # runs with -m slow (long compile on 2 cores)
def test_tiny_experiment_writes_one_table(tmp_path):
    from robustjax.cli.main import main

    out = str(tmp_path / "irgan")
    assert main(["train", "--experiment", "irgan", "--tiny", "--out", out, "--no-progress"]) == 0
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert set(results["rows"]) == {"bpr-mf", "apr-mf", "irgan-g", "irgan-d", "irgan-init"}
    for row in results["rows"].values():
        assert set(row["test"]) == {"recall", "ndcg", "precision"}
        assert all(0.0 <= v <= 1.0 for e in row["test"].values() for v in e["values"])
        assert all(e["n"] == 2 for e in row["test"].values())  # tiny: 2 training seeds
    assert results["selection"].startswith("validation")
    with open(os.path.join(out, "seed2024", "irgan", "history.jsonl")) as f:
        history = [json.loads(line) for line in f]
    assert [r["epoch"] for r in history] == [0, 1, 2]
    with open(os.path.join(out, "results.md")) as f:
        assert "IRGAN discriminator" in f.read()


@pytest.mark.slow
def test_fit_gan_resumes_bit_exactly(small, tmp_path):
    from robustjax.train import fit_gan

    data, g_fns, g_params, d_fns, d_params = small
    tx = make_optimizer("adam", 0.05)
    g_epoch = make_g_epoch(g_fns, d_fns, tx, num_samples=4)
    d_epoch = make_d_epoch(d_fns, g_fns, tx)
    evaluated = []

    def validate(params):
        evaluated.append(1)
        return {"score": float(jnp.sum(params["users"]["embedding"][...] ** 2))}

    def run(out, epochs, resume=False):
        return fit_gan(
            g_state=init_state(g_params, tx),
            d_state=init_state(d_params, tx),
            g_epoch=g_epoch,
            d_epoch=d_epoch,
            data=data,
            gan_epochs=epochs,
            batch_size=64,
            seed=5,
            validate_g=validate,
            validate_d=validate,
            early_metric="score",
            checkpoint_dir=str(out),
            checkpoint_every=1,
            resume=resume,
            progress=False,
        )

    full = run(tmp_path / "full", 3)
    run(tmp_path / "part", 1)
    n_before = len(evaluated)
    resumed = run(tmp_path / "part", 3, resume=True)
    assert len(evaluated) - n_before == 2 * 2  # epochs 2 and 3 only, for G and D
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2, 3]
    for a, b in (
        (full.final_g_params, resumed.final_g_params),
        (full.g_params, resumed.g_params),
        (full.final_d_params, resumed.final_d_params),
    ):
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert (full.best_g_epoch, full.best_d_epoch) == (resumed.best_g_epoch, resumed.best_d_epoch)
