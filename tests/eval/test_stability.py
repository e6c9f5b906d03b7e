import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.eval import (
    jaccard_at_k,
    mean_score_change,
    prediction_shift,
    rbo_normalized_at_k,
    target_hit_ratio,
)

# One compile per shape; eager dispatch is only exercised in the jit-vs-eager test.
jaccard_jit = jax.jit(jaccard_at_k)
rbo_jit = jax.jit(rbo_normalized_at_k)
shift_jit = jax.jit(prediction_shift)
change_jit = jax.jit(mean_score_change)
target_jit = jax.jit(target_hit_ratio)


def _ref_rbo(a, b, p):
    """Independent loop implementation: sets of prefixes, depth up to the longer real list."""
    a = [x for x in a if x >= 0]
    b = [x for x in b if x >= 0]
    depth = max(len(a), len(b))
    if depth == 0:
        return 1.0
    num = sum(p ** (d - 1) * len(set(a[:d]) & set(b[:d])) / d for d in range(1, depth + 1))
    return num * (1 - p) / (1 - p**depth)


def _ref_jaccard(a, b):
    sa, sb = {x for x in a if x >= 0}, {x for x in b if x >= 0}
    return 1.0 if not (sa | sb) else len(sa & sb) / len(sa | sb)


def _random_lists(seed, num_users=16, k=10, num_items=25):
    """Pairs of distinct-item lists with partial overlaps (few items, so they share some)."""
    rng = np.random.default_rng(seed)
    clean = np.stack([rng.permutation(num_items)[:k] for _ in range(num_users)])
    pert = np.stack([rng.permutation(num_items)[:k] for _ in range(num_users)])
    pert[::3] = clean[::3][:, rng.permutation(k)]  # same set, shuffled
    return clean.astype(np.int32), pert.astype(np.int32)


def test_identical_and_disjoint(strict_promotion):
    clean = jnp.array([[3, 1, 4, 5], [9, 8, 7, 6]], jnp.int32)
    disjoint = jnp.array([[0, 2, 6, 7], [0, 1, 2, 3]], jnp.int32)
    for fn in (jaccard_jit, rbo_jit):
        out = fn(clean, clean)
        assert out.dtype == jnp.float32 and out.shape == (2,)
        np.testing.assert_allclose(out, [1.0, 1.0], rtol=1e-6)
        np.testing.assert_array_equal(fn(clean, disjoint), [0.0, 0.0])


@pytest.mark.parametrize("p", [0.5, 0.9, 0.98, 1.0])
def test_rbo_identical_is_one_for_every_p(p):
    top = jnp.arange(20, dtype=jnp.int32).reshape(2, 10)
    np.testing.assert_allclose(rbo_jit(top, top, p=p), [1.0, 1.0], rtol=1e-6)


