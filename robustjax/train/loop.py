"""The host training loop, the only one: epochs, validation, selection, checkpoints, resume.

Every model family (pair models, free AT, IRGAN, SASRec, BERT4Rec) trains through
:func:`train_loop`. What differs between them is an :class:`EpochTask`: ``plan(epoch)``
does the host-side work of an epoch (a seeded shuffle into batches) and
``task(state, plan, key)`` runs it on device, usually as one compiled ``lax.scan``. The loop
prepares epoch ``e + 1``'s plan while the device runs epoch ``e`` (async dispatch).

Randomness: epoch ``e`` (0-based) gets the key ``fold_in(key(seed), e)`` and plans are
seeded by the epoch, so a run resumed from the checkpoint of epoch ``e`` replays epochs
``e + 1, ...`` exactly and ends bit-identical to an uninterrupted run.

Checkpoints: ``state.npz`` holds, as one file written atomically (see
:mod:`robustjax.train.checkpoint`), the training state, the best parameters of every
selector so far and the progress (epoch, history, selection); ``best_<name>.npz`` are copies
for readers. A crash at any point leaves the previous checkpoint or the new one.

Divergence: after every epoch the loss terms and parameters are checked on the host
(:mod:`robustjax.train.divergence`): a non-finite value raises :class:`TrainingDiverged`
before the epoch is validated, selected or checkpointed; a term that grew by more than
``GROWTH_FACTOR`` since its phase's first epoch gets a warning in that epoch's record and
in :attr:`LoopResult.warnings` (with ``strict=True`` it raises).
"""

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from robustjax.train.checkpoint import load_meta, load_pytree, save_pytree
from robustjax.train.divergence import (
    GROWTH_FACTOR,
    GROWTH_FLOOR,
    TrainingDiverged,
    check_epoch,
)


class EpochTask(Protocol):
    """One phase's epoch: host plan, then device work."""

    def plan(self, epoch: int) -> Any:
        """Host-side work of epoch ``epoch`` (0-based), e.g. the shuffled batches."""

    def __call__(self, state: Any, plan: Any, key: jax.Array) -> tuple[Any, dict]:
        """Runs the epoch; returns the new state and a dict of scalar epoch means."""


@dataclasses.dataclass(frozen=True)
class Phase:
    """An epoch task used from ``start_epoch`` (0-based) until the next phase starts."""

    start_epoch: int
    task: EpochTask
    name: str = "train"


@dataclasses.dataclass(frozen=True)
class Selector:
    """Model selection on validation: keeps the state's ``params_of(state)`` with the best
    ``metric`` (a key of the validation dict), among validations of the last phase."""

    metric: str
    params_of: Callable[[Any], Any] = lambda state: state.params


@dataclasses.dataclass(frozen=True)
class Selected:
    params: Any
    epoch: int  # 1-based epoch of ``params`` (the last epoch when nothing was validated)
    metric: float | None


@dataclasses.dataclass(frozen=True)
class LoopResult:
    state: Any  # the final training state
    selected: dict[str, Selected]  # one entry per selector
    history: list[dict]  # one record per epoch: metrics, seconds, validation metrics
    epochs_run: int
    timings: dict  # see :func:`_timings`
    warnings: list[str] = dataclasses.field(default_factory=list)  # the whole run's

    @property
    def compile_seconds(self) -> float:  # the older name of first_epoch_seconds
        return self.timings["first_epoch_seconds"]


@dataclasses.dataclass
class _Progress:
    """What a checkpoint stores besides the state (JSON)."""

    epoch: int = 0
    history: list = dataclasses.field(default_factory=list)
    best: dict = dataclasses.field(default_factory=dict)  # name -> [metric, epoch]
    bad_evals: int = 0
    compile_epochs: list = dataclasses.field(default_factory=list)  # 1-based, incl. compiling
    phase_start: dict = dataclasses.field(default_factory=dict)  # "phase/term" -> |value|
    warnings: list = dataclasses.field(default_factory=list)

    def begin_epoch(self, epoch: int, phase: Phase, first_epoch: int) -> None:
        """Epoch ``epoch`` (0-based) of ``phase`` starts: a new phase restarts patience;
        the epochs that compile (this process's first, each phase's first) are noted."""
        if epoch == phase.start_epoch and epoch > 0:
            self.bad_evals = 0
        if epoch in (first_epoch, phase.start_epoch):
            self.compile_epochs.append(epoch + 1)


