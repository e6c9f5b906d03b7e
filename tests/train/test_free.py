import pytest

"""Free AT: its ``train.l2`` term equals the fused step's L2 term (independent path)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from robustjax.data import synthetic
from robustjax.losses import Term, clean_term, combine, emb_loss, l2_term
from robustjax.models import ModelConfig, build_model
from robustjax.train import build_train_arrays, init_state, make_optimizer, make_train_epoch
from robustjax.train.free import make_free_train_epoch


@pytest.mark.slow
def test_free_at_l2_matches_the_fused_step_at_eps_zero():
    """One replay at eps 0 is a clean step, so free AT with l2 must equal the fused epoch of
    ``bpr + l2 * L2``, and differ from free AT without l2."""
    table = synthetic(num_users=30, num_items=40, interactions_per_user=6, seed=2)
    data = build_train_arrays(table.user, table.item, table.num_users, table.num_items)
    fns, params = build_model(ModelConfig(dim=8), table.num_users, table.num_items, seed=0)
    tx = make_optimizer("adam", 1e-2)
    perm = np.arange(data.num_interactions, dtype=np.int32)[: 4 * 32].reshape(4, 32)
    key = jax.random.key(7)
    fresh = lambda: jax.tree.map(jnp.copy, params)  # the epoch donates its state
    run = lambda epoch: epoch(init_state(fresh(), tx), perm, data, key)[0].params

    fused = make_train_epoch(combine(bpr=Term(clean_term(fns)), l2=Term(l2_term(fns), 0.5)), tx)
    free = lambda l2: make_free_train_epoch(fns, emb_loss(fns), tx, replays=1, eps=0.0, l2=l2)
    want, got, without = run(fused), run(free(0.5)), run(free(0.0))
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
    diff = jax.tree.map(
        lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()), got, without
    )
    assert max(jax.tree.leaves(diff)) > 1e-4
