"""Training runs of sequential models: train, select on validation, test, save, reload.

A run folder holds ``metrics.json``, ``history.jsonl`` and ``checkpoint/params.npz`` with a
JSON sidecar (``params.json``) naming the model class, its constructor arguments and how
to rebuild the data (path or synthetic arguments, ``max_len``, seed), so robustness sweeps
(``robustjax sweep --checkpoint RUN``) reload a trained model without its config.
"""

import dataclasses
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from robustjax.data.table import InteractionTable
from robustjax.models.sasrec import SASRec
from robustjax.seq import (
    SequenceData,
    bucketed_batches,
    history_lengths,
    length_buckets,
    make_epoch_fn,
    make_eval_fn,
    make_sequence_data,
)
from robustjax.seq_adv import SeqAdvConfig
from robustjax.train.checkpoint import load_meta, load_pytree, save_pytree
from robustjax.train.state import init_state

SEQUENCE_MODELS = {"sasrec": SASRec}


def register_sequence_model(name: str, cls) -> None:
    """Makes ``load_sequence_run`` able to rebuild checkpoints of model class ``cls``."""
    SEQUENCE_MODELS[name] = cls


def _model_class(name: str):
    if name not in SEQUENCE_MODELS and name == "bert4rec":
        from robustjax.models.bert4rec import BERT4Rec

        register_sequence_model("bert4rec", BERT4Rec)
    if name not in SEQUENCE_MODELS:
        raise ValueError(f"unknown sequence model {name!r}; known: {sorted(SEQUENCE_MODELS)}.")
    return SEQUENCE_MODELS[name]


def load_table(data_spec: dict) -> InteractionTable:
    """The interaction table of ``{"path": PATH}`` or ``{"synthetic": {kwargs}}``."""
    if data_spec.get("synthetic") is not None:
        from robustjax.data import synthetic

        return synthetic(**data_spec["synthetic"])
    from robustjax.data import load

    return load(data_spec["path"])


def save_sequence_run(
    out_dir: str,
    params,
    *,
    model: str,
    model_kwargs: dict,
    data_spec: dict,
    max_len: int,
    seed: int,
    extra: dict | None = None,
) -> str:
    """Writes ``out_dir/checkpoint/params.npz`` (+ ``params.json``); returns the path."""
    path = os.path.join(out_dir, "checkpoint", "params.npz")
    save_pytree(
        path,
        params,
        {
            "model": model,
            "model_kwargs": model_kwargs,
            "data": data_spec,
            "max_len": max_len,
            "seed": seed,
            **(extra or {}),
        },
    )
    return path


@dataclasses.dataclass(frozen=True)
class SequenceRun:
    """A reloaded sequential run: ``nnx.merge(graphdef, params)`` is the trained model."""

    path: str
    graphdef: nnx.GraphDef
    params: object
    data: SequenceData
    meta: dict

    @property
    def model(self):
        return nnx.merge(self.graphdef, self.params)


