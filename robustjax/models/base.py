"""The functional boundary between Flax NNX models and the rest of the library.

Code outside ``robustjax.models`` never touches modules: it sees a :class:`ModelFns`
(pure functions of ``params``) and the ``params`` pytree, so ``jax.jit``, ``grad`` and
``vmap`` apply directly (Flax's "functional training loop").
"""

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax.types import Array, Batch, Emb, Params

_K = TypeVar("_K")
_V = TypeVar("_V")
_MAPPINGS = ("lookups", "table_sizes", "row_params")


class FrozenMap(Mapping[_K, _V]):
    """An immutable mapping that is hashable by value.

    Equal to any mapping with the same items (``FrozenMap({"a": 1}) == {"a": 1}``), so it
    can stand in for a ``dict`` field of a static (hashed) jit argument. Values must be
    hashable.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = ()):
        object.__setattr__(self, "_items", dict(items))

    def __getitem__(self, key: _K) -> _V:
        return self._items[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self._items == dict(other.items())

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __setattr__(self, name, value):
        raise AttributeError(f"FrozenMap is immutable; cannot set {name!r}.")

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


def _cached_hash(obj) -> int:
    """Hash of a frozen dataclass's fields, computed once: jit hashes its static arguments
    on every call, and graphdefs are slow to hash."""
    h = obj.__dict__.get("_hash")
    if h is None:
        h = hash(tuple(getattr(obj, f.name) for f in dataclasses.fields(obj)))
        object.__setattr__(obj, "_hash", h)
    return h


@dataclasses.dataclass(frozen=True)
class ModelFns:
    """Pure functions of a model.

    Compared and hashed by value (its functions, sizes and mappings), so it can be a static
    argument of ``jax.jit``: two instances built from the same functions and sizes share
    one compiled step. ``lookups`` and ``table_sizes`` are stored as :class:`FrozenMap`
    (any mapping is accepted) and ``embedding_names`` as a tuple.

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
      l2_embed: ``l2_embed(params, batch) -> {name: [B, D]}``, the embeddings the
        batch-level L2 regularises, when they are not ``embed``'s output (LightGCN: the
        layer-0 rows, as in the paper); None means ``embed``.
      row_params: ``table -> parameter leaf names`` (checkpoint names without ``/value``,
        e.g. ``"item" -> ("items/embedding", "item_bias")``): the leaves whose row ``r`` is
        read only by lookups of id ``r`` through ``lookups``. Declaring them lets training
        run on the gathered rows of a batch and update only those rows
        (:mod:`robustjax.train.sparse_step`). Empty when embeddings are not plain lookups
        (LightGCN propagates over the whole table).
      frozen_params: parameter leaf names (as in ``row_params``, e.g.
        ``("items/features",)``) that are inputs, not weights: training never updates them
        (:func:`robustjax.train.sparse_step.optimizer_for` gives them ``set_to_zero``; the
        model also reads them under ``stop_gradient``). Text models' encoder features.
      text: for text-aware models, a :class:`robustjax.models.text_tower.TextSpec`
        (encoder checkpoint, token length, ``item_from_text`` tower function); None
        otherwise.
    """

    embed: Callable[[Params, Batch], Emb]
    score: Callable[..., Array]
    score_all: Callable[[Params, Array], Array]
    score_items: Callable[[Params, Array, Array], Array]
    embedding_names: tuple[str, ...]
    num_users: int
    num_items: int
    lookups: Mapping[str, tuple[str, str]] = FrozenMap()
    table_sizes: Mapping[str, int] = FrozenMap()
    get_tables: Callable | None = None
    set_tables: Callable | None = None
    bilinear: bool = False
    l2_embed: Callable | None = None
    row_params: Mapping[str, tuple[str, ...]] = FrozenMap()
    frozen_params: tuple[str, ...] = ()
    text: Any = None

    def __post_init__(self):
        for name in ("embedding_names", "lookups", "table_sizes", "row_params", "frozen_params"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise TypeError(
                    f"ModelFns.{name} must be a "
                    f"{'mapping' if name in _MAPPINGS else 'tuple of names'}, "
                    f"got {name}={value!r} ({type(value).__name__})."
                )
        # mutable containers would make the instance unhashable (no static jit argument)
        object.__setattr__(self, "embedding_names", tuple(self.embedding_names))
        object.__setattr__(self, "frozen_params", tuple(self.frozen_params))
        lookups = {k: tuple(v) for k, v in dict(self.lookups).items()}
        object.__setattr__(self, "lookups", FrozenMap(lookups))
        object.__setattr__(self, "table_sizes", FrozenMap(self.table_sizes))
        rows = {k: tuple(v) for k, v in dict(self.row_params).items()}
        object.__setattr__(self, "row_params", FrozenMap(rows))
        try:
            _cached_hash(self)
        except TypeError as e:
            raise TypeError(
                f"ModelFns must be hashable to serve as a static jit argument: {e}; pass "
                "functions, ints, bools, tuples and mappings of hashable values."
            ) from None

    def __hash__(self) -> int:
        return _cached_hash(self)


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


@dataclasses.dataclass(frozen=True)
class MergedMethod:
    """``MergedMethod(graphdef, name)(params, *args)`` is
    ``nnx.merge(graphdef, params).name(*args)``.

    A function of ``params`` that, unlike a closure, compares equal for equal graphdefs, so
    a :class:`ModelFns` built twice from equal modules is equal (one compiled step).
    """

    graphdef: nnx.GraphDef
    name: str

    def __call__(self, params: Params, *args, **kwargs):
        return getattr(nnx.merge(self.graphdef, params), self.name)(*args, **kwargs)

    def __hash__(self) -> int:
        return _cached_hash(self)


@dataclasses.dataclass(frozen=True)
class Bound:
    """``Bound(fn, *args)(*more) == fn(*args, *more)``: ``functools.partial`` compared and
    hashed by value (``fn`` and ``args``), for the functions of a :class:`ModelFns`."""

    fn: Callable
    args: tuple

    def __init__(self, fn: Callable, *args):
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "args", args)

    def __call__(self, *more, **kwargs):
        return self.fn(*self.args, *more, **kwargs)

    def __hash__(self) -> int:
        return _cached_hash(self)


def user_item_layout(model) -> dict:
    """The :class:`ModelFns` fields of a model whose ``user``/``pos``/``neg`` embeddings are
    rows of a user and an item table (``model.num_users`` x ``model.num_items``):
    ``embedding_names``, ``num_users``, ``num_items``, ``lookups`` and ``table_sizes``."""
    return {
        "embedding_names": ("user", "pos", "neg"),
        "num_users": model.num_users,
        "num_items": model.num_items,
        "lookups": {"user": ("user", "user"), "pos": ("item", "pos"), "neg": ("item", "neg")},
        "table_sizes": {"user": model.num_users, "item": model.num_items},
    }


def lookup_model_fns(
    graphdef: nnx.GraphDef,
    model,
    *,
    get_tables: Callable,
    set_tables: Callable,
    bilinear: bool = False,
    row_params: Mapping[str, tuple[str, ...]] | None = None,
) -> ModelFns:
    """``ModelFns`` of a module whose ``user``/``pos``/``neg`` embeddings are rows of a user
    and an item table and whose methods are ``embed``, ``score``, ``score_all`` and
    ``score_items`` (MF, NeuMF). Equal graphdefs (and equal ``get_tables``/``set_tables``)
    give equal ``ModelFns``."""
    return ModelFns(
        embed=MergedMethod(graphdef, "embed"),
        score=MergedMethod(graphdef, "score"),
        score_all=MergedMethod(graphdef, "score_all"),
        score_items=MergedMethod(graphdef, "score_items"),
        **user_item_layout(model),
        get_tables=get_tables,
        set_tables=set_tables,
        bilinear=bilinear,
        row_params=row_params or {},
    )