def train_loop(
    *,
    state: Any,
    phases: Sequence[Phase],
    epochs: int,
    seed: int,
    validate: Callable[[Any], dict[str, float]] | None = None,
    selectors: Mapping[str, Selector] | None = None,
    eval_every: int = 10,
    validate_first: bool = False,
    patience: int = 0,
    time_budget_s: float | None = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
    on_epoch: Callable[[dict], None] | None = None,
    strict: bool = False,
) -> LoopResult:
    """Trains ``state`` for ``epochs`` epochs through ``phases``.

    Args:
      state: the initial training state (any pytree; epochs may donate it, so it is copied).
      phases: epoch tasks by start epoch; the first starts at 0.
      validate: ``validate(state) -> {metric: value}`` on validation data, never test; run
        every ``eval_every`` epochs, after the last epoch, and when the time budget runs
        out. Record keys get the prefix ``valid/``.
      selectors: named model selections (default: one, ``"model"``, on ``ndcg@20``);
        only validations in the last phase are candidates (a warm-up is not).
      validate_first: also validate the initial state (logged as epoch 0, not a candidate).
      patience: stop after this many validations without improvement of the first
        selector (0 = never).
      time_budget_s: stop after the epoch in which the training seconds reach it.
      checkpoint_dir: writes ``state.npz`` (every ``checkpoint_every`` epochs and at the
        end) and ``best_<name>.npz`` for each selector; ``resume`` continues from them.
      on_epoch: called with each epoch's record (e.g. to append it to ``history.jsonl``).
      strict: a loss term growing by more than ``GROWTH_FACTOR`` raises instead of warning.

    Raises:
      TrainingDiverged: a loss term or parameter is non-finite after an epoch (or, with
        ``strict``, a term grew by more than ``GROWTH_FACTOR``).
    """
    phases = _check_phases(phases, epochs, eval_every)
    selectors = dict(selectors or {"model": Selector("ndcg@20")})
    paths = _checkpoint_paths(checkpoint_dir, selectors)
    state, prog, best_params = _initial(state, paths, selectors, resume)
    selection = _Selection(selectors, paths, prog, best_params, patience)
    root_key = jax.random.key(seed)
    log = functools.partial(_log, prog, on_epoch=on_epoch)
    if validate is not None and validate_first and prog.epoch == 0:
        record = {"epoch": 0, "phase": "initial"}
        selection.update(record, validate(state), state, 0, candidate=False)
        log(record)
    first_epoch = prog.epoch
    train_seconds = sum(r.get("seconds", 0.0) for r in prog.history)
    bar = tqdm(range(prog.epoch, epochs), desc=desc, unit="epoch", disable=not progress,
               initial=prog.epoch, total=epochs, dynamic_ncols=True)  # fmt: skip
    plan = None
    for epoch in bar:
        phase = _phase_at(phases, epoch)
        prog.begin_epoch(epoch, phase, first_epoch)
        state, record, plan = _run_epoch(phases, phase, epoch, epochs, state, plan, root_key)
        check_epoch(prog, record, state, phase.name, epoch, strict, log)
        train_seconds += record["seconds"]
        stop = time_budget_s is not None and train_seconds >= time_budget_s
        is_last = epoch + 1 == epochs or stop
        if validate is not None and ((epoch + 1) % eval_every == 0 or is_last):
            candidate = epoch >= phases[-1].start_epoch
            stop |= selection.update(record, validate(state), state, epoch + 1, candidate)
        prog.epoch = epoch + 1
        log(record)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k == "loss" or "valid/" in k})
        if paths and ((epoch + 1) % checkpoint_every == 0 or is_last or stop):
            _save_state(paths["state"], state, selection.best_params, prog)
        if stop:
            break
    bar.close()
    return _loop_result(state, selection, prog, first_epoch)


