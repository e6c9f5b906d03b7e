"""The functional boundary between Flax NNX models and the rest of the library.

Code outside ``robustjax.models`` never touches modules: it sees a :class:`ModelFns`
(pure functions of ``params``) and the ``params`` pytree, so ``jax.jit``, ``grad`` and
``vmap`` apply directly (Flax's "functional training loop").
"""

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax.types import Array, Batch, Emb, Params


class ModelFns(NamedTuple):
    """Pure functions of a model.

    Attributes:
      embed: ``embed(params, batch) -> {name: [B, D] or [B, N, D]}``; the perturbation point
        for embedding attacks. Names are those in ``embedding_names``.
      score: ``score(params, user [..., D], item [..., D], bias [...] | None) -> [...]``.
      score_all: ``score_all(params, users int32 [B]) -> [B, I]`` for full ranking.
      score_items: ``score_items(params, users [B], items [B, C]) -> [B, C]`` (sampled protocol).
      embedding_names: names ``embed`` returns that attacks may perturb.
      num_users, num_items: table sizes.
      lookups: for embeddings that are rows of a table, ``name -> (table, batch_key)``
        (e.g. ``"neg" -> ("item", "neg")``); used by attacks that perturb table rows
        (APR as published). Empty for models whose embeddings are not plain lookups.
      table_sizes: ``table -> number of rows``.
      get_tables: ``get_tables(params) -> {table: [rows, D]}`` (None if the model has no
        embedding tables); the perturbation point of table-level (evaluation) attacks.
      set_tables: ``set_tables(params, tables) -> params`` with those tables replaced.
      bilinear: ``score(u, i, b)`` is exactly ``<u, i> (+ b)`` and does not read
        ``params``; lets L2 attacks run in the span of the batch
        (:mod:`robustjax.losses.gram`).
    """

    embed: Callable[[Params, Batch], Emb]
    score: Callable[..., Array]
    score_all: Callable[[Params, Array], Array]
    score_items: Callable[[Params, Array, Array], Array]
    embedding_names: tuple[str, ...]
    num_users: int
    num_items: int
    lookups: Mapping[str, tuple[str, str]] = MappingProxyType({})
    table_sizes: Mapping[str, int] = MappingProxyType({})
    get_tables: Callable | None = None
    set_tables: Callable | None = None
    bilinear: bool = False

    # identity semantics, so a ModelFns can be a static argument of jax.jit
    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return id(self)


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, Params]:
    """Splits a module into its static graph and its trainable parameters."""
    return nnx.split(model, nnx.Param)


def slot_scores(fns: ModelFns, params: Params, emb: Emb) -> dict[str, Array]:
    """Scores of every item slot in ``emb`` against ``emb["user"]``.

    Returns ``{"pos": [B], "neg": [B] or [B, N]}`` (only the slots present). Negatives of
    shape ``[B, N, D]`` are scored against the user broadcast over ``N``.
    """
    user = emb["user"]
    out = {}
    for slot in ("pos", "neg"):
        if slot not in emb:
            continue
        item = emb[slot]
        u = user if item.ndim == user.ndim else jnp.expand_dims(user, -2)
        out[slot] = fns.score(params, u, item, emb.get(f"{slot}_bias"))
    return out


def count_params(params: Params) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))


def set_embedding_tables(
    graphdef: nnx.GraphDef, params: Params, tables: dict, modules: dict[str, str] | None = None
) -> Params:
    """``params`` with the ``nnx.Embed`` tables named in ``tables`` replaced.

    ``modules`` maps a table name to the module attribute holding it (default
    ``{"user": "users", "item": "items"}``). Works on a copy: a merged module shares its
    Variables with the state it came from.
    """
    modules = modules or {"user": "users", "item": "items"}
    model = nnx.merge(graphdef, jax.tree.map(lambda x: x, params))
    for name, table in tables.items():
        getattr(model, modules[name]).embedding[...] = table
    return nnx.split(model, nnx.Param)[1]


def lookup_model_fns(
    graphdef: nnx.GraphDef,
    model,
    *,
    get_tables: Callable,
    set_tables: Callable,
    bilinear: bool = False,
) -> ModelFns:
    """``ModelFns`` of a module whose ``user``/``pos``/``neg`` embeddings are rows of a user
    and an item table and whose methods are ``embed``, ``score``, ``score_all`` and
    ``score_items`` (MF, NeuMF)."""

    def merge(p):  # trace-time only
        return nnx.merge(graphdef, p)

    return ModelFns(
        embed=lambda p, batch: merge(p).embed(batch),
        score=lambda p, user, item, bias=None: merge(p).score(user, item, bias),
        score_all=lambda p, users: merge(p).score_all(users),
        score_items=lambda p, users, items: merge(p).score_items(users, items),
        embedding_names=("user", "pos", "neg"),
        num_users=model.num_users,
        num_items=model.num_items,
        lookups={"user": ("user", "user"), "pos": ("item", "pos"), "neg": ("item", "neg")},
        table_sizes={"user": model.num_users, "item": model.num_items},
        get_tables=get_tables,
        set_tables=set_tables,
        bilinear=bilinear,
    )
