import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.attacks import AttackConfig, make_attack
from robustjax.data import synthetic
from robustjax.losses import emb_loss
from robustjax.losses.adversarial import (
    add_delta,
    adversarial_term,
    apr_published_term,
    injected_term,
    pick_examples,
    trades_term,
    vat_term,
)
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import PAIR_ADV_METHODS, AdvConfig, build_phases
from robustjax.train import build_train_arrays, fit, make_optimizer

U, I, D = 12, 20, 6


@pytest.fixture(scope="module")
def model():
    fns, params = build_model(ModelConfig(dim=D), U, I, seed=0)
    params = jax.tree.map(lambda x: x * 5.0, params)  # away from the origin
    return fns, params


def _batch(unique=False):
    users = jnp.arange(8) if unique else jnp.array([0, 1, 1, 2, 3, 3, 3, 4])
    pos = jnp.arange(8) if unique else jnp.array([1, 2, 2, 5, 6, 7, 1, 9])
    neg = jnp.arange(8, 16) if unique else jnp.array([10, 11, 12, 13, 2, 15, 16, 10])
    return {"user": users, "pos": pos, "neg": neg, "mask": jnp.ones(8)}


def test_adversarial_term_uses_the_perturbed_embeddings(model):
    """Guards against swapping clean and perturbed embeddings: with a fixed, known delta the
    adversarial term must equal the loss at emb + delta, and the clean term at emb."""
    fns, params = model
    loss = emb_loss(fns, "bpr")
    batch = _batch()
    shift = {
        "user": jnp.full((8, D), 0.3),
        "pos": jnp.full((8, D), -0.2),
        "neg": jnp.full((8, D), 0.1),
    }
    fixed = lambda loss_fn, emb, *, key: shift
    adv = adversarial_term(fns, loss, fixed)(params, batch, key=jax.random.key(0))
    emb = fns.embed(params, batch)
    np.testing.assert_allclose(adv, loss(params, add_delta(emb, shift)), rtol=1e-6)
    assert not np.allclose(adv, loss(params, emb))
    # the gradient flows into the parameters through the embeddings, not through delta
    g = jax.grad(
        lambda p: jnp.sum(adversarial_term(fns, loss, fixed)(p, batch, key=jax.random.key(0)))
    )(params)
    assert any(float(jnp.abs(x).sum()) > 0 for x in jax.tree.leaves(g))


@pytest.mark.parametrize("kind", ["fgsm", "pgd"])
def test_adversarial_loss_is_not_below_clean_and_eps0_is_clean(model, kind):
    fns, params = model
    loss = emb_loss(fns, "bpr")
    batch = _batch()
    clean = loss(params, fns.embed(params, batch))
    for eps, cmp in ((0.0, "eq"), (0.5, "ge")):
        attack = make_attack(AttackConfig(kind=kind, eps=eps, num_steps=5), fns.embedding_names)
        adv = adversarial_term(fns, loss, attack)(params, batch, key=jax.random.key(1))
        if cmp == "eq":
            np.testing.assert_array_equal(adv, clean)
        else:
            assert np.all(np.asarray(adv) >= np.asarray(clean) - 1e-6)
            assert float(adv.mean()) > float(clean.mean())


def test_apr_published_equals_per_lookup_without_repeated_rows(model):
    fns, params = model
    loss = emb_loss(fns, "bpr")
    batch = _batch(unique=True)
    fgsm = make_attack(AttackConfig(kind="fgsm", eps=0.5), fns.embedding_names)
    a = adversarial_term(fns, loss, fgsm)(params, batch, key=jax.random.key(0))
    b = apr_published_term(fns, loss, eps=0.5)(params, batch, key=jax.random.key(0))
    np.testing.assert_allclose(a, b, rtol=1e-5)
    # with repeated rows they differ: one delta per table row from the summed gradient
    c = adversarial_term(fns, loss, fgsm)(params, _batch(), key=jax.random.key(0))
    d = apr_published_term(fns, loss, eps=0.5)(params, _batch(), key=jax.random.key(0))
    assert not np.allclose(c, d)


