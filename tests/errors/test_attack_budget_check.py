"""Every training attack's output is checked against its ball: a perturbation that leaves
it (an attack that forgets to project) is a warning in the epoch's record and the run's
warnings, and an error under ``train.strict``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.attacks import (
    BUDGET_TOLERANCE,
    AttackConfig,
    Budget,
    budget_excess,
    make_attack,
    relative_budget,
)
from robustjax.attacks.registry import EMBEDDING_ATTACKS, EmbeddingAttack
from robustjax.losses.combine import Term, combine
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import AdvConfig, build_phases
from robustjax.train.loop import Phase, Selector, TrainingDiverged, train_loop


def _emb(key=0):
    k1, k2 = jax.random.split(jax.random.key(key))
    return {"user": jax.random.normal(k1, (6, 4)), "pos": 3.0 * jax.random.normal(k2, (6, 4))}


def test_budget_excess_by_hand():
    emb = _emb()
    delta = {"user": jnp.zeros((6, 4)).at[2, 0].set(0.3), "pos": jnp.zeros((6, 4))}
    # row 2 of user has ||delta|| = 0.3 against radius 0.1: excess (0.3 - 0.1) / 0.1 = 2
    ex = budget_excess(emb, delta, Budget(0.1, "l2", "row"))
    np.testing.assert_allclose(float(ex), 2.0, rtol=1e-6)
    assert float(budget_excess(emb, delta, Budget(0.3, "l2", "row"))) <= BUDGET_TOLERANCE
    # relative: the radius is eps * ||user row 2||
    r = float(jnp.linalg.norm(emb["user"][2]))
    ex = budget_excess(emb, delta, Budget(0.1, "l2", "row", "relative"))
    np.testing.assert_allclose(float(ex), max(0.3 / (0.1 * r) - 1, 0.0), rtol=1e-5)


@pytest.mark.parametrize("budget", ["absolute", "relative"])
@pytest.mark.parametrize("kind", ["fgsm", "pgd", "gaussian"])
def test_library_attacks_stay_inside_their_declared_ball(kind, budget):
    cfg = AttackConfig(kind=kind, eps=0.2, num_steps=3, targets=("user", "pos"))
    attack = make_attack(cfg, ("user", "pos"))
    if budget == "relative":
        attack = relative_budget(attack, norm=cfg.norm, scope=cfg.scope)
    emb = _emb(1)
    loss = lambda e: jnp.sum(e["user"] * e["pos"], -1) ** 2
    delta = attack(loss, emb, key=jax.random.key(0))
    assert attack.budget == Budget(0.2, "l2", "row", budget)
    assert float(budget_excess(emb, delta, attack.budget)) <= BUDGET_TOLERANCE


def test_combine_logs_checks_with_weight_zero():
    def term(params, batch, *, key):
        return {"": jnp.ones(3), "check/budget_excess": jnp.float32(5.0)}

    total, parts = combine(adv=Term(term, 0.5))({}, {}, key=jax.random.key(0))
    assert float(total) == 0.5  # the check is not optimised
    assert set(parts) == {"adv", "check/budget_excess/adv"}
    assert float(parts["check/budget_excess/adv"]) == 5.0


def _unprojected(loss_fn, emb, *, eps, targets, **_):
    """A broken attack: a step of 3 * eps along the gradient, never projected."""
    g = jax.grad(lambda e: jnp.sum(loss_fn(e)))(emb)
    return {
        k: jax.lax.stop_gradient(
            3 * eps * v / (jnp.linalg.norm(v, axis=-1, keepdims=True) + 1e-12)
            if k in targets
            else jnp.zeros_like(v)
        )
        for k, v in g.items()
    }


def test_an_attack_that_leaves_its_ball_is_seen_by_the_objective(monkeypatch):
    monkeypatch.setitem(EMBEDDING_ATTACKS, "pgd", EmbeddingAttack(_unprojected))
    fns, params = build_model(ModelConfig(name="mf", dim=4), 5, 7, seed=0)
    adv = AdvConfig(method="pgd", eps=0.5, budget_kind="absolute", num_steps=2)
    phases = build_phases(fns, loss="bpr", l2=0.0, adv=adv, epochs=2)
    batch = {"user": jnp.arange(4), "pos": jnp.arange(4), "neg": jnp.arange(4) + 2}
    _, parts = phases[-1].objective(params, batch, key=jax.random.key(0))
    np.testing.assert_allclose(float(parts["check/budget_excess/pgd"]), 2.0, rtol=1e-4)
    monkeypatch.undo()  # the library's PGD projects: no excess
    phases = build_phases(fns, loss="bpr", l2=0.0, adv=adv, epochs=2)
    _, parts = phases[-1].objective(params, batch, key=jax.random.key(0))
    assert float(parts["check/budget_excess/pgd"]) <= BUDGET_TOLERANCE


class _Task:
    def plan(self, epoch):
        return epoch

    def __call__(self, state, plan, key):
        excess = 2.0 if plan >= 1 else 0.0
        return state, {"bpr": jnp.float32(1.0), "check/budget_excess/pgd": jnp.float32(excess)}


def _loop(**kw):
    return train_loop(
        state={"w": jnp.zeros(3)},
        phases=[Phase(0, _Task())],
        epochs=3,
        seed=0,
        validate=lambda state: {"ndcg@20": 0.0},
        eval_every=1,
        selectors={"model": Selector("ndcg@20", params_of=lambda state: state)},
        progress=False,
        **kw,
    )


def test_budget_excess_is_a_warning_once_and_strict_error():
    result = _loop()
    assert len(result.warnings) == 1 and "exceeded its budget in epoch 2" in result.warnings[0]
    assert "warnings" in result.history[1] and "warnings" not in result.history[2]
    with pytest.raises(TrainingDiverged, match="epoch 2.*strict"):
        _loop(strict=True)