def test_reversed_order_same_set(strict_promotion):
    clean = jnp.array([[0, 1, 2, 3, 4]], jnp.int32)
    rev = clean[:, ::-1]
    assert float(jaccard_jit(clean, rev)[0]) == 1.0
    # Prefix overlaps X_d/d = 0, 0, 1/3, 3/4, 1; p = 0.5: weights 1, .5, .25, .125, .0625.
    expected = (0.25 / 3 + 0.125 * 0.75 + 0.0625) / (1 + 0.5 + 0.25 + 0.125 + 0.0625)
    rbo = float(rbo_jit(clean, rev, p=0.5)[0])
    assert rbo < 1.0
    np.testing.assert_allclose(rbo, expected, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_jaccard_symmetric_and_matches_sets(seed, strict_promotion):
    clean, pert = _random_lists(seed)
    ab = jaccard_jit(jnp.asarray(clean), jnp.asarray(pert))
    ba = jaccard_jit(jnp.asarray(pert), jnp.asarray(clean))
    np.testing.assert_array_equal(ab, ba)
    ref = [_ref_jaccard(a, b) for a, b in zip(clean, pert)]
    np.testing.assert_allclose(ab, ref, rtol=1e-6)
    ab = np.asarray(ab)
    assert np.any((ab > 0) & (ab < 1)) and np.any(ab == 1)  # partial and full overlaps


@pytest.mark.parametrize("p", [0.5, 0.9, 0.98])
@pytest.mark.parametrize("seed", [0, 1])
def test_rbo_matches_loop_reference(seed, p, strict_promotion):
    clean, pert = _random_lists(seed)
    out = rbo_jit(jnp.asarray(clean), jnp.asarray(pert), p=p)
    ref = [_ref_rbo(a, b, p) for a, b in zip(clean, pert)]
    assert 0.0 < min(ref) and max(ref) < 1.0 + 1e-12  # partial overlaps are covered
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_padding_never_matches_and_is_not_counted(strict_promotion):
    clean = jnp.array(
        [
            [4, 2, -1, -1],  # identical padded lists
            [4, 2, -1, -1],  # one shared item, other padded shorter
            [-1, -1, -1, -1],  # both empty
            [-1, -1, -1, -1],  # one empty
            [1, 2, 3, -1],  # padding vs a real list of 4
        ],
        jnp.int32,
    )
    pert = jnp.array(
        [[4, 2, -1, -1], [2, -1, -1, -1], [-1, -1, -1, -1], [5, 6, -1, -1], [3, 2, 1, 0]],
        jnp.int32,
    )
    jac = jaccard_jit(clean, pert)
    np.testing.assert_allclose(jac, [1.0, 0.5, 1.0, 0.0, 0.75], rtol=1e-6)
    for p in (0.5, 0.9):
        rbo = rbo_jit(clean, pert, p=p)
        ref = [_ref_rbo(a, b, p) for a, b in zip(np.asarray(clean), np.asarray(pert))]
        np.testing.assert_allclose(rbo, ref, rtol=1e-6)
    np.testing.assert_allclose(rbo_jit(clean, pert, p=0.5)[:4], [1.0, 0.25 / 1.5, 1.0, 0.0])
    assert np.all(np.isfinite(rbo_jit(clean, pert)))


def test_prediction_shift_and_mean_change_hand_values(strict_promotion):
    clean = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, -jnp.inf]])
    pert = jnp.array([[2.0, 1.0, 3.5], [1.0, -3.0, -jnp.inf]])
    np.testing.assert_allclose(shift_jit(clean, pert, None)[0], (1 + 1 + 0.5) / 3)
    where = jnp.array([[True, True, False], [True, True, False]])
    np.testing.assert_allclose(shift_jit(clean, pert, where), [1.0, 2.0])
    np.testing.assert_allclose(change_jit(clean, pert, where), [0.0, -1.0])
    none = jnp.zeros((2, 3), bool)
    np.testing.assert_array_equal(shift_jit(clean, pert, none), [0.0, 0.0])  # no NaN
    np.testing.assert_array_equal(change_jit(clean, pert, none), [0.0, 0.0])


def test_target_hit_ratio_hand_values(strict_promotion):
    top = jnp.array([[7, 1, 2], [3, 4, -1], [-1, -1, -1]], jnp.int32)
    targets = jnp.array([7, 4, 9, -1], jnp.int32)  # |T| = 3, padding ignored
    np.testing.assert_allclose(target_jit(top, targets), [1 / 3, 1 / 3, 0.0], rtol=1e-6)
    np.testing.assert_allclose(target_jit(top, jnp.array([1, 2], jnp.int32)), [1.0, 0, 0])
    empty = target_jit(top, jnp.array([-1], jnp.int32))
    np.testing.assert_array_equal(empty, [0.0, 0.0, 0.0])


def _vmap_case():
    clean, pert = _random_lists(3, num_users=6, k=5, num_items=12)
    c, q = jnp.asarray(clean), jnp.asarray(pert)
    return c, jnp.stack([q, c, jnp.flip(q, axis=1)])  # [S, B, K] perturbed lists


@pytest.mark.parametrize("name", ["jaccard", "rbo", "target"])
def test_jit_and_vmap_match_eager_lists(name, strict_promotion):
    c, stack = _vmap_case()
    targets = jnp.array([0, 3, 5], jnp.int32)
    fn, jitted, args = {
        "jaccard": (jaccard_at_k, jaccard_jit, lambda x: (c, x)),
        "rbo": (rbo_normalized_at_k, rbo_jit, lambda x: (c, x)),
        "target": (target_hit_ratio, target_jit, lambda x: (x, targets)),
    }[name]
    eager = fn(*args(stack[0]))
    np.testing.assert_allclose(jitted(*args(stack[0])), eager, rtol=1e-6)
    mapped = jax.jit(jax.vmap(lambda x: fn(*args(x))))(stack)
    for s in range(stack.shape[0]):
        np.testing.assert_allclose(mapped[s], jitted(*args(stack[s])), rtol=1e-6)