def test_apr_published_ignores_padding_rows(model):
    """Padding rows of a partial batch (mask 0; make_batch points them at training row 0,
    a real triple, with a sampled negative) must not change the real rows' perturbations."""
    fns, params = model
    loss = emb_loss(fns, "bpr")
    real = _batch()
    pad = {
        "user": jnp.concatenate([real["user"], jnp.full(4, 1, real["user"].dtype)]),
        "pos": jnp.concatenate([real["pos"], jnp.full(4, 2, real["pos"].dtype)]),
        "neg": jnp.concatenate([real["neg"], jnp.array([11, 3, 17, 4], real["neg"].dtype)]),
        "mask": jnp.concatenate([real["mask"], jnp.zeros(4)]),
    }
    term = apr_published_term(fns, loss, eps=0.5)
    a = term(params, real, key=jax.random.key(0))
    b = term(params, pad, key=jax.random.key(0))[:8]
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_apr_published_delta_is_per_row_and_in_the_ball(model):
    """Rows looked up twice get the same delta of norm eps."""
    fns, params = model
    captured = {}

    def spy(params, emb):
        if not isinstance(emb["user"], jax.core.Tracer):  # the call outside the inner grad
            captured["perturbed"] = emb
        return emb_loss(fns, "bpr")(params, emb)

    batch = _batch()
    apr_published_term(fns, spy, eps=0.5)(params, batch, key=jax.random.key(0))
    clean, perturbed = fns.embed(params, batch), captured["perturbed"]
    du = perturbed["user"] - clean["user"]
    np.testing.assert_allclose(du[1], du[2], atol=1e-6)  # user 1 twice
    np.testing.assert_allclose(np.linalg.norm(du, axis=-1), 0.5, rtol=1e-4)


def test_trades_and_vat_are_nonnegative_and_zero_at_eps0(model):
    fns, params = model
    batch = _batch()
    for eps in (0.0, 0.5):
        attack = make_attack(AttackConfig(kind="pgd", eps=eps, num_steps=3), fns.embedding_names)
        t = trades_term(fns, attack)(params, batch, key=jax.random.key(0))
        v = vat_term(fns, eps=eps)(params, batch, key=jax.random.key(0))
        assert np.all(np.asarray(t) >= -1e-6) and np.all(np.asarray(v) >= -1e-6)
        if eps == 0.0:
            np.testing.assert_allclose(t, 0.0, atol=1e-6)
            np.testing.assert_allclose(v, 0.0, atol=1e-6)
        else:
            assert float(t.mean()) > 0 and float(v.mean()) > 0


def test_trades_inner_maximisation_starts_from_small_gaussian_noise():
    """At delta = 0 the KL's gradient is zero up to rounding, so TRADES starts at
    0.001 * N(0, I): the first step then follows the KL's gradient at that start, every
    row moves, and the result stays in the ball (eps = 0 still gives zero delta and a zero
    term). Unscaled parameters: the softmax is not saturated, so no gradient underflows."""
    from robustjax.attacks import normalize, project
    from robustjax.losses.adversarial import _kl, _log_probs

    fns, params = build_model(ModelConfig(dim=D), U, I, seed=0)
    batch = _batch()
    emb = fns.embed(params, batch)
    fixed = _log_probs(fns, params, emb)
    kl_sum = lambda d: jnp.sum(_kl(fixed, _log_probs(fns, params, add_delta(emb, d))))
    zero = {n: jnp.zeros_like(emb[n]) for n in ("user", "pos", "neg")}
    g0 = jax.grad(kl_sum)(zero)
    noise = max(float(jnp.abs(v).max()) for v in g0.values())
    assert noise < 1e-6  # rounding only: why a zero start fails
    for eps in (0.5, 0.0):
        attack = make_attack(AttackConfig(kind="pgd", eps=eps, num_steps=1), fns.embedding_names)
        seen = {}

        def spy(loss_fn, e, *, key, init=None, attack=attack, seen=seen):
            seen["init"] = init
            seen["delta"] = attack(loss_fn, e, key=key, init=init)
            return seen["delta"]

        t = trades_term(fns, spy)(params, batch, key=jax.random.key(3))
        init, delta = seen["init"], seen["delta"]
        assert init is not None
        for n in ("user", "pos", "neg"):
            assert 0.0005 < float(jnp.std(init[n])) < 0.002  # 0.001 * N(0, I)
        # one PGD step from the noisy start, by hand
        start = {n: init[n] for n in zero}
        g = jax.grad(kl_sum)(start)
        assert all(float(jnp.linalg.norm(v, axis=-1).min()) > 100 * noise for v in g.values())
        step = jax.tree.map(lambda d, v, eps=eps: d + 2.5 * eps * v, start, normalize(g))
        want = project(step, eps)
        for n in zero:
            np.testing.assert_allclose(delta[n], want[n], atol=1e-6)
            norms = np.linalg.norm(np.asarray(delta[n]), axis=-1)
            assert np.all(norms <= eps + 1e-5)
            if eps > 0:
                np.testing.assert_allclose(norms, eps, rtol=1e-5)  # every row moved
            else:
                np.testing.assert_array_equal(delta[n], 0.0)
                np.testing.assert_allclose(t, 0.0, atol=1e-6)
        if eps > 0:
            assert float(t.min()) > 1e-4


