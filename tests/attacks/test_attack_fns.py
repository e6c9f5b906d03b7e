"""FGSM, PGD and noise attacks: ball constraints, hand-derived gradients, monotonicity,
targets, and jit / vmap / recompile behaviour."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from attack_helpers import D, assert_in_ball, bpr_loss, make_emb

from robustjax.attacks import AttackConfig, fgsm, make_attack, normalize, pgd, project

NAMES = ("neg", "pos", "user")  # jax.tree.leaves order of a dict
CASES = [(n, s) for n in ("l2", "linf") for s in ("row", "example", "batch")]
KINDS = ("pgd", "fgsm", "gaussian", "uniform")
EPS = (0.0, 0.05, 0.5)


@pytest.fixture(scope="module")
def outputs():
    """Every attack x norm x scope, vmapped over EPS, in one compiled call."""
    emb = make_emb(0)
    fns = {
        (k, n, s): make_attack(
            AttackConfig(kind=k, norm=n, scope=s, num_steps=3, random_start=True), NAMES
        )
        for k in KINDS
        for n, s in CASES
    }

    def at(eps, key):
        return {c: f(bpr_loss, emb, key=key, eps=eps) for c, f in fns.items()}

    with jax.numpy_dtype_promotion("strict"):
        res = jax.jit(jax.vmap(at, in_axes=(0, None)))(
            jnp.asarray(EPS, jnp.float32), jax.random.key(0)
        )
    return jax.device_get(res)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("norm,scope", CASES)
def test_attack_stays_in_ball_and_eps0_is_clean(outputs, kind, norm, scope):
    for i, eps in enumerate(EPS):
        delta = jax.tree.map(lambda x, i=i: x[i], outputs[kind, norm, scope])
        ns = assert_in_ball(delta, NAMES, eps, norm, scope)
        if eps == 0.0:
            assert all(np.all(x == 0) for x in jax.tree.leaves(delta))
        elif kind in ("fgsm", "gaussian"):  # these always reach the sphere
            np.testing.assert_allclose(ns, eps, rtol=1e-5)


def _mf_grads(emb):
    """Hand-derived gradients of softplus(n.u - p.u): s = sigmoid(n.u - p.u)."""
    u, p, n = (np.asarray(emb[k], np.float64) for k in ("user", "pos", "neg"))
    s = 1.0 / (1.0 + np.exp(-(np.sum(n * u, -1) - np.sum(p * u, -1))))[:, None]
    return {"user": s * (n - p), "pos": -s * u, "neg": s * u}


def test_fgsm_l2_row_matches_analytic_gradient(strict_promotion):
    emb = make_emb(1, neg_rows=False)
    eps = 0.3
    delta = jax.jit(lambda e: fgsm(bpr_loss, e, eps=eps, norm="l2", scope="row"))(emb)
    for name, g in _mf_grads(emb).items():
        want = eps * g / np.linalg.norm(g, axis=-1, keepdims=True)
        np.testing.assert_allclose(delta[name], want, rtol=1e-5, atol=1e-6)


def _perturbed(loss_fn, emb, delta):
    return loss_fn(jax.tree.map(jnp.add, emb, delta))


def _quad_loss(emb):
    """Convex, anisotropic: sum_k a_k x_k^2 + b.x per example (FGSM is not optimal)."""
    x = emb["user"]
    a = jnp.arange(1.0, D + 1.0, dtype=x.dtype)
    return jnp.sum(a[None, :] * x * x + 0.3 * x, axis=-1)


def test_loss_does_not_decrease_and_pgd_beats_fgsm():
    emb = make_emb(2, neg_rows=False)
    quad = {"user": emb["user"]}

    @jax.jit
    def run(eps):
        out = {}
        for norm, scope in CASES:
            kw = {"eps": eps, "norm": norm, "scope": scope}
            for tag, loss_fn, e in (("mf", bpr_loss, emb), ("quad", _quad_loss, quad)):
                out[tag, norm, scope] = (
                    loss_fn(e),
                    _perturbed(loss_fn, e, fgsm(loss_fn, e, **kw)),
                    _perturbed(loss_fn, e, pgd(loss_fn, e, num_steps=10, **kw)),
                )
        return out

    res = jax.device_get(run(jnp.float32(0.2)))
    for (tag, norm, scope), (clean, l_fgsm, l_pgd) in res.items():
        msg = f"{tag} {norm} {scope}"
        if scope == "row" or tag == "quad":
            # Per-example guarantees hold when each example has its own ball.
            assert np.all(l_fgsm >= clean - 1e-6), msg
            assert np.all(l_pgd >= clean - 1e-6), msg
        assert l_fgsm.sum() >= clean.sum() - 1e-5, msg
        assert l_pgd.sum() >= clean.sum() - 1e-5, msg
        if tag == "quad":
            assert l_pgd.sum() >= l_fgsm.sum() * (1 - 1e-5) - 1e-6, msg


def test_untargeted_names_get_zero_and_are_not_differentiated():
    @jax.custom_vjp
    def no_grad(x):
        return x

    def bwd(_, g):
        raise AssertionError("a non-targeted embedding was differentiated")

    no_grad.defvjp(lambda x: (x, None), bwd)

    def loss_fn(emb):
        e = dict(emb, neg=no_grad(emb["neg"]))
        return bpr_loss(e)

    emb = make_emb(3)
    attacks = {
        kind: make_attack(AttackConfig(kind=kind, targets=("user",), num_steps=2), NAMES)
        for kind in ("pgd", "fgsm", "uniform")
    }
    deltas = jax.jit(lambda e, key: {k: a(loss_fn, e, key=key) for k, a in attacks.items()})(
        emb, jax.random.key(0)
    )
    for delta in deltas.values():
        assert jax.tree.structure(delta) == jax.tree.structure(emb)
        for name in ("pos", "neg"):
            np.testing.assert_array_equal(delta[name], 0.0)
        assert np.any(np.asarray(delta["user"]) != 0)


def test_unknown_target_raises():
    with pytest.raises(ValueError, match=r"'item'.*valid names are \('user', 'pos', 'neg'\)"):
        make_attack(AttackConfig(targets=("user", "item")), ("user", "pos", "neg"))
    attack = make_attack(AttackConfig(kind="fgsm"), ("user", "pos", "neg"))
    with pytest.raises(ValueError, match="'neg'"):  # emb lacks a target at call time
        attack(bpr_loss, {"user": jnp.ones((2, 3)), "pos": jnp.ones((2, 3))}, key=jax.random.key(0))


@pytest.mark.slow
def test_pgd_init_is_the_first_iterate_and_is_checked():
    """``init=`` replaces the zero start: the first step is taken from ``init`` (not
    projected beforehand) and then projected onto the ball."""
    emb = make_emb(0)
    key = jax.random.key(0)
    init = jax.tree.map(lambda x: 0.3 * jnp.ones_like(x), emb)
    got = pgd(bpr_loss, emb, eps=0.5, num_steps=1, step_size=0.1, init=init, key=key)
    grad = jax.grad(lambda d: jnp.sum(bpr_loss(jax.tree.map(jnp.add, emb, d))))(init)
    want = project(jax.tree.map(lambda d, g: d + 0.1 * g, init, normalize(grad)), 0.5)
    chex.assert_trees_all_close(got, want, atol=1e-6)
    assert_in_ball(got, NAMES, 0.5, "l2", "row")
    with pytest.raises(ValueError, match="not both"):
        pgd(bpr_loss, emb, eps=0.5, init=init, random_start=True, key=key)
    with pytest.raises(ValueError, match=r"no start for targets \['user'\]"):
        pgd(bpr_loss, emb, eps=0.5, init={"pos": init["pos"], "neg": init["neg"]})
    with pytest.raises(ValueError, match="init= .* applies to AttackConfig.kind='pgd' only"):
        make_attack(AttackConfig(kind="fgsm"), NAMES)(bpr_loss, emb, key=key, init=init)


def test_jit_vmap_match_eager_without_recompiles(strict_promotion):
    emb = make_emb(4)
    # No random start here: eager random draws are slow to dispatch on CPU; the random
    # start is covered by the in-ball fixture (jit + vmap).
    attack = make_attack(AttackConfig(kind="pgd", num_steps=3), NAMES)
    key = jax.random.key(5)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(eps):
        return attack(bpr_loss, emb, key=key, eps=eps)

    eps_grid = jnp.asarray([0.0, 0.1, 0.4], jnp.float32)
    jitted = [run(e) for e in eps_grid]  # a new eps value must not retrace
    vmapped = jax.jit(jax.vmap(lambda e: attack(bpr_loss, emb, key=key, eps=e)))(eps_grid)
    eager = attack(bpr_loss, emb, key=key, eps=0.4)  # eager is slow on CPU: one value
    for name in NAMES:
        np.testing.assert_allclose(jitted[2][name], eager[name], rtol=1e-5, atol=1e-6)
        for i in range(len(eps_grid)):
            np.testing.assert_allclose(vmapped[name][i], jitted[i][name], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(vmapped["user"][0], 0.0)


def test_kind_none_is_zero():
    emb = make_emb(0)
    delta = make_attack(AttackConfig(kind="none"), NAMES)(bpr_loss, emb, key=jax.random.key(0))
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(delta))


def test_attack_is_a_constant_for_the_outer_gradient():
    emb = make_emb(0)
    attack = make_attack(AttackConfig(kind="fgsm"), NAMES)

    def outer(e):
        return jnp.sum(jax.tree.leaves(attack(bpr_loss, e, key=jax.random.key(0)))[0])

    g = jax.jit(jax.grad(outer))(emb)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(g))
