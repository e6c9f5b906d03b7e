"""Training on (user, item) pairs: the epoch task of pair models and :func:`fit`.

:func:`fit` turns the objective phases of :mod:`robustjax.objectives` into epoch tasks
(one compiled ``lax.scan`` per epoch: :func:`robustjax.train.step.make_train_epoch`, or
free AT) and runs them through the library's one host loop,
:func:`robustjax.train.loop.train_loop`.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from robustjax.data.negatives import TrainArrays
from robustjax.objectives import ObjectivePhase
from robustjax.sharding import is_trivial, replicate, shard_batch, shard_params
from robustjax.train.free import make_free_train_epoch
from robustjax.train.loop import LoopResult, Phase, Selector, train_loop
from robustjax.train.state import init_state
from robustjax.train.step import epoch_permutation, make_train_epoch
from robustjax.types import Params


@dataclasses.dataclass(frozen=True)
class PairEpoch:
    """Epoch task over shuffled training pairs: ``plan`` is the seeded permutation
    (:func:`epoch_permutation`), the call runs ``epoch_fn(state, perm, data, key)``.

    With a ``mesh`` (:mod:`robustjax.sharding`) the call places the state by the partition
    rules (a no-op once placed; a resumed state is placed on its first epoch) and splits
    each batch of ``perm`` over the data axis; ``data`` should be replicated on it."""

    epoch_fn: Callable
    data: TrainArrays
    batch_size: int
    seed: int
    mesh: Any = None  # jax.sharding.Mesh from robustjax.sharding, or None (one device)
    inputs: Any = None  # ObjectivePhase.inputs: passed to every epoch call, not saved

    def plan(self, epoch: int):
        n = self.data.num_interactions
        return epoch_permutation(n, self.batch_size, seed=self.seed, epoch=epoch)

    def __call__(self, state, plan, key):
        if self.mesh is not None:
            state = shard_params(state, self.mesh)
            plan = shard_batch(plan, self.mesh, axis=1)
        if self.inputs is None:
            return self.epoch_fn(state, plan, self.data, key)
        return self.epoch_fn(state, plan, self.data, key, self.inputs)


def pair_epoch_fn(
    phase: ObjectivePhase,
    tx: optax.GradientTransformation,
    *,
    num_negatives: int = 1,
    sampler: str = "uniform",
):
    """The compiled epoch of an objective phase: the fused step, or free AT."""
    if phase.free is None:
        return make_train_epoch(phase.objective, tx, num_negatives=num_negatives, sampler=sampler)
    # FreeAT's fields are make_free_train_epoch's arguments, by name
    free = {f.name: getattr(phase.free, f.name) for f in dataclasses.fields(phase.free)}
    return make_free_train_epoch(tx=tx, sampler=sampler, **free)


@dataclasses.dataclass(frozen=True)
class FitResult:
    params: Params  # best parameters on validation (final ones if no validation)
    final_params: Params
    history: list[dict]  # one record per epoch: loss, parts, seconds, valid metrics
    best_epoch: int  # 1-based epoch of ``params``
    best_metric: float | None
    epochs_run: int
    timings: dict  # see robustjax.train.loop._timings
    warnings: list[str] = dataclasses.field(default_factory=list)  # growing loss terms

    @property
    def compile_seconds(self) -> float:  # the older name of first_epoch_seconds
        return self.timings["first_epoch_seconds"]

    @classmethod
    def from_loop(cls, result: LoopResult, selector: str = "model") -> "FitResult":
        """The result of a :func:`train_loop` run whose model ``selector`` picked ``params``."""
        best = result.selected[selector]
        return cls(
            params=best.params,
            final_params=result.state.params,
            history=result.history,
            best_epoch=best.epoch,
            best_metric=best.metric,
            epochs_run=result.epochs_run,
            timings=result.timings,
            warnings=result.warnings,
        )


def fit(
    *,
    params: Params,
    tx: optax.GradientTransformation,
    phases: Sequence[ObjectivePhase],
    data: TrainArrays,
    epochs: int,
    batch_size: int,
    seed: int,
    validate: Callable[[Params], dict[str, float]] | None = None,
    early_metric: str = "ndcg@20",
    eval_every: int = 10,
    patience: int = 0,
    num_negatives: int = 1,
    sampler: str = "uniform",
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    strict: bool = False,
    mesh: Any = None,
) -> FitResult:
    """Trains a pair model for ``epochs`` epochs, one compiled call per epoch.

    Epoch ``e`` uses ``fold_in(key(seed), e)`` on device and a NumPy shuffle seeded by
    ``(seed, e)`` (see :func:`robustjax.train.loop.train_loop` for resume and selection).
    ``mesh`` (:func:`robustjax.sharding.make_mesh`; None or one device: unsharded) shards
    the tables over its model axis and the batches over its data axis; the results equal
    the one-device run up to float summation order.
    """
    data = replicate(data, mesh)
    loop_phases = [
        Phase(
            p.start_epoch,
            PairEpoch(
                pair_epoch_fn(p, tx, num_negatives=num_negatives, sampler=sampler),
                data,
                batch_size,
                seed,
                None if is_trivial(mesh) else mesh,
                p.inputs,
            ),
            p.name,
        )
        for p in phases
    ]
    result = train_loop(
        state=shard_params(init_state(jax.tree.map(jnp.copy, params), tx), mesh),
        phases=loop_phases,
        epochs=epochs,
        seed=seed,
        validate=None if validate is None else (lambda state: validate(state.params)),
        selectors={"model": Selector(early_metric)},
        eval_every=eval_every,
        patience=patience,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        resume=resume,
        progress=progress,
        on_epoch=on_epoch,
        strict=strict,
    )
    return FitResult.from_loop(result)
