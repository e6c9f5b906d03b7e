"""The host training loop: epochs, validation, early stopping, checkpoints, resume."""

import dataclasses
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from tqdm.auto import tqdm

from robustjax.train.checkpoint import load_meta, load_pytree, save_pytree
from robustjax.train.sampler import TrainArrays
from robustjax.train.state import init_state
from robustjax.train.step import Objective, epoch_permutation, make_train_epoch
from robustjax.types import Params


@dataclasses.dataclass(frozen=True)
class Phase:
    """An objective used from ``start_epoch`` (0-based) until the next phase starts."""

    start_epoch: int
    objective: Objective | None
    name: str = "train"
    make_epoch: Callable | None = None  # ``make_epoch(tx) -> train_epoch`` (e.g. free AT)


@dataclasses.dataclass(frozen=True)
class FitResult:
    params: Params  # best parameters on validation (final ones if no validation)
    final_params: Params
    history: list[dict]  # one record per epoch: loss, parts, seconds, valid metrics
    best_epoch: int  # 1-based epoch of ``params``
    best_metric: float | None
    epochs_run: int
    compile_seconds: float


def fit(
    *,
    params: Params,
    tx: optax.GradientTransformation,
    phases: Sequence[Phase],
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
) -> FitResult:
    """Trains for ``epochs`` epochs, one compiled call per epoch.

    Randomness: epoch ``e`` uses ``fold_in(key(seed), e)`` on device and a NumPy shuffle
    seeded by ``(seed, e)``, so a run resumed from the checkpoint of epoch ``e`` replays
    epochs ``e+1..`` exactly and ends with the same parameters as an uninterrupted run.

    Model selection and early stopping use ``validate`` (never test data), counted only
    within the last phase (a warm-start phase is not a candidate).
    """
    phases = sorted(phases, key=lambda p: p.start_epoch)
    if not phases or phases[0].start_epoch != 0:
        raise ValueError(
            f"fit: the first phase must start at epoch 0, got {[p.start_epoch for p in phases]}."
        )
    if any(p.start_epoch >= epochs for p in phases[1:]):
        raise ValueError(
            f"fit: a phase starts at or after the last epoch ({epochs}): "
            f"{[(p.name, p.start_epoch) for p in phases]}."
        )
    epoch_fns = [
        p.make_epoch(tx)
        if p.make_epoch is not None
        else make_train_epoch(p.objective, tx, num_negatives=num_negatives, sampler=sampler)
        for p in phases
    ]
    root_key = jax.random.key(seed)
    state = init_state(jax.tree.map(jnp.copy, params), tx)  # epochs donate the state
    best_params, best_metric, best_epoch, bad_evals, history, start = (
        state.params,
        None,
        0,
        0,
        [],
        0,
    )
    ckpt = os.path.join(checkpoint_dir, "state.npz") if checkpoint_dir else None
    best_ckpt = os.path.join(checkpoint_dir, "best.npz") if checkpoint_dir else None
    if resume:
        if not (ckpt and os.path.exists(ckpt)):
            raise FileNotFoundError(f"fit: resume=True but no checkpoint at {ckpt!r}.")
        meta = load_meta(ckpt)
        state = load_pytree(ckpt, state)
        start, history = meta["epoch"], meta["history"]
        best_metric, best_epoch, bad_evals = (
            meta["best_metric"],
            meta["best_epoch"],
            meta["bad_evals"],
        )
        best_params = (
            load_pytree(best_ckpt, state.params) if os.path.exists(best_ckpt) else state.params
        )

    last_phase_start = phases[-1].start_epoch
    compile_seconds = 0.0
    bar = tqdm(
        range(start, epochs),
        desc="train",
        unit="epoch",
        disable=not progress,
        initial=start,
        total=epochs,
        dynamic_ncols=True,
    )
    t_prev = time.perf_counter()
    perm = None
    for epoch in bar:
        phase_idx = max(i for i, p in enumerate(phases) if p.start_epoch <= epoch)
        if epoch == phases[phase_idx].start_epoch and epoch > 0:
            bad_evals = 0
        if perm is None:
            perm = epoch_permutation(data.num_interactions, batch_size, seed=seed, epoch=epoch)
        t0 = time.perf_counter()
        state, metrics = epoch_fns[phase_idx](
            state, perm, data, jax.random.fold_in(root_key, epoch)
        )
        # shuffle the next epoch on the host while the device trains (async dispatch)
        perm = (
            epoch_permutation(data.num_interactions, batch_size, seed=seed, epoch=epoch + 1)
            if epoch + 1 < epochs
            else None
        )
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        now = time.perf_counter()
        if epoch == start or (epoch == phases[phase_idx].start_epoch):
            compile_seconds += now - t0
        record = {
            "epoch": epoch + 1,
            "phase": phases[phase_idx].name,
            **metrics,
            "seconds": now - t_prev,
        }
        t_prev = now
        is_last = epoch + 1 == epochs
        stop = False
        if validate is not None and ((epoch + 1) % eval_every == 0 or is_last):
            valid = validate(state.params)
            record.update({f"valid/{k}": v for k, v in valid.items()})
            if early_metric not in valid:
                raise ValueError(
                    f"fit: early_metric={early_metric!r} is not among the "
                    f"validation metrics {sorted(valid)}."
                )
            if epoch >= last_phase_start:
                if best_metric is None or valid[early_metric] > best_metric:
                    best_metric, best_epoch, bad_evals = valid[early_metric], epoch + 1, 0
                    best_params = jax.tree.map(lambda x: x.copy(), state.params)
                    if best_ckpt:
                        save_pytree(best_ckpt, best_params)
                else:
                    bad_evals += 1
                    stop = patience > 0 and bad_evals >= patience
            t_prev = time.perf_counter()
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        bar.set_postfix(
            {
                k: f"{v:.4f}"
                for k, v in record.items()
                if k == "loss" or k == f"valid/{early_metric}"
            }
        )
        if ckpt and ((epoch + 1) % checkpoint_every == 0 or is_last or stop):
            save_pytree(
                ckpt,
                state,
                {
                    "epoch": epoch + 1,
                    "history": history,
                    "best_metric": best_metric,
                    "best_epoch": best_epoch,
                    "bad_evals": bad_evals,
                },
            )
        if stop:
            break
    bar.close()
    if validate is None or best_metric is None:
        best_params, best_epoch = state.params, len(history)
    return FitResult(
        params=best_params,
        final_params=state.params,
        history=history,
        best_epoch=best_epoch,
        best_metric=best_metric,
        epochs_run=len(history),
        compile_seconds=compile_seconds,
    )
