"""Training on the rows a batch touches: a row view of the parameters, lazy optimizers.

For a model whose embeddings are plain table lookups (``ModelFns.lookups``, with the
parameter leaves of each table declared in ``ModelFns.row_params``: MF, NeuMF), a step

1. collects, per table, the ids that the batch looks up (``batch[key]`` for every lookup of
   that table) and dedupes them into a fixed number of slots
   (:func:`robustjax.train.sparse.dedupe_ids`);
2. builds a *view* of the parameters in which each table leaf is replaced by its rows at
   those slots, and a batch whose ids are remapped to slot positions;
3. differentiates the unchanged objective with respect to the view, so a table's gradient
   is ``[slots, D]`` row gradients (duplicate lookups summed by autodiff), never a dense
   zero-filled table;
4. hands ``SparseRows(slots, row_grads)`` for table leaves and dense gradients for the
   rest (NeuMF's MLP) to a lazy optimizer (:mod:`robustjax.train.sparse`) through
   :func:`robustjax.train.step.apply_gradients`.

The objective sees the same embeddings (the view's rows are the table's rows), so every
term that reads the parameters only through ``embed``/``score`` gives the same loss: the
clean losses, the batch-level L2 (``train.l2``), APR (per-lookup, pair, span and
published: the last one's per-row sums run over ``table_sizes`` segments of which only the
view's are non-empty, the same values), PGD-AT, fast AT, TRADES, VAT and sample injection
(``tests/train/test_sparse_optimizer.py`` checks each on the view against the full
parameters). What would touch whole tables is refused by :func:`sparse_refusal`:
``train.weight_decay`` (a dense L2 through the optimizer), ``adamw``, global-norm clipping,
and models without declared row parameters (LightGCN). Free AT phases take dense gradients
through the same lazy optimizer: dense leaves get the dense update (exact dense Adam there).

Cost: a dense step reads and writes every row of the tables and of both moments; a sparse
step gathers and scatters the looked-up rows only, but XLA:CPU's row gathers and scatters
cost ~50-100 ns per 64-float row, so it wins only when the tables are several times
larger than a batch's lookups. Measured side by side (``benchmarks/sparse_optimizer.py``,
2-core CPU, BPR-MF d64, batch 2048, 6,144 lookups per step; two runs, record in
``benchmarks/results/sparse_optimizer-20261203.json``), lazy over dense epoch time:
2.1-2.3x at 2,625 table rows (ml-100k-split), 1.6x at 10k, 1.2-1.3x at 20k, 0.94-1.09x at
30k, 0.82-0.91x at 40k, 0.67-0.69x at 60k and 0.59x at 70,839 rows (29,858 users x 40,981
items: 0.88 s against 1.49 s, and 1.65 s against 2.82 s, per epoch in the two runs).
``train.sparse_updates=auto`` therefore goes sparse from ``AUTO_ROWS_PER_LOOKUP`` (6)
table rows per lookup of a batch (``batch_size * (2 + num_negatives)``): 36,864 rows at
the defaults; see :func:`auto_min_rows`.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from robustjax.models.base import ModelFns
from robustjax.train.checkpoint import leaf_name
from robustjax.train.sparse import LAZY_OPTIMIZERS, SparseRows, dedupe_ids, make_lazy_optimizer

SPARSE_UPDATES = ("auto", "on", "off")
# ``auto`` trains row-sparse from this many table rows (all tables) per lookup of a batch:
# the measured crossover of dense and lazy Adam epochs (module docstring)
AUTO_ROWS_PER_LOOKUP = 6


def auto_min_rows(batch_size: int, num_negatives: int = 1) -> int:
    """Table rows (all tables together) from which ``train.sparse_updates=auto`` trains
    row-sparse: ``AUTO_ROWS_PER_LOOKUP`` per lookup of a batch (``batch_size`` users,
    positives and ``num_negatives`` negatives each); 36,864 at batch 2048, one negative."""
    return int(AUTO_ROWS_PER_LOOKUP * batch_size * (2 + num_negatives))


class RowSparseOptimizer(NamedTuple):
    """A lazy optimizer with the model layout it updates sparsely.

    ``init``/``update`` as an optax ``GradientTransformation``;
    :func:`robustjax.train.step.make_train_epoch` sees ``fns`` and differentiates with
    respect to the row view (:func:`row_value_and_grad`) instead of the whole parameters.
    """

    init: Callable
    update: Callable
    fns: ModelFns


def _table_keys(fns: ModelFns) -> dict[str, tuple[str, ...]]:
    """``table -> batch keys`` looked up in it (each key in one table only)."""
    keys: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for name, (table, key) in fns.lookups.items():
        if owner.setdefault(key, table) != table:
            raise ValueError(
                f"row-sparse training: batch key {key!r} is looked up in tables "
                f"{owner[key]!r} and {table!r} (lookup {name!r}); a key's ids must index one "
                "table. Train with train.sparse_updates=off."
            )
        if key not in keys.setdefault(table, []):
            keys[table].append(key)
    return {t: tuple(k) for t, k in keys.items()}


def check_row_model(fns: ModelFns, params=None) -> None:
    """Raises ``ValueError`` unless ``fns`` declares row parameters for every looked-up
    table (and, given ``params``, names existing leaves with as many rows as the table)."""
    tables = {t for t, _ in fns.lookups.values()}
    if not fns.lookups or not fns.row_params or set(fns.row_params) != tables:
        raise ValueError(
            "row-sparse training needs a model whose embeddings are plain table lookups with "
            f"their parameters declared (ModelFns.lookups tables {sorted(tables)}, "
            f"ModelFns.row_params {dict(fns.row_params)}): MF and NeuMF qualify; LightGCN "
            "propagates over whole tables and does not. Set train.sparse_updates=off."
        )
    _table_keys(fns)
    if params is None:
        return
    shapes = {
        leaf_name(p).removesuffix("/value"): x.shape
        for p, x in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    for table, names in fns.row_params.items():
        for name in names:
            rows = shapes.get(name, (None,))[0]
            if rows != fns.table_sizes[table]:
                raise ValueError(
                    f"ModelFns.row_params[{table!r}] names {name!r}, which is "
                    f"{'not a parameter' if name not in shapes else f'of shape {shapes[name]}'}"
                    f"; expected a leaf with {fns.table_sizes[table]} rows among "
                    f"{sorted(shapes)}."
                )


def row_view(fns: ModelFns, params, batch: dict) -> tuple[Any, dict, dict[str, jax.Array]]:
    """``(view, view_batch, slots)``: the parameters with each table leaf replaced by its
    rows at ``slots[table]`` (int32 ``[C]``, ``C`` the number of ids the batch looks up in
    it; padding slots hold the row count and read zeros), and the batch with those ids
    remapped to slot positions. ``objective(view, view_batch)`` equals
    ``objective(params, batch)`` for objectives that read tables only through lookups."""
    slots, vbatch = {}, dict(batch)
    for table, keys in _table_keys(fns).items():
        ids = jnp.concatenate([batch[k].reshape(-1) for k in keys])
        slots[table], pos = dedupe_ids(ids, fns.table_sizes[table])
        start = 0
        for k in keys:
            n = batch[k].size
            vbatch[k] = pos[start : start + n].reshape(batch[k].shape).astype(batch[k].dtype)
            start += n
    owner = {name: t for t, names in fns.row_params.items() for name in names}

    def gather(path, x):
        table = owner.get(leaf_name(path).removesuffix("/value"))
        return x if table is None else x.at[slots[table]].get(mode="fill", fill_value=0)

    return jax.tree_util.tree_map_with_path(gather, params), vbatch, slots


def row_value_and_grad(fns: ModelFns):
    """``value_and_grad(objective, params, batch, *, key) -> ((loss, parts), grads)`` whose
    table leaves are :class:`SparseRows` of the batch's rows (see the module docstring)."""
    owner = {name: t for t, names in fns.row_params.items() for name in names}

    def value_and_grad(objective, params, batch, *, key):
        view, vbatch, slots = row_view(fns, params, batch)
        out, grads = jax.value_and_grad(objective, has_aux=True)(view, vbatch, key=key)

        def rows(path, g):
            table = owner.get(leaf_name(path).removesuffix("/value"))
            return g if table is None else SparseRows(slots[table], g, unique=True)

        return out, jax.tree_util.tree_map_with_path(rows, grads)

    return value_and_grad


