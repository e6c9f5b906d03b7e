"""The sweep attack's pairs in chunks: per-example values and gradients of one call to float
rounding (a sweep with a chunked attack: tests/eval/test_sweep.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