@pytest.mark.slow
def test_pgd_at_starts_at_random_by_default_and_random_start_false_is_the_zero_start(model):
    """PGD-AT (Madry et al.) starts uniformly in the eps ball unless adv.random_start=False,
    which gives exactly the former zero-start attack configuration and objective."""
    from robustjax.attacks import pgd

    fns, params = model
    batch = _batch()
    emb = fns.embed(params, batch)
    loss = emb_loss(fns, "bpr")
    key = jax.random.key(2)
    on = AdvConfig(method="pgd", eps=0.5, num_steps=3)
    off = dataclasses.replace(on, random_start=False)
    assert on.random_start and on.attack_config().random_start
    assert off.attack_config() == AttackConfig(kind="pgd", eps=0.5, num_steps=3)
    deltas = {}
    for name, adv in (("on", on), ("off", off)):
        attack = make_attack(adv.attack_config(), fns.embedding_names)
        deltas[name] = attack(lambda e: loss(params, e), emb, key=key)
    zero = pgd(lambda e: loss(params, e), emb, eps=0.5, num_steps=3, targets=on.targets)
    for n in on.targets:
        np.testing.assert_array_equal(deltas["off"][n], zero[n])
        assert np.abs(np.asarray(deltas["on"][n] - zero[n])).max() > 1e-3
        assert np.all(np.linalg.norm(np.asarray(deltas["on"][n]), axis=-1) <= 0.5 * (1 + 1e-5))

    # the objectives: off is key-independent and equals the generic zero-start term (and
    # keeps the exact span path on MF); on depends on the key through the start
    def adv_part(adv, k):
        phases = build_phases(fns, loss="bpr", l2=0.0, adv=adv, epochs=2)
        return float(phases[-1].objective(params, batch, key=jax.random.key(k))[1]["pgd"])

    zero_term = adversarial_term(
        fns, loss, make_attack(AttackConfig(kind="pgd", eps=0.5, num_steps=3), fns.embedding_names)
    )
    want = float(jnp.mean(zero_term(params, batch, key=key)))
    np.testing.assert_allclose(adv_part(off, 0), want, rtol=1e-5)
    assert adv_part(off, 0) == adv_part(off, 1)
    assert adv_part(on, 0) != adv_part(on, 1)


def test_validate_rejects_random_start_for_methods_without_a_choice():
    from robustjax.config import ExperimentConfig

    for method in ("pgd", "none"):
        ExperimentConfig(adv=AdvConfig(method=method, random_start=False)).validate()
    for method in ("apr", "fast", "trades", "vat", "free"):
        ExperimentConfig(adv=AdvConfig(method=method)).validate()
        cfg = ExperimentConfig(adv=AdvConfig(method=method, random_start=False))
        with pytest.raises(ValueError, match="does not use adv.random_start=False"):
            cfg.validate()
    with pytest.raises(TypeError, match="random_start must be a bool"):
        AdvConfig(method="pgd", random_start="no")


def test_pick_examples_never_picks_padding():
    mask = jnp.asarray([1.0, 1, 1, 1, 1, 1, 0, 0])
    for seed in range(5):
        chosen = np.asarray(pick_examples(mask, 0.5, jax.random.key(seed)))
        assert chosen.sum() == 3 and not chosen[6:].any()


def test_injected_term_replaces_a_fraction_by_its_adversarial_version(model):
    """(sum_clean L + w sum_chosen L_adv) / ((m - k) + w k) over the real examples; r = 1
    and w = 1 is the adversarial term itself."""
    fns, params = model
    loss = emb_loss(fns, "bpr")
    attack = make_attack(AttackConfig(kind="fgsm", eps=0.5), fns.embedding_names)
    batch = {**_batch(unique=True), "mask": jnp.asarray([1.0, 1, 1, 1, 1, 1, 0, 0])}
    key = jax.random.key(4)
    w = 2.0
    values = injected_term(fns, loss, attack, fraction=0.5, weight=w)(params, batch, key=key)
    chosen = np.asarray(pick_examples(batch["mask"], 0.5, jax.random.split(key)[1]))
    clean = np.asarray(loss(params, fns.embed(params, batch)))
    adv = np.asarray(adversarial_term(fns, loss, attack)(params, batch, key=key))
    real = np.asarray(batch["mask"]) > 0
    m, k = real.sum(), chosen.sum()
    want = (clean[real & ~chosen].sum() + w * adv[chosen].sum()) / (m - k + w * k)
    got = float(jnp.sum(values * batch["mask"]) / jnp.sum(batch["mask"]))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    full = injected_term(fns, loss, attack, fraction=1.0)(params, _batch(unique=True), key=key)
    ref = adversarial_term(fns, loss, attack)(params, _batch(unique=True), key=key)
    np.testing.assert_allclose(full, ref, rtol=1e-5)
    with pytest.raises(ValueError, match="fraction must lie in"):
        injected_term(fns, loss, attack, fraction=1.5)


