"""Projections, directions and random points, checked against numpy norms.

Every case is computed in one jitted call (module fixture), vmapped over an eps grid:
compiling is the slow part on CPU, checking is cheap.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from attack_helpers import assert_in_ball, make_emb, np_unit_norms

from robustjax.attacks import normalize, norms, project, random_ball

NAMES = ("neg", "pos", "user")  # jax.tree.leaves order of a dict
CASES = [(n, s) for n in ("l2", "linf") for s in ("row", "example", "batch")]
DISTS = ("uniform", "sphere", "gaussian")
EPS = (0.0, 0.3, 2.0)


@pytest.fixture(scope="module")
def out():
    big = jax.tree.map(lambda x: 10.0 * x, make_emb(1))
    small = jax.tree.map(lambda x: 1e-3 * x, make_emb(2))
    g = make_emb(4)
    zero = jax.tree.map(jnp.zeros_like, g)
    key = jax.random.key(0)

    def at(eps):
        res = {}
        for norm, scope in CASES:
            kw = {"norm": norm, "scope": scope}
            p = project(big, eps, **kw)
            res[norm, scope] = dict(
                proj=p,
                proj2=project(p, eps, **kw),
                interior=project(small, 1.0, **kw),
                dir=normalize(g, **kw),
                dir0=normalize(zero, **kw),
                norms=norms(g, **kw),
                **{d: random_ball(key, g, eps, dist=d, **kw) for d in DISTS},
            )
        return res

    with jax.numpy_dtype_promotion("strict"):
        res = jax.jit(jax.vmap(at))(jnp.asarray(EPS, jnp.float32))
    return jax.device_get(res), {"big": big, "small": small, "g": g}


def _at(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


@pytest.mark.parametrize("norm,scope", CASES)
def test_project_into_ball_and_idempotent(out, norm, scope):
    res, _ = out
    r = res[norm, scope]
    for i, eps in enumerate(EPS):
        p = _at(r["proj"], i)
        ns = assert_in_ball(p, NAMES, eps, norm, scope)
        np.testing.assert_allclose(ns, eps, rtol=1e-5)  # far outside: lands on the sphere
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), p, _at(r["proj2"], i)
        )
        if eps == 0.0:
            assert all(np.all(x == 0) for x in jax.tree.leaves(p))


@pytest.mark.parametrize("norm,scope", CASES)
def test_project_keeps_interior_points(out, norm, scope):
    res, inp = out
    jax.tree.map(
        np.testing.assert_array_equal,
        _at(res[norm, scope]["interior"], 0),
        jax.device_get(inp["small"]),
    )


@pytest.mark.parametrize("norm,scope", CASES)
def test_norms_match_numpy(out, norm, scope):
    res, inp = out
    ours = _at(res[norm, scope]["norms"], 0)
    flat = (
        np.concatenate([x.ravel() for x in ours]) if scope == "row" else np.asarray(ours[0]).ravel()
    )
    np.testing.assert_allclose(flat, np_unit_norms(inp["g"], NAMES, norm, scope), rtol=1e-5)


@pytest.mark.parametrize("norm,scope", CASES)
def test_normalize_unit_direction(out, norm, scope):
    res, inp = out
    v = _at(res[norm, scope]["dir"], 0)
    if norm == "linf":
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, np.sign(b)), v, inp["g"])
    else:
        np.testing.assert_allclose(np_unit_norms(v, NAMES, norm, scope), 1.0, rtol=1e-5)
    # A zero gradient gives a zero direction, never NaN.
    assert all(np.all(x == 0) for x in jax.tree.leaves(res[norm, scope]["dir0"]))


@pytest.mark.parametrize("dist", DISTS)
@pytest.mark.parametrize("norm,scope", CASES)
def test_random_ball(out, norm, scope, dist):
    res, _ = out
    r = res[norm, scope][dist]
    for i, eps in enumerate(EPS):
        d = _at(r, i)
        ns = assert_in_ball(d, NAMES, eps, norm, scope)
        if dist != "uniform":
            np.testing.assert_allclose(ns, eps, rtol=1e-5)
        else:
            assert np.all(ns < eps) or eps == 0.0
        if eps == 0.0:
            assert all(np.all(x == 0) for x in jax.tree.leaves(d))
    # Same key, different eps: only the size changes.
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x * (2.0 / 0.3), y, rtol=1e-5), _at(r, 1), _at(r, 2)
    )


def test_uniform_l2_fills_the_ball():
    like = {"x": jnp.zeros((4000, 2), jnp.float32)}
    d = jax.jit(lambda k: random_ball(k, like, 1.0, norm="l2", scope="row", dist="uniform"))(
        jax.random.key(1)
    )
    r = np.linalg.norm(np.asarray(d["x"]), axis=-1)
    assert abs(np.mean(r <= 0.5) - 0.25) < 0.03  # uniform in a disc: P(r <= 1/2) = 1/4


def test_bad_arguments():
    emb = {"x": jnp.ones((2, 3))}
    for fn, kw in ((project, {"eps": 1.0}), (normalize, {})):
        with pytest.raises(ValueError, match="norm='l1'"):
            fn(emb, norm="l1", scope="row", **kw)
        with pytest.raises(ValueError, match="scope='rows'"):
            fn(emb, norm="l2", scope="rows", **kw)
    with pytest.raises(ValueError, match="dist='laplace'"):
        random_ball(jax.random.key(0), emb, 1.0, dist="laplace")
    with pytest.raises(ValueError, match="batch size"):
        project({"a": jnp.ones((3, 2)), "b": jnp.ones((4, 2))}, 1.0, norm="l2", scope="example")


def test_mixed_precision_under_strict_promotion(strict_promotion):
    tree = {"a": jnp.full((2, 3), 4.0, jnp.bfloat16), "b": jnp.full((2, 3), 4.0, jnp.float32)}
    out = jax.jit(
        lambda t, k: (
            project(t, 1.0, norm="l2", scope="example"),
            random_ball(k, t, 1.0, norm="l2", scope="batch"),
        )
    )(tree, jax.random.key(0))
    for d in out:
        assert {k: v.dtype for k, v in d.items()} == {"a": jnp.bfloat16, "b": jnp.float32}
    np.testing.assert_allclose(np_unit_norms(out[0], ("a", "b"), "l2", "example"), 1.0, rtol=1e-2)
    with pytest.raises(TypeError, match="floating point"):
        project({"ids": jnp.ones((2, 3), jnp.int32)}, 1.0)
