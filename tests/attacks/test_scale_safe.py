"""L2 directions, projections and norms are scale-safe: gradients from 1e-30 to 1e30 (in
float32 and bfloat16, at every scope) give unit directions and perturbations inside the
ball. Squaring such entries underflows to 0 or overflows to inf; before this was fixed a
64-dim gradient of entries 1e-20 had a "unit" direction of norm 6.8e18."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.attacks import normalize, norms, project

SCALES = [10.0**e for e in (-30, -20, -10, 0, 10, 20, 30)]
TOL = {"float32": 1e-5, "bfloat16": 2e-2}


def _tree(dtype, scale):
    k1, k2 = jax.random.split(jax.random.key(0))
    user = jax.random.normal(k1, (4, 64), jnp.float32)
    neg = jax.random.normal(k2, (4, 3, 64), jnp.float32)
    return {"user": (user * scale).astype(dtype), "neg": (neg * scale).astype(dtype)}


def _unit_norms(tree, scope):
    """Norms per scope unit in float64 NumPy (exact enough to judge the library's)."""
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]
    if scope == "row":
        return np.concatenate([np.linalg.norm(x, axis=-1).ravel() for x in leaves])
    if scope == "example":
        sq = sum(np.sum(x.reshape(x.shape[0], -1) ** 2, axis=1) for x in leaves)
        return np.sqrt(sq)
    return np.sqrt(np.array([sum(np.sum(x**2) for x in leaves)]))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("scope", ["row", "example", "batch"])
def test_normalize_gives_unit_directions_at_every_scale(dtype, scope):
    for scale in SCALES:
        g = _tree(dtype, scale)
        d = normalize(g, norm="l2", scope=scope)
        n = _unit_norms(d, scope)
        assert np.all(np.abs(n - 1.0) < TOL[dtype] * 4), (scale, n.min(), n.max())
        base = normalize(_tree(dtype, 1.0), norm="l2", scope=scope)
        for a, b in zip(jax.tree.leaves(d), jax.tree.leaves(base), strict=True):
            np.testing.assert_allclose(
                np.asarray(a, np.float32), np.asarray(b, np.float32), atol=TOL[dtype] * 2
            )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("scope", ["row", "example", "batch"])
def test_project_stays_in_the_ball_at_every_scale(dtype, scope):
    eps = 0.5
    for scale in SCALES:
        delta = _tree(dtype, scale)
        p = project(delta, eps, norm="l2", scope=scope)
        n = _unit_norms(p, scope)
        assert np.all(np.isfinite(n)) and np.all(n <= eps * (1 + 4 * TOL[dtype])), (scale, n)
        if scale >= 1.0:  # outside the ball: projected onto its surface
            assert np.all(n >= eps * (1 - 4 * TOL[dtype])), (scale, n)
        else:  # inside: unchanged
            for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(delta), strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("scope", ["row", "example", "batch"])
def test_norms_match_float64_at_every_scale(scope):
    for scale in SCALES:
        tree = _tree("float32", scale)
        got = np.concatenate(
            [np.unique(np.asarray(n, np.float64)) for n in norms(tree, norm="l2", scope=scope)]
        )
        want = _unit_norms(tree, scope)
        assert np.all(np.isfinite(got)) and np.all(got > 0), (scale, got)
        lo, hi = want.min(), want.max()
        assert got.min() >= lo * (1 - 1e-5) and got.max() <= hi * (1 + 1e-5), (scale, got, want)


def test_the_reported_case():
    g = {"user": jnp.full((1, 64), 1e-20, jnp.float32)}
    d = normalize(g, norm="l2", scope="row")
    assert abs(float(np.linalg.norm(np.asarray(d["user"], np.float64))) - 1.0) < 1e-6
    zero = normalize({"user": jnp.zeros((2, 8), jnp.float32)}, norm="l2", scope="row")
    assert float(jnp.max(jnp.abs(zero["user"]))) == 0.0
