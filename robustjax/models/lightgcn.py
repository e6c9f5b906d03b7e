"""LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020).

Layer-0 user and item tables ``E^0`` are propagated ``K`` times over the symmetrically
normalised user-item graph, ``e_u^{k+1} = sum_{i in N(u)} e_i^k / sqrt(|N(u)| |N(i)|)`` (and
symmetrically for items), and the final embedding is the layer mean
``e = (e^0 + ... + e^K) / (K + 1)``; ``s(u, i) = <e_u, e_i>``.

Propagation is a pair of row-ordered sparse (CSR) products per layer, ``R E_I`` and
``R^T E_U`` with ``R`` the normalised ``U x I`` block of the adjacency, and its gradient is
the same propagation of the cotangents (the adjacency is symmetric): ``O(E D)`` time per
layer and ``O((U + I) D)`` memory, no ``[E, D]`` messages. ``propagate(...,
method="segment_sum")`` keeps the edge-list formulation (gathers and segment sums, autodiff
through XLA scatter-adds), 3-9x slower per propagation on XLA:CPU but 2x faster per epoch
on an H200, where BCSR lowers through COO; the default ``"auto"`` picks by backend
(``benchmarks/lightgcn_epoch.py``). The graph is a :class:`Graph` built once, on the host,
from the training pairs; it is not a parameter. Both live in :mod:`robustjax.models.graph`.

Perturbation points (``lightgcn_fns(..., perturb=...)``):

* per-batch attacks (``embed`` output: ``"user"``/``"pos"``/``"neg"``) always perturb the
  *propagated* embeddings of the batch, i.e. the model's output representation;
* table attacks (``get_tables``/``set_tables``, e.g. :func:`robustjax.eval.make_table_attack`)
  perturb the layer-0 tables with ``perturb="layer0"`` (the perturbation then spreads
  through the graph, as for a poisoned input embedding), or the propagated tables with
  ``perturb="output"`` (the per-batch threat model applied to every row at once).

The graph reaches the jitted functions as a closure of the ``ModelFns`` (their signatures
carry only ``params`` and the batch), so its arrays are compile-time constants of each
executable. See :func:`lightgcn_fns` for the cost and the alternative.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Float, Int

from robustjax.models.base import ModelFns, set_embedding_tables, split_model, user_item_layout
from robustjax.models.graph import PROPAGATIONS, Graph, build_graph, propagate
from robustjax.types import Array, Batch, Emb

__all__ = [
    "INITS",
    "PERTURB_POINTS",
    "PROPAGATIONS",
    "Graph",
    "LightGCN",
    "OutputTables",
    "build_graph",
    "lightgcn_fns",
    "propagate",
]

PERTURB_POINTS = ("layer0", "output")
INITS = ("normal", "xavier")


class LightGCN(nnx.Module):
    """LightGCN: trainable layer-0 tables; propagation needs a :class:`Graph` argument.

    Args:
      num_users: user table size.
      num_items: item table size.
      dim: embedding size.
      num_layers: propagation layers ``K`` (0 gives MF).
      init: ``"normal"`` (``N(0, 0.1^2)``, the reference implementation) or ``"xavier"``
        (Xavier-normal, like :class:`robustjax.models.MatrixFactorization`).
      propagation: :func:`propagate`'s ``method``: ``"auto"`` (default: ``"csr"`` on CPU,
        ``"segment_sum"`` on accelerators), ``"csr"`` or ``"segment_sum"`` (the edge-list
        formulation; same values, 3x slower on CPU, 2x faster on an H200).
      rngs: NNX random streams (``params``).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        dim: int,
        *,
        num_layers: int = 3,
        init: str = "normal",
        propagation: str = "auto",
        rngs: nnx.Rngs,
    ):
        for name, value in (("num_users", num_users), ("num_items", num_items), ("dim", dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LightGCN: {name} must be an int >= 1, got {name}={value!r}.")
        if not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(
                f"LightGCN: num_layers must be an int >= 0, got num_layers={num_layers!r}."
            )
        if init not in INITS:
            raise ValueError(f"LightGCN: init={init!r} is unknown; expected one of {INITS}.")
        if propagation not in PROPAGATIONS:
            raise ValueError(
                f"LightGCN: propagation={propagation!r} is unknown; expected one of {PROPAGATIONS}."
            )
        emb_init = (
            nnx.initializers.normal(0.1) if init == "normal" else nnx.initializers.xavier_normal()
        )
        self.users = nnx.Embed(num_users, dim, embedding_init=emb_init, rngs=rngs)
        self.items = nnx.Embed(num_items, dim, embedding_init=emb_init, rngs=rngs)
        self.num_users, self.num_items, self.num_layers = num_users, num_items, num_layers
        self.propagation = propagation

    def propagate(self, graph: Graph) -> tuple[Float[Array, "U D"], Float[Array, "I D"]]:
        """Final (layer-mean) user and item tables."""
        return propagate(
            self.users.embedding[...],
            self.items.embedding[...],
            graph,
            self.num_layers,
            method=self.propagation,
        )

    def embed(self, batch: Batch, graph: Graph) -> Emb:
        """Propagated embeddings of the batch: ``user`` ``[B, D]``, ``pos`` ``[B, D]``,
        ``neg`` ``[B, D]`` or ``[B, N, D]``."""
        return _gather(*self.propagate(graph), batch)

    @staticmethod
    def score(
        user: Float[Array, "*b D"], item: Float[Array, "*b D"], bias: Array | None = None
    ) -> Float[Array, "*b"]:
        s = jnp.sum(user * item, axis=-1)
        return s if bias is None else s + bias

    def score_all(self, users: Int[Array, " B"], graph: Graph) -> Float[Array, "B I"]:
        u, i = self.propagate(graph)
        return u[users] @ i.T

    def score_items(
        self, users: Int[Array, " B"], items: Int[Array, "B C"], graph: Graph
    ) -> Float[Array, "B C"]:
        u, i = self.propagate(graph)
        return jnp.sum(u[users][:, None, :] * i[items], axis=-1)


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=("params", "user", "item"), meta_fields=()
)
@dataclasses.dataclass(frozen=True)
class OutputTables:
    """LightGCN parameters whose propagated tables are replaced by ``user``/``item``.

    Returned by ``set_tables`` with ``perturb="output"``; every function of
    :func:`lightgcn_fns` accepts it and uses the given tables instead of propagating. It is
    also a cache for evaluation: ``fns.set_tables(params, fns.get_tables(params))``
    (``perturb="output"``) propagates once, and ``score_all`` on the result is a matmul.
    """

    params: nnx.State
    user: Float[Array, "U D"]
    item: Float[Array, "I D"]


def _gather(users: Array, items: Array, batch: Batch) -> Emb:
    emb = {"user": users[batch["user"]]}
    for slot in ("pos", "neg"):
        if slot in batch:
            emb[slot] = items[batch[slot]]
    return emb


def lightgcn_fns(
    model: LightGCN, graph: Graph, *, perturb: str = "layer0"
) -> tuple[ModelFns, nnx.State]:
    """Returns ``(ModelFns, params)`` for a LightGCN module on a fixed training graph.

    ``params`` holds only the layer-0 tables (the graph is not trainable). ``embed``,
    ``score_all`` and ``score_items`` propagate on every call (``K`` passes over the
    edges); ``score`` is the dot product of given embeddings.

    Args:
      model: the module.
      graph: from :func:`build_graph` on the training pairs, with the model's table sizes.
      perturb: the table-attack point, ``"layer0"`` (``get_tables``/``set_tables`` read and
        write the layer-0 tables) or ``"output"`` (they read the propagated tables and
        ``set_tables`` returns an :class:`OutputTables` that overrides them). Per-batch
        attacks on ``embed``'s output perturb propagated embeddings in both modes.

    The graph is closed over: ``ModelFns`` functions receive only ``params`` and the batch,
    and putting the int32 edge arrays into ``params`` would break ``jax.grad`` of the
    training step. Under ``jax.jit`` its arrays (16 bytes per edge) therefore become
    constants of every compiled executable (train epoch, evaluation, attack), which costs
    compile time and one device copy per executable for very large graphs. Lifting this
    needs a non-trainable slot in ``ModelFns`` (e.g. ``consts`` passed next to ``params``);
    :func:`propagate` already takes the graph as a (traceable) argument.
    """
    _check_fns_args(model, graph, perturb)
    graphdef, params = split_model(model)

    def final(p):  # propagated tables
        if isinstance(p, OutputTables):
            return p.user, p.item
        return nnx.merge(graphdef, p).propagate(graph)

    def score_all(p, users):
        u, i = final(p)
        return u[users] @ i.T

    def score_items(p, users, items):
        u, i = final(p)
        return jnp.sum(u[users][:, None, :] * i[items], axis=-1)

    get_tables, set_tables = _table_fns(model, graphdef, final, perturb)
    fns = ModelFns(
        embed=lambda p, batch: _gather(*final(p), batch),
        score=lambda p, user, item, bias=None: LightGCN.score(user, item, bias),
        score_all=score_all,
        score_items=score_items,
        # embeddings are rows of the propagated tables (APR-published perturbs those rows)
        **user_item_layout(model),
        get_tables=get_tables,
        set_tables=set_tables,
        bilinear=True,
        l2_embed=lambda p, batch: _gather(*_layer0(p), batch),  # L2 on E^(0), as the paper
    )
    return fns, params


def _layer0(p) -> tuple[Array, Array]:
    """The layer-0 (trainable) user and item tables of ``p``."""
    base = p.params if isinstance(p, OutputTables) else p
    return base["users"]["embedding"][...], base["items"]["embedding"][...]


def _check_fns_args(model: LightGCN, graph: Graph, perturb: str) -> None:
    if perturb not in PERTURB_POINTS:
        raise ValueError(
            f"lightgcn_fns: perturb={perturb!r} is unknown; expected one of {PERTURB_POINTS}."
        )
    if not isinstance(graph, Graph):
        raise TypeError(
            f"lightgcn_fns: graph must be a Graph from build_graph, got {type(graph).__name__}."
        )
    if (graph.num_users, graph.num_items) != (model.num_users, model.num_items):
        raise ValueError(
            f"lightgcn_fns: the graph has {graph.num_users} users x "
            f"{graph.num_items} items but the model {model.num_users} x "
            f"{model.num_items}; build the graph with the model's table sizes."
        )


def _table_fns(model: LightGCN, graphdef, final, perturb: str):
    """``(get_tables, set_tables)`` of :func:`lightgcn_fns` at the attack point ``perturb``.

    ``final`` maps params to the propagated ``(user, item)`` tables.
    """
    if perturb == "layer0":

        def get_tables(p):
            _no_override(p)
            return {"user": p["users"]["embedding"][...], "item": p["items"]["embedding"][...]}

        def set_tables(p, tables):
            _no_override(p)
            _check_tables(tables, model)
            return _set_layer0(graphdef, p, tables)
    else:

        def get_tables(p):
            u, i = final(p)
            return {"user": u, "item": i}

        def set_tables(p, tables):
            _check_tables(tables, model)
            if "user" not in tables or "item" not in tables:
                tables = {**get_tables(p), **tables}
            base = p.params if isinstance(p, OutputTables) else p
            return OutputTables(base, tables["user"], tables["item"])

    return get_tables, set_tables


def _no_override(p):
    if isinstance(p, OutputTables):
        raise TypeError(
            "LightGCN tables: got OutputTables (propagated tables overridden by "
            "perturb='output') in a ModelFns built with perturb='layer0'; use "
            "the functions of lightgcn_fns(..., perturb='output')."
        )


def _check_tables(tables, model: LightGCN):
    d = model.users.features
    for name, rows in (("user", model.num_users), ("item", model.num_items)):
        if name in tables and tables[name].shape != (rows, d):
            raise ValueError(
                f"LightGCN set_tables: table {name!r} has shape "
                f"{tables[name].shape}; expected ({rows}, {d})."
            )


def _set_layer0(graphdef, params, tables):
    return set_embedding_tables(graphdef, params, tables)
