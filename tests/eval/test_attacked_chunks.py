"""The sweep attack's pairs in chunks: per-example values and gradients of one call to float
rounding, and a sweep whose attack is chunked equals the unchunked one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.eval import attacked
from robustjax.eval.attacked import chunk_examples, per_example_chunked


def _case(n=1000, rows=37, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    table = jnp.asarray(rng.normal(size=(rows, dim)), jnp.float32)
    batch = {
        "a": jnp.asarray(rng.integers(0, rows, n), jnp.int32),
        "b": jnp.asarray(rng.integers(0, rows, n), jnp.int32),
    }
    return table, batch


def _losses(table, b):
    return jax.nn.softplus(jnp.sum(table[b["a"]] * table[b["b"]], axis=-1))


@pytest.mark.parametrize("chunk", [1, 96, 250, 999, 1000, 4096])
def test_chunked_values_equal_one_call_and_gradients_agree(chunk):
    table, batch = _case()
    whole = jax.jit(_losses)(table, batch)
    got = jax.jit(lambda t: per_example_chunked(lambda b: _losses(t, b), batch, chunk))(table)
    # the same ops; the compiled loop body may sum the dot in another order
    np.testing.assert_allclose(got, whole, rtol=2e-6, atol=1e-6)

    def total(t, c):
        return jnp.sum(per_example_chunked(lambda b: _losses(t, b), batch, c))

    g_chunked = jax.jit(jax.grad(total), static_argnums=1)(table, chunk)
    g_whole = jax.grad(lambda t: jnp.sum(_losses(t, batch)))(table)
    np.testing.assert_allclose(g_chunked, g_whole, rtol=1e-5, atol=1e-5)


def test_chunk_size_from_the_memory_budget():
    assert chunk_examples(10_000, 100, 10**9) == 10_000  # all fit: one call
    assert chunk_examples(10_000, 100, 200_000) == 2_000
    assert chunk_examples(10_000, 100, 1_000) == 1024  # never below 1024 examples


def test_a_sweep_with_a_chunked_attack_equals_the_unchunked_one(monkeypatch):
    from robustjax.data import split_random, synthetic, user_item_csr
    from robustjax.eval.sweep import SweepConfig, run_sweep
    from robustjax.models import ModelConfig, build_model
    from robustjax.train import build_train_arrays

    table = synthetic(num_users=40, num_items=60, interactions_per_user=10, seed=1)
    split = split_random(table, seed=0)
    fns, params = build_model(ModelConfig(dim=8), split.num_users, split.num_items, seed=0)
    params = jax.tree.map(lambda x: 3.0 * x, params)
    data = build_train_arrays(split.train.user, split.train.item, split.num_users, split.num_items)
    csr = lambda t: user_item_csr(t, split.num_users)

    def run():
        return run_sweep(
            fns, params, data=data, target_csr=csr(split.test),
            exclude_csrs=[csr(split.train), csr(split.valid)], num_items=split.num_items,
            cfg=SweepConfig(kind="pgd", eps=(0.0, 0.3, 0.8), user_batch=16), progress=False,
        )  # fmt: skip

    whole = run()
    seen = []

    def small(num_examples, bytes_per_example, budget_bytes):
        seen.append(num_examples)
        return 97  # several chunks and a padded last one

    monkeypatch.setattr(attacked, "chunk_examples", small)
    chunked = run()
    assert seen and seen[0] > 97
    for name in ("ndcg@20", "recall@10", "jaccard@20", "prediction_shift"):
        np.testing.assert_allclose(
            chunked["metrics"][name], whole["metrics"][name], rtol=1e-5, atol=1e-6, err_msg=name
        )
