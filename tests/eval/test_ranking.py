import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from eval_reference import ref_rank_metrics

from robustjax.eval import MetricSums, metric_keys, rank_metrics, sum_metrics

KS = (1, 3, 5, 10)
# One compile per shape; eager op-by-op dispatch is only exercised in the jit-vs-eager test.
rank_metrics_jit = jax.jit(rank_metrics, static_argnames="ks")


def _check(out, ref, atol=1e-6):
    assert set(out) == set(ref)
    for name, v in out.items():
        assert v.dtype == jnp.float32, name
        np.testing.assert_allclose(np.asarray(v), ref[name], atol=atol, err_msg=name)


def _random_case(seed, num_users=24, num_items=37):
    """Integer scores (many ties), some -inf, sparse targets, excluded targets, empty users."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, (num_users, num_items)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    target = rng.random(scores.shape) < 0.12
    target[::5] = False  # users without targets
    target[1, :] = False
    target[1, :2] = True  # fewer targets than K
    exclude = rng.random(scores.shape) < 0.2
    return scores, target, exclude


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_bruteforce_reference(seed, strict_promotion):
    scores, target, exclude = _random_case(seed)
    assert np.any(target & exclude)  # excluded targets are covered
    out = rank_metrics_jit(jnp.asarray(scores), jnp.asarray(target), jnp.asarray(exclude), ks=KS)
    _check(out, ref_rank_metrics(scores, target, exclude, KS))


@pytest.mark.slow
def test_jit_and_vmap_match_eager(strict_promotion):
    scores, target, exclude = _random_case(3)
    s, t, x = jnp.asarray(scores), jnp.asarray(target), jnp.asarray(exclude)
    eager = rank_metrics(s, t, x, ks=KS)
    jitted = rank_metrics_jit(s, t, x, ks=KS)
    stacked = jax.jit(jax.vmap(lambda a: rank_metrics(a, t, x, ks=KS)))(jnp.stack([s, s + 1.0]))
    for name in eager:
        np.testing.assert_allclose(jitted[name], eager[name], atol=1e-7)
        np.testing.assert_allclose(stacked[name][1], eager[name], atol=1e-7)


def test_hand_computed_values(strict_promotion):
    # Items 0..4, scores .9 .1 .5 .5 .3, targets {1, 2}. Ranking 0, 2, 3 (tie: lower id
    # first), 4, 1: target 2 at rank 2, target 1 at rank 5.
    scores = jnp.array([[0.9, 0.1, 0.5, 0.5, 0.3]])
    target = jnp.array([[False, True, True, False, False]])
    out = rank_metrics_jit(scores, target, jnp.zeros((1, 5), bool), ks=(1, 3, 5))
    d = 1.0 / math.log2(3)
    expected = {
        "recall@1": 0.0,
        "recall@3": 0.5,
        "recall@5": 1.0,
        "ndcg@3": d / (1 + d),
        "ndcg@5": (d + 1 / math.log2(6)) / (1 + d),
        "hr@1": 0.0,
        "hr@3": 1.0,
        "precision@3": 1 / 3,
        "precision@5": 0.4,
        "mrr@1": 0.0,
        "mrr@3": 0.5,
        "mrr@5": 0.5,
        # negatives .9 .5 .3: target .5 beats .3, ties .5 -> 1.5; target .1 -> 0. 1.5 / 6.
        "auc": 0.25,
        "valid": 1.0,
    }
    for name, v in expected.items():
        np.testing.assert_allclose(out[name], [v], rtol=1e-6, err_msg=name)


def test_tie_rule_lower_id_first():
    scores = jnp.zeros((1, 4))
    first = rank_metrics_jit(
        scores, jnp.array([[True, False, False, False]]), jnp.zeros((1, 4), bool), ks=(1,)
    )
    last = rank_metrics_jit(
        scores, jnp.array([[False, False, False, True]]), jnp.zeros((1, 4), bool), ks=(1,)
    )
    assert float(first["hr@1"][0]) == 1.0 and float(last["hr@1"][0]) == 0.0
    assert float(first["auc"][0]) == 0.5 == float(last["auc"][0])  # all pairs tied


def test_fewer_targets_than_k_and_excluded_target():
    scores = jnp.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    target = jnp.array([[True, False, False, False, False, True]])
    exclude = jnp.array([[False, True, False, False, False, True]])  # target 5 excluded
    out = rank_metrics_jit(scores, target, exclude, ks=(5,))
    # rank 1 hit; |T| = 2 (the excluded target still counts); IDCG uses min(2, 5) = 2 hits.
    np.testing.assert_allclose(out["recall@5"], [0.5])
    np.testing.assert_allclose(out["ndcg@5"], [1.0 / (1.0 + 1.0 / math.log2(3))], rtol=1e-6)
    np.testing.assert_allclose(out["precision@5"], [0.2])
    np.testing.assert_allclose(out["auc"], [0.5])  # target 0 wins 4/4, target 5 loses 4/4


def test_all_masked_is_finite_zero(strict_promotion):
    scores = jnp.full((3, 6), -jnp.inf).at[0, 0].set(jnp.nan)
    out = rank_metrics_jit(scores, jnp.zeros((3, 6), bool), jnp.ones((3, 6), bool), ks=(2, 6))
    for name, v in out.items():
        assert np.all(np.isfinite(v)) and np.all(np.asarray(v) == 0.0), name
    means = sum_metrics(out).compute()
    assert all(float(v) == 0.0 for v in means.values())


def test_minus_inf_target_is_never_a_hit():
    scores = jnp.array([[-jnp.inf, -jnp.inf, -jnp.inf]])
    target = jnp.array([[True, False, False]])
    out = rank_metrics_jit(scores, target, jnp.zeros((1, 3), bool), ks=(3,))
    assert float(out["hr@3"][0]) == 0.0 and float(out["valid"][0]) == 1.0


def test_metric_sums_merge_and_vmap(strict_promotion):
    scores, target, exclude = _random_case(4)
    s, t, x = jnp.asarray(scores), jnp.asarray(target), jnp.asarray(exclude)
    whole = sum_metrics(rank_metrics_jit(s, t, x, ks=KS))
    parts = [
        sum_metrics(rank_metrics_jit(s[a:b], t[a:b], x[a:b], ks=KS)) for a, b in [(0, 12), (12, 24)]
    ]
    merged = parts[0].merge(parts[1])
    for name, v in whole.compute().items():
        np.testing.assert_allclose(merged.compute()[name], v, rtol=1e-6)
    ref = ref_rank_metrics(scores, target, exclude, KS)
    valid = ref["valid"] > 0
    np.testing.assert_allclose(whole.compute()["ndcg@5"], ref["ndcg@5"][valid].mean(), rtol=1e-5)
    assert float(whole.count) == valid.sum()

    @jax.jit
    def at(eps_grid):
        noisy = lambda e: s + e * x.astype(jnp.float32)  # only excluded items move
        return jax.vmap(lambda e: sum_metrics(rank_metrics(noisy(e), t, x, ks=KS)))(eps_grid)

    grid = at(jnp.array([0.0, 1.0, 2.0]))
    assert isinstance(grid, MetricSums) and grid.count.shape == (3,)
    np.testing.assert_allclose(grid.compute()["recall@5"][0], whole.compute()["recall@5"])


def test_metric_keys_and_errors():
    assert metric_keys((5,)) == ("recall@5", "ndcg@5", "hr@5", "precision@5", "mrr@5", "auc")
    s, m = jnp.zeros((2, 4)), jnp.zeros((2, 4), bool)
    with pytest.raises(ValueError, match="K=5 exceeds"):
        rank_metrics(s, m, m, ks=(5,))
    with pytest.raises(TypeError, match="ks must be"):
        rank_metrics(s, m, m, ks=3)
    with pytest.raises(TypeError, match="must be bool"):
        rank_metrics(s, s, m, ks=(1,))
    with pytest.raises(ValueError, match="must all be"):
        rank_metrics(s, m[:1], m, ks=(1,))
    with pytest.raises(ValueError, match="names differ"):
        MetricSums({"a": jnp.zeros(())}, jnp.zeros(())).merge(
            MetricSums({"b": jnp.zeros(())}, jnp.zeros(()))
        )
