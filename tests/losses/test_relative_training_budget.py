"""Adversarial training under the relative budget: invariant to score-preserving rescaling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.models import ModelConfig, build_model
from robustjax.objectives import AdvConfig, build_phases


def _batch():
    return {
        "user": jnp.asarray([0, 1, 2, 3, 4, 5]),
        "pos": jnp.asarray([1, 2, 3, 4, 5, 6]),
        "neg": jnp.asarray([7, 8, 9, 0, 1, 2]),
        "mask": jnp.ones(6),
    }


def _objective(fns, **adv):
    phases = build_phases(fns, loss="bpr", l2=0.0, adv=AdvConfig(warm_epochs=0, **adv), epochs=1)
    return phases[-1].objective


@pytest.mark.parametrize("method", ["apr", "pgd"])
def test_relative_budget_term_is_invariant_to_rescaling_and_absolute_is_not(method):
    fns, params = build_model(ModelConfig(dim=8), 10, 12, seed=0)
    t = fns.get_tables(params)
    rescaled = fns.set_tables(params, {"user": t["user"] * 3.0, "item": t["item"] / 3.0})
    key = jax.random.key(1)
    kw = {"method": method, "eps": 0.4, "num_steps": 3}
    for budget, invariant in (("relative", True), ("absolute", False)):
        f = _objective(fns, budget_kind=budget, **kw)
        _, pa = f(params, _batch(), key=key)
        _, pb = f(rescaled, _batch(), key=key)
        assert np.isclose(float(pa["bpr"]), float(pb["bpr"]), rtol=1e-5)  # same scores
        same = np.isclose(float(pa[method]), float(pb[method]), rtol=1e-4)
        assert same == invariant, (budget, float(pa[method]), float(pb[method]))
        assert float(pa[method]) >= float(pa["bpr"]) - 1e-6  # the attack does not lower it
    f0 = _objective(fns, budget_kind="relative", method=method, eps=0.0, num_steps=3)
    _, p0 = f0(params, _batch(), key=key)
    np.testing.assert_allclose(float(p0[method]), float(p0["bpr"]), rtol=1e-6)  # eps 0: clean


def test_relative_budget_is_refused_where_it_would_be_ignored():
    with pytest.raises(ValueError, match="budget_kind='relative' applies to"):
        AdvConfig(method="vat", budget_kind="relative")
    with pytest.raises(ValueError, match="budget_kind='relative' applies to"):
        AdvConfig(method="apr", apr_mode="published", budget_kind="relative")
    with pytest.raises(ValueError, match="unknown"):
        AdvConfig(method="apr", budget_kind="score")