@pytest.fixture(scope="module")
def tiny_data():
    table = synthetic(num_users=40, num_items=60, interactions_per_user=8, seed=1)
    return table, build_train_arrays(table.user, table.item, table.num_users, table.num_items)


@pytest.mark.parametrize(
    "method",
    [
        # slow: fast (1-step pgd), pgd and trades (their terms have their own default tests)
        pytest.param(m, marks=pytest.mark.slow) if m in ("fast", "pgd", "trades") else m
        for m in PAIR_ADV_METHODS
        if m != "none"
    ],
)
def test_every_method_trains_compiles_once_and_is_deterministic(method, tiny_data):
    table, data = tiny_data
    adv = AdvConfig(method=method, eps=0.3, warm_epochs=1, num_steps=2, replays=2)
    results = []
    for _ in range(2):
        fns, params = build_model(ModelConfig(dim=8), table.num_users, table.num_items, seed=0)
        phases = build_phases(fns, loss="bpr", l2=1e-4, adv=adv, epochs=4)
        traces = []
        if phases[-1].objective is not None:
            obj = phases[-1].objective

            def counted(p, b, *, key, obj=obj, traces=traces):
                traces.append(1)
                return obj(p, b, key=key)

            phases[-1] = dataclasses.replace(phases[-1], objective=counted)
        res = fit(
            params=params,
            tx=make_optimizer("adam", 1e-2),
            phases=phases,
            data=data,
            epochs=4,
            batch_size=64,
            seed=5,
            progress=False,
        )
        if phases[-1].objective is not None:
            assert len(traces) == 1  # three adversarial epochs, one trace
        results.append(res)
    assert [r["phase"] for r in results[0].history] == ["clean"] + [phases[-1].name] * 3
    chex.assert_trees_all_equal(results[0].final_params, results[1].final_params)
    assert all(np.isfinite(r["loss"]) for r in results[0].history)


def test_bad_configuration_fails_at_construction(model):
    fns, _ = model
    with pytest.raises(ValueError, match="eps"):
        AdvConfig(method="pgd", eps=-0.1)
    with pytest.raises(ValueError, match="num_steps"):
        AdvConfig(method="pgd", num_steps=0)
    with pytest.raises(ValueError, match="fraction must lie in \\[0, 1\\], got 1.5"):
        AdvConfig(method="pgd", fraction=1.5)
    with pytest.raises(ValueError, match="method='adversarial' is unknown"):
        AdvConfig(method="adversarial")
    with pytest.raises(ValueError, match="'item_bias'.*valid names"):
        build_phases(
            fns,
            loss="bpr",
            l2=0.0,
            epochs=3,
            adv=AdvConfig(method="pgd", targets=("user", "item_bias")),
        )
    with pytest.raises(ValueError, match="warm_epochs=5 leaves no adversarial epoch"):
        build_phases(fns, loss="bpr", l2=0.0, epochs=5, adv=AdvConfig(method="apr", warm_epochs=5))


@pytest.mark.parametrize("use_bias", [False, True])
def test_fused_apr_pair_equals_clean_plus_adversarial_terms(use_bias):
    from robustjax.losses import Term, clean_term, combine
    from robustjax.losses.adversarial import apr_pair_term

    fns, params = build_model(ModelConfig(dim=D, use_bias=use_bias), U, I, seed=1)
    params = jax.tree.map(lambda x: 5.0 * x + 0.1, params)
    loss = emb_loss(fns, "bpr")
    fgsm = make_attack(AttackConfig(kind="fgsm", eps=0.5), fns.embedding_names)
    batch = dict(_batch(), mask=jnp.array([1.0, 1, 1, 1, 1, 1, 0, 1]))
    generic = combine(bpr=Term(clean_term(fns)), apr=Term(adversarial_term(fns, loss, fgsm), 0.7))
    fused = combine(pair=Term(apr_pair_term(fns, loss, eps=0.5), {"apr": 0.7}))
    (ta, pa), ga = jax.value_and_grad(generic, has_aux=True)(params, batch, key=jax.random.key(0))
    (tb, pb), gb = jax.value_and_grad(fused, has_aux=True)(params, batch, key=jax.random.key(0))
    np.testing.assert_allclose(ta, tb, rtol=1e-6)
    assert set(pa) == set(pb) == {"bpr", "apr"}
    chex.assert_trees_all_close(ga, gb, atol=1e-5)
