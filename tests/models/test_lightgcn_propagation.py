"""LightGCN propagation: the CSR formulation against a dense reference and the edge-list one."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from robustjax.models._csr import csr_matmul
from robustjax.models.graph import resolve_propagation
from robustjax.models.lightgcn import LightGCN, build_graph, propagate

# a repeated pair (0, 1), user 6 and item 8 without edges, user 0 of degree 3
U, I, D = 7, 9, 3
PAIRS_U = np.array([0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 5, 0], np.int32)
PAIRS_I = np.array([0, 1, 2, 2, 3, 4, 0, 5, 6, 1, 6, 7, 1], np.int32)


def dense_propagation_matrix(pairs_u, pairs_i, num_users, num_items, num_layers):
    """``P = mean_{k <= K} A_hat^k`` over the ``(U + I)`` nodes, float64."""
    r = np.zeros((num_users, num_items))
    r[pairs_u, pairs_i] = 1.0
    a = np.block([[np.zeros((num_users, num_users)), r], [r.T, np.zeros((num_items, num_items))]])
    deg = a.sum(1)
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1.0)), 0.0)
    a_hat = inv[:, None] * a * inv[None, :]
    power, total = np.eye(len(a)), np.eye(len(a))
    for _ in range(num_layers):
        power = a_hat @ power
        total += power
    return total / (num_layers + 1)


@functools.cache
def _graph():
    return build_graph(PAIRS_U, PAIRS_I, U, I)


def _tables(seed, num_users=U, num_items=I):
    rng = np.random.default_rng(seed)
    return (
        jnp.asarray(rng.normal(size=(num_users, D)), jnp.float32),
        jnp.asarray(rng.normal(size=(num_items, D)), jnp.float32),
    )


@functools.partial(jax.jit, static_argnames=("num_layers", "method"))
def _value_and_grads(users0, items0, cot_u, cot_i, graph, *, num_layers, method):
    def f(a, b):
        out_u, out_i = propagate(a, b, graph, num_layers, method=method)
        return jnp.vdot(out_u, cot_u) + jnp.vdot(out_i, cot_i), (out_u, out_i)

    (_, out), grads = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(users0, items0)
    return out, grads


@pytest.mark.parametrize("num_layers", [0, 1, 3])
@pytest.mark.parametrize("method", ["csr", "segment_sum"])
def test_propagation_and_its_gradient_equal_the_dense_reference(
    num_layers, method, strict_promotion
):
    users0, items0 = _tables(0)
    cot_u, cot_i = _tables(1)
    (got_u, got_i), (g_u, g_i) = _value_and_grads(
        users0, items0, cot_u, cot_i, _graph(), num_layers=num_layers, method=method
    )
    p = dense_propagation_matrix(PAIRS_U, PAIRS_I, U, I, num_layers)
    want = p @ np.concatenate([users0, items0]).astype(np.float64)
    want_grad = p.T @ np.concatenate([cot_u, cot_i]).astype(np.float64)
    for got, ref in (
        (got_u, want[:U]),
        (got_i, want[U:]),
        (g_u, want_grad[:U]),
        (g_i, want_grad[U:]),
    ):
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    # nodes without edges keep e^0 / (K + 1); their gradient is the cotangent / (K + 1)
    np.testing.assert_allclose(got_u[6], users0[6] / (num_layers + 1), rtol=1e-6)
    np.testing.assert_allclose(got_i[8], items0[8] / (num_layers + 1), rtol=1e-6)
    np.testing.assert_allclose(g_i[8], cot_i[8] / (num_layers + 1), rtol=1e-6)


def test_csr_equals_the_edge_list_implementation_on_a_random_graph():
    """The previous formulation (gathers + segment_sum, autodiff) is kept as
    ``method="segment_sum"``; both also meet the dense reference above."""
    rng = np.random.default_rng(3)
    nu, ni = 40, 55
    graph = build_graph(rng.integers(0, nu, 400), rng.integers(0, ni, 400), nu, ni)
    users0, items0 = _tables(4, nu, ni)
    cot_u, cot_i = _tables(5, nu, ni)
    kw = {"num_layers": 3}
    (ref_u, ref_i), ref_grads = _value_and_grads(
        users0, items0, cot_u, cot_i, graph, method="segment_sum", **kw
    )
    (got_u, got_i), grads = _value_and_grads(
        users0, items0, cot_u, cot_i, graph, method="csr", **kw
    )
    # same summation order forward; the backward sums in another order
    np.testing.assert_allclose(got_u, ref_u, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_i, ref_i, rtol=1e-6, atol=1e-7)
    for got, ref in zip(grads, ref_grads):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_csr_propagation_under_vmap_and_without_edges():
    users0, items0 = _tables(6)
    scales = jnp.array([1.0, -2.0, 0.5], jnp.float32)

    @functools.partial(jax.jit, static_argnames="method")
    def batched(scales, graph, method):
        return jax.vmap(lambda s: propagate(users0 * s, items0, graph, 2, method=method))(scales)

    got, want = batched(scales, _graph(), "csr"), batched(scales, _graph(), "segment_sum")
    for g, w in zip(got, want):
        assert g.shape == w.shape == (3, *w.shape[1:])
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    empty = build_graph(np.zeros(0, np.int32), np.zeros(0, np.int32), U, I)
    out_u, out_i = batched(jnp.ones(1, jnp.float32), empty, "csr")
    np.testing.assert_allclose(out_u[0], users0 / 3, rtol=1e-6)
    np.testing.assert_allclose(out_i[0], items0 / 3, rtol=1e-6)


def test_csr_matmul_folds_a_vmapped_operand_into_one_product():
    g = _graph()
    x = jnp.asarray(np.random.default_rng(7).normal(size=(2, I, D)), jnp.float32)
    got = jax.vmap(lambda v: csr_matmul(g.weight, g.item, g.user_ptr, v))(x)
    r = np.zeros((U, I))
    r[np.asarray(g.user), np.asarray(g.item)] = np.asarray(g.weight)
    np.testing.assert_allclose(got, np.einsum("ui,sid->sud", r, x), rtol=1e-5, atol=1e-6)


def test_unknown_propagation_method_is_an_error():
    users0, items0 = _tables(0)
    with pytest.raises(ValueError, match="method='dense'"):
        propagate(users0, items0, _graph(), 1, method="dense")
    with pytest.raises(ValueError, match="propagation='dense'"):
        LightGCN(U, I, D, propagation="dense", rngs=nnx.Rngs(params=0))


@pytest.mark.parametrize("method", ["csr", "segment_sum"])
def test_a_closed_over_graph_reaches_the_propagation_through_a_barrier(method):
    """A graph closed over by a jitted function is a constant of the program; its index
    arithmetic goes through an optimization barrier, which XLA does not constant-fold
    through (folding it took seconds per op on an 810k-edge graph on GPU), and the values
    are those of the graph passed as an argument."""
    users0, items0 = _tables(8)
    graph = _graph()
    closed = jax.jit(lambda a, b: propagate(a, b, graph, 2, method=method))
    assert "optimization_barrier" in closed.lower(users0, items0).as_text()
    passed = jax.jit(functools.partial(propagate, num_layers=2, method=method))
    for got, want in zip(closed(users0, items0), passed(users0, items0, graph)):
        np.testing.assert_array_equal(got, want)


def test_auto_propagation_is_csr_on_cpu_and_equals_it():
    """``"auto"`` (the default) picks the CSR kernel on the CPU backend (the edge list on
    accelerators) and gives exactly its values."""
    assert jax.default_backend() == "cpu" and resolve_propagation("auto") == "csr"
    assert resolve_propagation("segment_sum") == "segment_sum"
    users0, items0 = _tables(9)
    model = LightGCN(U, I, D, rngs=nnx.Rngs(params=0))
    assert model.propagation == "auto"
    for got, want in zip(
        propagate(users0, items0, _graph(), 2), propagate(users0, items0, _graph(), 2, method="csr")
    ):
        np.testing.assert_array_equal(got, want)