def sparse_refusal(train_cfg, fns: ModelFns | None = None) -> str | None:
    """Why row-sparse training cannot run this ``TrainConfig`` (and, given, this model);
    None when it can."""
    if fns is not None:
        try:
            check_row_model(fns)
        except ValueError as e:
            return str(e)
    if train_cfg.optimizer not in LAZY_OPTIMIZERS:
        return (
            f"train.optimizer={train_cfg.optimizer!r} has no row-sparse version (expected one "
            f"of {LAZY_OPTIMIZERS}; adamw's decoupled decay moves every row at every step)."
        )
    if train_cfg.weight_decay:
        return (
            f"train.weight_decay={train_cfg.weight_decay!r} is a dense L2 on every parameter "
            "at every step; row-sparse updates would apply it to the touched rows only (another "
            "objective). Use the batch-level train.l2 instead, or train.sparse_updates=off."
        )
    if train_cfg.clip_norm:
        return (
            f"train.clip_norm={train_cfg.clip_norm!r} clips the global gradient norm, which "
            "the row-sparse optimizers do not implement; set train.clip_norm=0 or "
            "train.sparse_updates=off."
        )
    return None


def use_sparse_updates(train_cfg, fns: ModelFns) -> bool:
    """Resolves ``train.sparse_updates``: ``off`` never, ``on`` always (an error naming the
    reason when the configuration cannot), ``auto`` when it can and the tables hold at
    least :func:`auto_min_rows` rows."""
    mode = train_cfg.sparse_updates
    if mode not in SPARSE_UPDATES:
        raise ValueError(
            f"train.sparse_updates={mode!r} is unknown; expected one of {SPARSE_UPDATES}."
        )
    if mode == "off":
        return False
    reason = sparse_refusal(train_cfg, fns)
    if mode == "on":
        if reason is not None:
            raise ValueError(f"train.sparse_updates='on' cannot run: {reason}")
        return True
    rows = sum(fns.table_sizes.values())
    return reason is None and rows >= auto_min_rows(train_cfg.batch_size, train_cfg.num_negatives)


