import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.losses import Term, bce, bpr, combine, masked_mean, sampled_softmax


def test_bpr_matches_hand_math(strict_promotion):
    pos = jnp.array([2.0, 0.0, -1.0])
    neg = jnp.array([1.0, 0.0, 3.0])
    expected = -np.log(1 / (1 + np.exp(-(np.array([2.0, 0.0, -1.0]) - [1.0, 0.0, 3.0]))))
    np.testing.assert_allclose(bpr(pos, neg), expected, rtol=1e-6)
    # several negatives: the mean over N
    neg2 = jnp.array([[1.0, 3.0], [0.0, 0.0], [3.0, -1.0]])
    want = np.mean(np.log1p(np.exp(np.asarray(neg2) - np.asarray(pos)[:, None])), axis=1)
    np.testing.assert_allclose(bpr(pos, neg2), want, rtol=1e-6)


def test_bpr_is_stable_for_extreme_scores(strict_promotion):
    out = bpr(jnp.array([1e4, -1e4]), jnp.array([-1e4, 1e4]))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [0.0, 2e4], rtol=1e-6)
    g = jax.grad(lambda p: jnp.sum(bpr(p, jnp.array([1e4, -1e4]))))(jnp.array([-1e4, 1e4]))
    assert np.all(np.isfinite(g))


def test_bce_and_softmax_hand_math(strict_promotion):
    pos, neg = jnp.array([0.5]), jnp.array([[-0.5, 1.0]])
    sig = lambda x: 1 / (1 + np.exp(-x))
    want = -np.log(sig(0.5)) - np.mean([np.log(1 - sig(-0.5)), np.log(1 - sig(1.0))])
    np.testing.assert_allclose(bce(pos, neg), [want], rtol=1e-6)
    logits = np.array([0.5, -0.5, 1.0])
    want = -0.5 + np.log(np.exp(logits).sum())
    np.testing.assert_allclose(sampled_softmax(pos, neg), [want], rtol=1e-6)
    # logQ correction subtracts the log sampling probability from every logit
    lq = jnp.log(jnp.array([[0.1, 0.2]]))
    want = -(0.5 - np.log(0.3)) + np.log(
        np.exp(0.5 - np.log(0.3)) + np.exp(-0.5 - np.log(0.1)) + np.exp(1.0 - np.log(0.2))
    )
    got = sampled_softmax(pos, neg, log_q_pos=jnp.log(jnp.array([0.3])), log_q_neg=lq)
    np.testing.assert_allclose(got, [want], rtol=1e-5)


def test_masked_mean_all_masked_is_finite(strict_promotion):
    v = jnp.array([1.0, 2.0, 3.0])
    assert float(masked_mean(v, jnp.zeros(3))) == 0.0
    assert float(masked_mean(v, jnp.array([1.0, 0.0, 1.0]))) == 2.0
    g = jax.grad(lambda v: masked_mean(v, jnp.zeros(3)))(v)
    assert np.all(np.isfinite(g))


def test_combine_returns_named_parts():
    a = lambda p, b, *, key: p * b["x"]
    c = lambda p, b, *, key: jnp.square(p * b["x"])
    objective = combine(first=Term(a), second=Term(c, 0.5))
    batch = {"x": jnp.array([1.0, 2.0, 3.0]), "mask": jnp.array([1.0, 1.0, 0.0])}
    total, parts = objective(jnp.float32(2.0), batch, key=jax.random.key(0))
    assert set(parts) == {"first", "second"}
    np.testing.assert_allclose(parts["first"], 3.0)
    np.testing.assert_allclose(parts["second"], 10.0)
    np.testing.assert_allclose(total, 3.0 + 5.0)


def test_combine_rejects_bad_terms():
    with pytest.raises(ValueError, match="at least one term"):
        combine()
    with pytest.raises(TypeError, match="must be a Term"):
        combine(x=lambda p, b, *, key: p)
