"""Span attacks of dot-product models against the generic embedding attacks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.attacks import AttackConfig, make_attack
from robustjax.losses import clean_term, emb_loss
from robustjax.losses.adversarial import adversarial_term
from robustjax.losses.gram import (
    coordinates,
    gram,
    span_adversarial_term,
    span_attack,
    span_delta,
)
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import AdvConfig, build_phases

U, I, D, B = 10, 30, 8, 24


def _model(bias=True):
    fns, params = build_model(ModelConfig(dim=D, use_bias=bias), U, I, seed=0)
    key = jax.random.key(1)
    return fns, jax.tree.map(lambda x: x + 0.4 * jax.random.normal(key, x.shape), params)


def _batch(num_neg=None, seed=0):
    """Random batch whose negatives differ from the positive (as the sampler guarantees)."""
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, I, B)
    neg = rng.integers(0, I - 1, (B, num_neg) if num_neg else B)
    neg = np.where(neg >= (pos[:, None] if num_neg else pos), neg + 1, neg)
    return {
        "user": jnp.asarray(rng.integers(0, U, B)),
        "pos": jnp.asarray(pos),
        "neg": jnp.asarray(neg),
        "mask": jnp.ones(B),
    }


def test_coordinates_factor_the_gram_matrix():
    e = {
        "user": jax.random.normal(jax.random.key(0), (B, D)),
        "pos": jax.random.normal(jax.random.key(1), (B, D)),
        "neg": jax.random.normal(jax.random.key(2), (B, 3, D)),
    }
    g = gram(e)
    basis = jnp.concatenate([e["user"][:, None], e["pos"][:, None], e["neg"]], axis=1)
    np.testing.assert_allclose(g, jnp.einsum("bkd,bld->bkl", basis, basis), rtol=1e-5, atol=1e-5)
    low = coordinates(g)
    np.testing.assert_allclose(jnp.einsum("bkm,blm->bkl", low, low), g, rtol=1e-4, atol=1e-5)
    assert np.all(np.triu(np.asarray(low), 1) == 0)


def test_dependent_vector_gets_no_new_axis():
    u = jnp.array([[1.0, 2.0, 0.0]])
    p = jnp.array([[0.0, 1.0, 1.0]])
    low = coordinates(gram({"user": u, "pos": p, "neg": 2.0 * u - p}))
    assert float(low[0, 2, 2]) == 0.0  # no third axis
    np.testing.assert_allclose(low[0, 2, :2], 2.0 * low[0, 0, :2] - low[0, 1, :2], atol=1e-6)


@pytest.mark.parametrize(
    "loss,num_neg",
    [
        ("bpr", None),
        ("softmax", 3),
        pytest.param("bce", None, marks=pytest.mark.slow),
        pytest.param("bce", 3, marks=pytest.mark.slow),
        pytest.param("bpr", 3, marks=pytest.mark.slow),
        pytest.param("softmax", None, marks=pytest.mark.slow),
    ],
)
def test_span_attack_equals_generic_attack(loss, num_neg):
    fns, params = _model()
    batch = _batch(num_neg)
    cases = [
        ("fgsm", 1, ("user", "pos", "neg"), "row"),
        ("pgd", 7, ("user", "pos", "neg"), "row"),
        ("pgd", 4, ("user", "neg"), "example"),
        ("pgd", 3, ("pos",), "batch"),
    ]
    attacks = [
        make_attack(
            AttackConfig(kind=kind, eps=0.6, num_steps=steps, scope=scope, targets=targets),
            fns.embedding_names,
        )
        for kind, steps, targets, scope in cases
    ]
    loss_on_emb = emb_loss(fns, loss)

    @jax.jit  # one compilation for every case (eager dispatch of the loops is slow on CPU)
    def run(params, batch, key):
        emb = fns.embed(params, batch)
        return [
            (
                attack(lambda e: loss_on_emb(params, e), emb, key=key),
                span_delta(emb, span_attack(attack, loss_on_emb, params, emb, key=key)),
            )
            for attack in attacks
        ]

    for (kind, _, _, scope), (ref, got) in zip(cases, run(params, batch, jax.random.key(0))):
        for name in ("user", "pos", "neg"):
            np.testing.assert_allclose(
                got[name], ref[name], atol=2e-6, err_msg=f"{kind} {scope} {name}"
            )


@pytest.mark.parametrize(
    "loss,num_neg",
    [
        ("bpr", None),
        pytest.param("softmax", 3, marks=pytest.mark.slow),
        pytest.param("bce", 9, marks=pytest.mark.slow),
    ],
)  # 9 negatives: the generic fallback
def test_span_term_matches_clean_and_adversarial_terms(loss, num_neg):
    """Values and parameter gradients (the perturbation a constant, as in
    adversarial_term) equal the generic terms."""
    fns, params = _model()
    batch = _batch(num_neg, seed=1)
    cfg = AttackConfig(kind="pgd", eps=0.8, num_steps=5)
    attack = make_attack(cfg, fns.embedding_names)
    span = span_adversarial_term(fns, loss, cfg, clean_name="clean", adv_name="adv")
    generic_adv = adversarial_term(fns, emb_loss(fns, loss), attack)
    generic_clean = clean_term(fns, loss)
    key = jax.random.key(3)

    def ours(p):
        out = span(p, batch, key=key)
        return jnp.sum(out["clean"]) + 0.7 * jnp.sum(out["adv"])

    def reference(p):
        return jnp.sum(generic_clean(p, batch, key=key)) + 0.7 * jnp.sum(
            generic_adv(p, batch, key=key)
        )

    (v1, g1), (v2, g2) = jax.jit(
        lambda p: (jax.value_and_grad(ours)(p), jax.value_and_grad(reference)(p))
    )(params)
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_span_term_invariants():
    fns, params = _model(bias=False)
    batch = _batch()
    key = jax.random.key(0)
    loss_on_emb = emb_loss(fns, "bpr")
    zero = AttackConfig(kind="pgd", eps=0.0, num_steps=3)
    out = span_adversarial_term(fns, "bpr", zero, clean_name="clean")(params, batch, key=key)
    np.testing.assert_allclose(out["adv"], out["clean"], rtol=1e-6)  # eps = 0 is clean
    attack = make_attack(AttackConfig(kind="pgd", eps=0.5, num_steps=5), fns.embedding_names)
    emb = fns.embed(params, batch)
    delta = span_delta(emb, span_attack(attack, loss_on_emb, params, emb, key=key))
    for name in ("user", "pos", "neg"):  # inside the ball, loss not decreased
        assert float(jnp.max(jnp.linalg.norm(delta[name], axis=-1))) <= 0.5 * (1 + 1e-5)
    adv = loss_on_emb(params, {n: emb[n] + delta[n] for n in emb})
    assert np.all(np.asarray(adv) >= np.asarray(loss_on_emb(params, emb)) - 1e-6)


def test_repeated_item_stays_exact():
    """A negative equal to the positive (rank-deficient span) gets bitwise the positive's
    coordinates, so the attack matches the generic one instead of normalising noise."""
    fns, params = _model()
    batch = {**_batch(), "neg": _batch()["pos"]}
    emb = fns.embed(params, batch)
    loss_on_emb = emb_loss(fns, "bpr")
    key = jax.random.key(0)
    for kind in ("fgsm", "pgd"):
        attack = make_attack(AttackConfig(kind=kind, eps=0.5, num_steps=4), fns.embedding_names)
        ref = attack(lambda e: loss_on_emb(params, e), emb, key=key)
        delta = span_delta(emb, span_attack(attack, loss_on_emb, params, emb, key=key))
        for name in ("user", "pos", "neg"):
            np.testing.assert_allclose(delta[name], ref[name], atol=2e-6)
        if kind == "fgsm":  # identical items: the user's BPR gradient is exactly zero
            np.testing.assert_allclose(delta["user"], 0.0, atol=1e-7)


def test_build_phases_picks_the_span_path_only_where_it_is_exact():
    fns, _ = _model()
    names = lambda adv, f=fns: list(
        build_phases(f, loss="bpr", l2=0.0, adv=adv, epochs=2)[-1].objective.terms
    )
    assert names(AdvConfig(method="apr")) == ["apr_span"]
    # PGD-AT starts at random by default, which the span path cannot express
    assert names(AdvConfig(method="pgd", num_steps=3)) == ["bpr", "pgd"]
    assert names(AdvConfig(method="pgd", num_steps=3, random_start=False)) == ["pgd_span"]
    assert names(AdvConfig(method="apr", span=False)) == ["apr_pair"]
    assert names(AdvConfig(method="pgd", norm="linf")) == ["bpr", "pgd"]
    assert names(AdvConfig(method="fast")) == ["bpr", "fast"]  # random start
    # adversarial sample injection replaces a fraction of the batch (generic attack)
    objective = build_phases(
        fns, loss="bpr", l2=0.0, adv=AdvConfig(method="apr", fraction=0.5), epochs=2
    )[-1].objective
    assert list(objective.terms) == ["apr_injected"]
    total, _ = objective(_model()[1], _batch(), key=jax.random.key(0))
    assert np.isfinite(float(total))
    neumf, _ = build_model(ModelConfig(name="neumf", dim=D), U, I, seed=0)
    assert names(AdvConfig(method="pgd"), neumf) == ["bpr", "pgd"]


def test_span_term_rejects_a_model_that_is_not_bilinear():
    neumf, _ = build_model(ModelConfig(name="neumf", dim=D), U, I, seed=0)
    with pytest.raises(ValueError, match="bilinear"):
        span_adversarial_term(neumf, "bpr", AttackConfig(kind="fgsm"))


@pytest.mark.parametrize(
    "cfg,loss,match",
    [
        (AttackConfig(kind="pgd", norm="linf"), "bpr", "norm='linf'"),
        (AttackConfig(kind="pgd", random_start=True), "bpr", "random_start=True"),
        (AttackConfig(kind="gaussian"), "bpr", "kind='gaussian'"),
        (AttackConfig(kind="pgd"), "hinge", "loss='hinge'"),
    ],
)
def test_span_term_refuses_attacks_it_would_get_wrong(cfg, loss, match):
    fns, _ = _model()
    with pytest.raises(ValueError, match=match):
        span_adversarial_term(fns, loss, cfg)