def row_sparse_optimizer(
    fns: ModelFns, name: str, learning_rate: float, *, beta2: float = 0.999
) -> RowSparseOptimizer:
    """The lazy ``name`` optimizer (:func:`make_lazy_optimizer`) bound to ``fns``."""
    check_row_model(fns)
    tx = make_lazy_optimizer(name, learning_rate, beta2=beta2)

    def init(params):
        check_row_model(fns, params)
        return tx.init(params)

    return RowSparseOptimizer(init, tx.update, fns)


def with_frozen(tx: optax.GradientTransformation, frozen: tuple[str, ...]):
    """``tx`` on every parameter leaf except those named in ``frozen`` (checkpoint names
    without ``/value``, ``ModelFns.frozen_params``), which get ``optax.set_to_zero``: no
    update, no optimizer state, whatever ``tx`` does (weight decay included)."""
    if not frozen:
        return tx
    frozen = frozenset(frozen)

    def labels(params):
        names = {leaf_name(p).removesuffix("/value") for p, _ in _leaves(params)}
        if not frozen <= names:
            raise ValueError(
                f"with_frozen: frozen parameters {sorted(frozen - names)} are not leaves of "
                f"the parameters (leaves: {sorted(names)})."
            )
        return jax.tree_util.tree_map_with_path(
            lambda p, _: "frozen" if leaf_name(p).removesuffix("/value") in frozen else "train",
            params,
        )

    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def _leaves(params):
    return jax.tree_util.tree_flatten_with_path(params)[0]


def optimizer_for(train_cfg, fns: ModelFns, dense: Callable[[], optax.GradientTransformation]):
    """The optimizer a run trains with: ``dense()`` (leaving ``fns.frozen_params``
    untouched, :func:`with_frozen`) or, when :func:`use_sparse_updates` says so, the
    row-sparse version of ``train.optimizer``."""
    if not use_sparse_updates(train_cfg, fns):
        return with_frozen(dense(), fns.frozen_params)
    return row_sparse_optimizer(
        fns, train_cfg.optimizer, train_cfg.learning_rate, beta2=train_cfg.beta2
    )