def _initial(state, paths: dict[str, str], selectors, resume: bool):
    """``(state, progress, best parameters)`` to start from: a copy of ``state`` (epoch
    tasks donate their state) with fresh progress, or the checkpoint's with ``resume``."""
    state = jax.tree.map(jnp.copy, state)
    if resume:
        return _restore(paths, state, selectors)
    return state, _Progress(), {}


def _phase_at(phases: Sequence[Phase], epoch: int) -> Phase:
    """The phase that runs epoch ``epoch`` (0-based): the last one started by then."""
    return max((p for p in phases if p.start_epoch <= epoch), key=lambda p: p.start_epoch)


def _run_epoch(phases, phase: Phase, epoch: int, epochs: int, state, plan, root_key):
    """Runs epoch ``epoch`` of ``phase`` on ``plan`` (None: made now) with the key
    ``fold_in(root_key, epoch)``; returns the new state, the epoch's record (its metrics
    and seconds) and the next epoch's plan (None after the last epoch)."""
    plan = phase.task.plan(epoch) if plan is None else plan
    t0 = time.perf_counter()
    state, metrics = phase.task(state, plan, jax.random.fold_in(root_key, epoch))
    # the next epoch's host work overlaps the device's (async dispatch)
    plan = _phase_at(phases, epoch + 1).task.plan(epoch + 1) if epoch + 1 < epochs else None
    record = {"epoch": epoch + 1, "phase": phase.name}
    record.update({k: float(v) for k, v in jax.device_get(metrics).items()})
    record["seconds"] = time.perf_counter() - t0
    return state, record, plan


def _save_state(path: str, state, best_params: dict, prog: _Progress) -> None:
    """``state.npz``: the training state, the best parameters so far and the progress."""
    save_pytree(
        path,
        {"state": state, "best": best_params},
        {**dataclasses.asdict(prog), "best_in_state": True},
    )


def _loop_result(state, selection: "_Selection", prog: _Progress, first_epoch: int) -> LoopResult:
    return LoopResult(
        state,
        selection.result(state),
        prog.history,
        prog.epoch,
        _timings(prog, first_epoch),
        list(prog.warnings),
    )


def _timings(prog: _Progress, first_epoch: int) -> dict:
    """``train_seconds`` and ``epoch_seconds_median`` cover the whole run (also the epochs
    of an earlier process, when resumed); ``process_*`` this process only.
    ``first_epoch_seconds``: this process's epochs that include compilation (its first
    epoch and the first epoch of each later phase), validation excluded."""
    seconds = {r["epoch"]: r["seconds"] for r in prog.history if "seconds" in r}
    compiled = set(prog.compile_epochs)
    steady = [
        r["seconds"]
        for r in prog.history
        if "seconds" in r
        and r["epoch"] not in compiled
        and not any(k.startswith("valid/") for k in r)
    ]
    mine = {e: s for e, s in seconds.items() if e > first_epoch}
    out = {
        "train_seconds": float(sum(seconds.values())),
        "process_train_seconds": float(sum(mine.values())),
        "first_epoch_seconds": float(sum(s for e, s in mine.items() if e in compiled)),
        "process_epochs": len(mine),
        "resumed_at_epoch": first_epoch,
    }
    # fallbacks for short runs: epochs without compilation, then every epoch
    steady = (
        steady or [s for e, s in seconds.items() if e not in compiled] or list(seconds.values())
    )
    if steady:
        out["epoch_seconds_median"] = float(np.median(steady))
    return out


