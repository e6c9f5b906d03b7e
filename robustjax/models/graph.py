"""The LightGCN graph and its propagation (He et al., SIGIR 2020).

:class:`Graph` is the symmetrically normalised user-item graph of the training pairs, built
once on the host by :func:`build_graph`; :func:`propagate` maps layer-0 tables to the
mean of layers ``0..K`` of ``E^{k+1} = A_hat E^k``. The model is in
:mod:`robustjax.models.lightgcn`.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int

from robustjax.models._csr import csr_matmul
from robustjax.types import Array

PROPAGATIONS = ("auto", "csr", "segment_sum")


def resolve_propagation(method: str) -> str:
    """``"auto"``: ``"csr"`` on the CPU backend (jaxlib's compiled CSR kernel, 3x faster
    there), ``"segment_sum"`` elsewhere (BCSR lowers through COO on GPU, where the edge
    list's gathers and segment sums ran 2x faster per epoch on an H200: 0.64 s against
    1.25 s at 810k edges, ``benchmarks/results/lightgcn_epoch-gpu-*.json``). Other names
    are returned as given."""
    if method != "auto":
        return method
    return "csr" if jax.default_backend() == "cpu" else "segment_sum"


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=("user", "item", "weight", "user_ptr", "item_ptr", "item_user", "item_weight"),
    meta_fields=("num_users", "num_items"),
)
@dataclasses.dataclass(frozen=True)
class Graph:
    """The normalised bipartite user-item graph (one entry per distinct pair).

    The edge list sorted by user is also the CSR form of the ``U x I`` block ``R`` of the
    normalised adjacency (``user_ptr`` added); its transpose ``R^T`` is stored sorted by
    item (``item_ptr``, ``item_user``, ``item_weight``), so both directions of a layer
    and of its gradient are row-ordered sparse products.

    Attributes:
      user, item: int32 ``[E]`` endpoints, sorted by user then item.
      weight: float32 ``[E]`` ``1 / sqrt(deg(u) deg(i))``.
      user_ptr: int32 ``[U + 1]`` start of each user's edges in ``user``/``item``/``weight``.
      item_ptr: int32 ``[I + 1]`` start of each item's edges in ``item_user``/``item_weight``.
      item_user, item_weight: int32 / float32 ``[E]`` the edges' users and weights sorted by
        item then user.
      num_users, num_items: node counts (static).
    """

    user: Int[Array, " E"]
    item: Int[Array, " E"]
    weight: Float[Array, " E"]
    user_ptr: Int[Array, " U1"]
    item_ptr: Int[Array, " I1"]
    item_user: Int[Array, " E"]
    item_weight: Float[Array, " E"]
    num_users: int
    num_items: int

    @property
    def num_edges(self) -> int:
        return int(self.user.shape[0])


def build_graph(user, item, num_users: int, num_items: int) -> Graph:
    """Builds the LightGCN graph from training pairs (host NumPy, once).

    Repeated pairs count once. Users or items without training pairs are isolated nodes:
    their propagated embedding is ``e^0 / (K + 1)``.

    Args:
      user: int ``[n]`` users of the training pairs (NumPy or JAX array).
      item: int ``[n]`` items of the training pairs (NumPy or JAX array).
      num_users: user table size; user ids must lie in ``[0, num_users)``.
      num_items: item table size; item ids must lie in ``[0, num_items)``.
    """
    user, item = np.asarray(user), np.asarray(item)
    if user.ndim != 1 or user.shape != item.shape:
        raise ValueError(
            f"build_graph: user and item must be 1-D arrays of equal length, got "
            f"shapes {user.shape} and {item.shape}."
        )
    if not (np.issubdtype(user.dtype, np.integer) and np.issubdtype(item.dtype, np.integer)):
        raise TypeError(
            f"build_graph: user and item must be integer ids, got dtypes "
            f"{user.dtype} and {item.dtype}."
        )
    for name, ids, n in (("user", user, num_users), ("item", item, num_items)):
        if n < 1:
            raise ValueError(f"build_graph: num_{name}s must be >= 1, got {n}.")
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(
                f"build_graph: {name} ids must lie in [0, {n}), got range "
                f"[{ids.min()}, {ids.max()}]; pass the num_{name}s of the data."
            )
    keys = np.unique(user.astype(np.int64) * num_items + item.astype(np.int64))
    if keys.size >= 2**31:
        raise ValueError(
            f"build_graph: {keys.size} distinct pairs exceed the int32 CSR offsets (2**31 - 1)."
        )
    u, i = (keys // num_items).astype(np.int32), (keys % num_items).astype(np.int32)
    deg_u = np.bincount(u, minlength=num_users)
    deg_i = np.bincount(i, minlength=num_items)
    weight = (1.0 / np.sqrt(deg_u[u].astype(np.float64) * deg_i[i])).astype(np.float32)
    by_item = np.argsort(i, kind="stable")  # edges are sorted by user: (item, user) order
    return Graph(
        jnp.asarray(u),
        jnp.asarray(i),
        jnp.asarray(weight),
        jnp.asarray(_offsets(deg_u)),
        jnp.asarray(_offsets(deg_i)),
        jnp.asarray(u[by_item]),
        jnp.asarray(weight[by_item]),
        num_users,
        num_items,
    )


def _offsets(degree: np.ndarray) -> np.ndarray:
    out = np.zeros(degree.size + 1, np.int32)
    np.cumsum(degree, out=out[1:])
    return out


def propagate(
    users0: Float[Array, "U D"],
    items0: Float[Array, "I D"],
    graph: Graph,
    num_layers: int,
    *,
    method: str = "auto",
) -> tuple[Float[Array, "U D"], Float[Array, "I D"]]:
    """LightGCN propagation: the mean of layers ``0..K`` of ``E^{k+1} = A_hat E^k``.

    A pure function of the tables and the graph (both may be traced). Each layer is two
    sparse products over the ``E`` edges (item->user and user->item messages), ``O(E D)``.

    Args:
      users0: layer-0 user table.
      items0: layer-0 item table.
      graph: from :func:`build_graph`, with the tables' sizes.
      num_layers: ``K`` (static).
      method: ``"auto"`` (default): :func:`resolve_propagation`, ``"csr"`` on CPU and
        ``"segment_sum"`` on accelerators. ``"csr"``: row-ordered CSR products (:mod:`robustjax.models._csr`,
        jaxlib's compiled kernel on CPU) with a hand-written VJP: ``A_hat`` is symmetric,
        so the gradient of the propagation is the propagation of the cotangents (``K``
        more layers, nothing stored). Forward-mode AD (``jax.jvp``) is not defined.
        ``"segment_sum"``: the edge-list formulation, a gather and ``jax.ops.segment_sum``
        per direction with autodiff through XLA scatter-adds: the same forward values
        (equal summation order), gradients to float rounding, 3-9x slower on XLA:CPU
        (kept as the reference; under an explicit-axes mesh its gathers from row-sharded
        tables need an ``out_sharding``, which ``"csr"`` does not).
    """
    if users0.shape[0] != graph.num_users or items0.shape[0] != graph.num_items:
        raise ValueError(
            f"propagate: tables of {users0.shape[0]} users x {items0.shape[0]} "
            f"items do not match the graph ({graph.num_users} x "
            f"{graph.num_items}); build the graph with the model's table sizes."
        )
    if method not in PROPAGATIONS:
        raise ValueError(
            f"propagate: method={method!r} is unknown; expected one of {PROPAGATIONS}."
        )
    method = resolve_propagation(method)
    # A graph closed over by a jitted function is a constant of the executable; XLA would
    # constant-fold the index arithmetic on it (seconds per op on an 810k-edge graph, where
    # BCSR lowers through COO, as on GPU). It does not fold through a barrier.
    graph = jax.lax.optimization_barrier(graph)
    if method == "segment_sum":
        return _propagate_segment_sum(users0, items0, graph, num_layers)
    return _propagate_csr(users0, items0, graph, num_layers)


def _propagate_segment_sum(users0, items0, graph: Graph, num_layers: int):
    w = graph.weight[:, None]

    def layer(_, carry):
        u, i, su, si = carry
        u_next = jax.ops.segment_sum(
            w * i[graph.item], graph.user, graph.num_users, indices_are_sorted=True
        )
        i_next = jax.ops.segment_sum(w * u[graph.user], graph.item, graph.num_items)
        return u_next, i_next, su + u_next, si + i_next

    _, _, su, si = jax.lax.fori_loop(0, num_layers, layer, (users0, items0, users0, items0))
    return su / (num_layers + 1), si / (num_layers + 1)


def _layer_mean_csr(users0, items0, graph: Graph, num_layers: int):
    def layer(_, carry):
        u, i, su, si = carry
        u_next = csr_matmul(graph.weight, graph.item, graph.user_ptr, i)  # R i
        i_next = csr_matmul(graph.item_weight, graph.item_user, graph.item_ptr, u)  # R^T u
        return u_next, i_next, su + u_next, si + i_next

    _, _, su, si = jax.lax.fori_loop(0, num_layers, layer, (users0, items0, users0, items0))
    return su / (num_layers + 1), si / (num_layers + 1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _propagate_csr(users0, items0, graph: Graph, num_layers: int):
    return _layer_mean_csr(users0, items0, graph, num_layers)


def _propagate_csr_fwd(users0, items0, graph: Graph, num_layers: int):
    return _layer_mean_csr(users0, items0, graph, num_layers), graph


def _propagate_csr_bwd(num_layers: int, graph: Graph, cotangents):
    # P = mean_k A_hat^k with A_hat = [[0, R], [R^T, 0]] symmetric, so P^T = P; the
    # graph is data, not a parameter (no cotangent)
    cu, ci = cotangents
    return (*_layer_mean_csr(cu, ci, graph, num_layers), None)


_propagate_csr.defvjp(_propagate_csr_fwd, _propagate_csr_bwd)