def test_rbo_vmaps_over_traced_p(strict_promotion):
    c, stack = _vmap_case()
    ps = [0.5, 0.9, 0.98]
    over_p = jax.jit(jax.vmap(lambda p: rbo_normalized_at_k(c, stack[0], p=p)))(jnp.asarray(ps))
    for i, p in enumerate(ps):
        np.testing.assert_allclose(over_p[i], rbo_jit(c, stack[0], p=p), rtol=1e-5)


@pytest.mark.parametrize("fn", [prediction_shift, mean_score_change])
def test_score_changes_jit_and_vmap_match_eager(fn, strict_promotion):
    scores = jnp.asarray(np.random.default_rng(0).normal(size=(6, 12)), jnp.float32)
    pert = jnp.stack([scores, scores + 1.0, -scores])
    where = scores > 0.0
    eager = fn(scores, pert[2], where)
    np.testing.assert_allclose(jax.jit(fn)(scores, pert[2], where), eager, rtol=1e-6)
    mapped = jax.jit(jax.vmap(lambda x: fn(scores, x, where)))(pert)
    np.testing.assert_allclose(mapped[2], eager, rtol=1e-6)
    np.testing.assert_allclose(mapped[1], jnp.ones(6))  # +1 everywhere: both are 1
    np.testing.assert_allclose(mapped[0], jnp.zeros(6))


def test_bad_arguments_are_named():
    a = jnp.zeros((2, 3), jnp.int32)
    with pytest.raises(ValueError, match="clean_top"):
        jaccard_at_k(a, jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(TypeError, match="pert_top"):
        rbo_normalized_at_k(a, jnp.zeros((2, 3), jnp.float32))
    with pytest.raises(ValueError, match="p=1.5"):
        rbo_normalized_at_k(a, a, p=1.5)
    with pytest.raises(ValueError, match="where"):
        prediction_shift(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.zeros((2, 4), bool))


def _ref_rbo_ext(a, b, p):
    """Webber et al. eq. 32 by hand: X_L/L p^L + (1-p)/p sum_d X_d/d p^d."""
    length = max(len([x for x in a if x >= 0]), len([x for x in b if x >= 0]))
    overlap = [len(set(a[:d]) & set(b[:d]) - {-1}) for d in range(1, length + 1)]
    head = (1 - p) / p * sum(overlap[d - 1] / d * p**d for d in range(1, length + 1))
    return overlap[-1] / length * p**length + head


@pytest.mark.parametrize("p", [0.5, 0.9, 0.98])
def test_rbo_ext_hand_computed_cases(p):
    from robustjax.eval import rbo_at_k

    top = jnp.asarray([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    other = jnp.asarray([[4, 3, 2, 1], [1, 2, 8, 9], [1, 2, 3, 4], [5, 6, 7, 8]])
    got = np.asarray(jax.jit(rbo_at_k, static_argnames=())(top, other, p=p))
    # reversed: X = (0, 0, 2, 4); bottom half replaced: X = (1, 2, 2, 2)
    reversed_ = 1.0 * p**4 + (1 - p) * (0 + 0 + p**2 * 2 / 3 + p**3 * 4 / 4)
    bottom = 2 / 4 * p**4 + (1 - p) * (1 + p * 2 / 2 + p**2 * 2 / 3 + p**3 * 2 / 4)
    np.testing.assert_allclose(got, [reversed_, bottom, 1.0, 0.0], rtol=1e-5)
    for row in range(4):
        ref = _ref_rbo_ext(list(np.asarray(top[row])), list(np.asarray(other[row])), p)
        np.testing.assert_allclose(got[row], ref, rtol=1e-5)


@pytest.mark.slow
def test_rbo_ext_and_normalized_differ_and_pad():
    from robustjax.eval import rbo_at_k

    a = jnp.asarray([[1, 2, 3, -1], [-1, -1, -1, -1]])
    b = jnp.asarray([[1, 2, 3, -1], [-1, -1, -1, -1]])
    np.testing.assert_allclose(rbo_at_k(a, b), [1.0, 1.0], rtol=1e-6)  # padded identical
    c = jnp.asarray([[1, 2, 8, 9]])
    d = jnp.asarray([[1, 2, 3, 4]])
    assert float(rbo_at_k(c, d)[0]) != pytest.approx(float(rbo_normalized_at_k(c, d)[0]))
    with pytest.raises(ValueError, match="p must be < 1"):
        rbo_at_k(c, d, p=1.0)