def _check_phases(phases, epochs: int, eval_every: int) -> list[Phase]:
    phases = sorted(phases, key=lambda p: p.start_epoch)
    if not phases or phases[0].start_epoch != 0:
        raise ValueError(
            f"train_loop: the first phase must start at epoch 0, got "
            f"{[p.start_epoch for p in phases]}."
        )
    if any(p.start_epoch >= epochs for p in phases[1:]):
        raise ValueError(
            f"train_loop: a phase starts at or after the last epoch ({epochs}): "
            f"{[(p.name, p.start_epoch) for p in phases]}."
        )
    for name, value in (("epochs", epochs), ("eval_every", eval_every)):
        if value < 1:
            raise ValueError(f"train_loop: {name} must be >= 1, got {value!r}.")
    return phases


class _Selection:
    """The best validation result of each selector so far (and early stopping on the
    first one); best parameters are copied and written to ``best_<name>.npz``."""

    def __init__(self, selectors, paths, prog: _Progress, best_params: dict, patience: int):
        self.selectors, self.paths, self.prog = selectors, paths, prog
        self.best_params, self.patience = best_params, patience

    def update(self, record: dict, valid: dict, state, epoch: int, candidate: bool) -> bool:
        """Logs ``valid`` into ``record``; returns whether patience ran out."""
        record.update({f"valid/{k}": v for k, v in valid.items()})
        improved = False
        for name, sel in self.selectors.items():
            if sel.metric not in valid:
                raise ValueError(
                    f"train_loop: selection metric {sel.metric!r} is not among the "
                    f"validation metrics {sorted(valid)}."
                )
            old = self.prog.best.get(name)
            if candidate and (old is None or valid[sel.metric] > old[0]):
                self.prog.best[name] = [valid[sel.metric], epoch]
                self.best_params[name] = jax.tree.map(jnp.copy, sel.params_of(state))
                if self.paths:
                    save_pytree(self.paths[name], self.best_params[name])
                improved |= name == next(iter(self.selectors))
        if not candidate:
            return False
        self.prog.bad_evals = 0 if improved else self.prog.bad_evals + 1
        return self.patience > 0 and self.prog.bad_evals >= self.patience

    def result(self, state) -> dict[str, Selected]:
        out = {}
        for name, sel in self.selectors.items():
            if name in self.best_params:
                metric, epoch = self.prog.best[name]
                out[name] = Selected(self.best_params[name], epoch, metric)
            else:  # no candidate validation: the final parameters
                out[name] = Selected(sel.params_of(state), self.prog.epoch, None)
        return out


def _log(prog: _Progress, record: dict, on_epoch) -> None:
    prog.history.append(record)
    if on_epoch is not None:
        on_epoch(record)


def _checkpoint_paths(checkpoint_dir, selectors) -> dict[str, str]:
    if not checkpoint_dir:
        return {}
    paths = {"state": os.path.join(checkpoint_dir, "state.npz")}
    for name in selectors:
        if name == "state":
            raise ValueError("train_loop: 'state' is reserved; name the selector otherwise.")
        paths[name] = os.path.join(checkpoint_dir, f"best_{name}.npz")
    return paths


def _restore(paths, state, selectors):
    if not paths or not os.path.exists(paths["state"]):
        raise FileNotFoundError(
            f"train_loop: resume=True but no checkpoint at {paths.get('state')!r}."
        )
    meta = load_meta(paths["state"])
    if meta.pop("best_in_state", False):  # one file: state, best parameters, progress
        prog = _Progress(**meta)
        template = {
            "state": state,
            "best": {n: sel.params_of(state) for n, sel in selectors.items() if n in prog.best},
        }
        saved = load_pytree(paths["state"], template)
        return saved["state"], prog, dict(saved["best"])
    prog = _Progress(**meta)  # the older format: best parameters in best_<name>.npz
    state = load_pytree(paths["state"], state)
    best_params = {
        name: load_pytree(paths[name], sel.params_of(state))
        for name, sel in selectors.items()
        if name in prog.best and os.path.exists(paths[name])
    }
    return state, prog, best_params


__all__ = [  # TrainingDiverged and the growth constants belong to the loop's interface
    "GROWTH_FACTOR",
    "GROWTH_FLOOR",
    "EpochTask",
    "LoopResult",
    "Phase",
    "Selected",
    "Selector",
    "TrainingDiverged",
    "train_loop",
]