def is_sequence_run(run_dir: str) -> bool:
    path = os.path.join(run_dir, "checkpoint", "params.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return "model_kwargs" in json.load(f)


def load_sequence_run(run_dir: str, *, data: SequenceData | None = None) -> SequenceRun:
    """Rebuilds the model and (unless given) the leave-one-out data of a saved run."""
    path = os.path.join(run_dir, "checkpoint", "params.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"load_sequence_run: {run_dir!r} has no checkpoint/params.npz; "
            f"is it the --out folder of a sequential training run?"
        )
    meta = load_meta(path)
    cls = _model_class(meta["model"])
    model = cls(**meta["model_kwargs"], rngs=nnx.Rngs(0))
    graphdef, template = nnx.split(model, nnx.Param)
    params = load_pytree(path, template)
    if data is None:
        data = make_sequence_data(
            load_table(meta["data"]), max_len=meta["max_len"], seed=meta["seed"]
        )
    elif data.num_items != meta["model_kwargs"]["num_items"]:
        raise ValueError(
            f"load_sequence_run: {run_dir!r} was trained on "
            f"{meta['model_kwargs']['num_items']} items, the data has "
            f"{data.num_items}."
        )
    return SequenceRun(run_dir, graphdef, params, data, meta)


def run_sasrec(
    *,
    data_path: str | None,
    out_dir: str,
    epochs: int = 200,
    max_len: int = 200,
    dim: int = 50,
    num_blocks: int = 2,
    num_heads: int = 1,
    dropout: float = 0.2,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    eval_every: int = 20,
    time_budget_s: float | None = None,
    progress: bool = True,
    table: InteractionTable | None = None,
    synthetic: dict | None = None,
    adv: SeqAdvConfig | None = None,
    init_from: str | None = None,
    name: str = "sasrec",
    buckets: int = 1,
) -> dict:
    """Trains SASRec (optionally adversarially) and evaluates it (sampled, 100 negatives).

    Each epoch shuffles the users on the host (``default_rng((seed, epoch))``) and drops the
    last incomplete batch. ``buckets > 1`` batches users of similar history length together
    and trains each bucket on its own static length (``robustjax.seq.bucketed_batches``): the
    same model and loss per batch (padding is masked, positions right-aligned), about half
    the work at max_len 200 on ML-1M, whose median history is under 100 items; the buckets
    run in a seeded random order each epoch, one compiled epoch function per bucket. Validation runs every ``eval_every`` epochs (and after the last);
    the best-validation (NDCG@10) parameters are tested and saved. With ``adv``, epochs
    before ``adv.start_epoch`` train on the clean loss (one compiled epoch function per
    phase) and only adversarial epochs are eligible for selection. Stops early once
    ``time_budget_s`` of training has elapsed (after the current epoch).

    ``init_from``: a run folder whose saved parameters initialise the model (fine-tuning,
    e.g. adversarial training of a trained SASRec, as APR fine-tunes a trained BPR-MF); the
    model settings and data must match.

    Data: ``synthetic`` (kwargs of ``robustjax.data.synthetic``), else ``table`` (not
    reloadable by sweeps), else ``load(data_path)``.

    Writes ``out_dir/metrics.json``, ``history.jsonl`` and ``checkpoint/params.npz``.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    data_spec = {"synthetic": synthetic} if synthetic is not None else {"path": data_path}
    if table is None:
        table = load_table(data_spec)
    data = make_sequence_data(table, max_len=max_len, seed=seed)
    batch_size = min(batch_size, data.num_users)
    model_kwargs = {
        "num_items": data.num_items,
        "max_len": max_len,
        "dim": dim,
        "num_blocks": num_blocks,
        "num_heads": num_heads,
        "dropout": dropout,
    }
    model = SASRec(**model_kwargs, rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(model, nnx.Param)
    if init_from is not None:
        prev = load_sequence_run(init_from, data=data)
        if prev.meta["model_kwargs"] != model_kwargs:
            raise ValueError(
                f"run_sasrec: init_from={init_from!r} holds a model with "
                f"{prev.meta['model_kwargs']}, this run builds {model_kwargs}."
            )
        params = prev.params
    tx = optax.adam(lr, b1=0.9, b2=0.98)
    state = init_state(params, tx)
    adv_on = adv is not None and adv.enabled
    if adv_on and adv.start_epoch > epochs:
        raise ValueError(
            f"run_sasrec: adv.start_epoch={adv.start_epoch} is after the last "
            f"epoch (epochs={epochs}); no adversarial epoch would run."
        )
    clean_fn = make_epoch_fn(graphdef, tx, data.num_items)
    adv_fn = make_epoch_fn(graphdef, tx, data.num_items, adv) if adv_on else None
    eval_fn = make_eval_fn(graphdef)
    root_key = jax.random.key(seed)
    if buckets < 1:
        raise ValueError(f"run_sasrec: buckets must be >= 1, got {buckets}.")
    train_host = np.asarray(data.train)
    bounds, lengths = length_buckets(train_host, buckets), history_lengths(train_host)

    def evaluate(p, split):
        inp, cands = (
            (data.valid_input, data.valid_cands)
            if split == "valid"
            else (data.test_input, data.test_cands)
        )
        return {f"{split}/{k}": float(v) for k, v in jax.device_get(eval_fn(p, inp, cands)).items()}

    hist_path = os.path.join(out_dir, "history.jsonl")
    open(hist_path, "w").close()
    best, best_params, best_epoch = -math.inf, None, 0
    epoch_times, train_seconds = [], 0.0
    bar = tqdm(range(1, epochs + 1), disable=not progress, desc=name)
    for epoch in bar:
        perm = np.random.default_rng((seed, epoch)).permutation(data.num_users)
        plan = bucketed_batches(lengths, perm, batch_size, bounds)
        order = (
            np.random.default_rng((seed, epoch, 1)).permutation(len(plan)) if len(plan) > 1 else [0]
        )
        adversarial = adv_on and epoch >= adv.start_epoch
        epoch_fn = adv_fn if adversarial else clean_fn
        t0 = time.perf_counter()
        chunks = []
        for b in order:
            length, batches = plan[b]
            state, part = epoch_fn(
                state, data.train, data.seen_train, jnp.asarray(batches), root_key, length=length
            )
            chunks.append(part)
        parts = {k: float(jnp.mean(jnp.concatenate([c[k] for c in chunks]))) for k in chunks[0]}
        dt = time.perf_counter() - t0
        epoch_times.append(dt)
        train_seconds += dt
        rec = {"epoch": epoch, **parts, "seconds": dt, "adversarial": adversarial}
        out_of_time = time_budget_s is not None and train_seconds >= time_budget_s
        eligible = adversarial or not adv_on
        if epoch % eval_every == 0 or epoch == epochs or out_of_time:
            rec.update(evaluate(state.params, "valid"))
            if eligible and rec["valid/ndcg@10"] > best:
                best, best_epoch = rec["valid/ndcg@10"], epoch
                best_params = jax.tree.map(jnp.copy, state.params)
                rec.update(evaluate(state.params, "test"))
        bar.set_postfix(
            loss=f"{parts['loss']:.4f}",
            **{k.split("/")[-1]: f"{v:.4f}" for k, v in rec.items() if k.startswith("valid/")},
        )
        with open(hist_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if out_of_time:
            break
    if best_params is None:  # stopped (time budget) before any eligible validation
        best_params, best_epoch = state.params, len(epoch_times)
    config = {
        "epochs": epochs,
        "max_len": max_len,
        "dim": dim,
        "num_blocks": num_blocks,
        "num_heads": num_heads,
        "dropout": dropout,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "eval_every": eval_every,
        "time_budget_s": time_budget_s,
        "data_path": data_path,
        "buckets": buckets,
        "adv": dataclasses.asdict(adv) if adv is not None else None,
        "init_from": init_from,
    }
    metrics = {
        **evaluate(best_params, "valid"),
        **evaluate(best_params, "test"),
        "best_epoch": best_epoch,
        "epochs_run": len(epoch_times),
        "epoch_seconds_median": float(np.median(epoch_times[1:] or epoch_times)),
        "first_epoch_seconds": epoch_times[0],
        "train_seconds": train_seconds,
        "wall_seconds": time.perf_counter() - t_start,  # data, training, validation
        "num_users": data.num_users,
        "num_items": data.num_items,
        "config": config,
    }
    if adv_on:
        adv_times = [t for e, t in enumerate(epoch_times, 1) if e >= adv.start_epoch]
        clean_times = [t for e, t in enumerate(epoch_times, 1) if e < adv.start_epoch]
        metrics["adv_epoch_seconds_median"] = float(np.median(adv_times[1:] or adv_times))
        if clean_times:
            metrics["clean_epoch_seconds_median"] = float(np.median(clean_times[1:] or clean_times))
    save_sequence_run(
        out_dir,
        best_params,
        model="sasrec",
        model_kwargs=model_kwargs,
        data_spec=data_spec,
        max_len=max_len,
        seed=seed,
        extra={"best_epoch": best_epoch, "name": name},
    )
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    return metrics


__all__ = [
    "SEQUENCE_MODELS",
    "SequenceRun",
    "is_sequence_run",
    "load_sequence_run",
    "load_table",
    "register_sequence_model",
    "run_sasrec",
    "save_sequence_run",
]
