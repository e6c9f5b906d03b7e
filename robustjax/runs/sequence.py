"""Training runs of sequential models (SASRec, BERT4Rec): train, select, test, save.

Both go through the library's one host loop (:func:`robustjax.train.loop.train_loop`):
validation every ``eval_every`` epochs (and after the last) selects the parameters on
validation NDCG@10 (sampled protocol); test data is touched once, after selection. With an
adversarial config, epochs before ``adv.start_epoch`` train on the clean loss and only
adversarial epochs are candidates. ``resume=True`` continues from ``checkpoint/state.npz``
and ends bit-identical to an uninterrupted run.

A run folder holds ``config.json`` (written by the caller), ``history.jsonl``,
``metrics.json``, ``checkpoint/`` (``state.npz`` for resume, ``best_model.npz``, and
``params.npz`` + ``params.json``, see :mod:`robustjax.runs.sequence_io`).
"""

import dataclasses
import json
import os
import time
from collections.abc import Callable

import jax
import numpy as np
import optax
from flax import nnx

from robustjax.data.sequences import history_lengths, length_buckets, make_sequence_data
from robustjax.data.table import InteractionTable
from robustjax.eval.sequence import make_bert4rec_eval_fn, make_sasrec_eval_fn
from robustjax.losses.sequence import SeqAdvConfig
from robustjax.models.bert4rec import BERT4Rec
from robustjax.models.sasrec import SASRec
from robustjax.runs.sequence_io import load_sequence_run, load_table, save_sequence_run
from robustjax.train.loop import Phase, Selector, train_loop
from robustjax.train.sequence import (
    ClozeEpoch,
    SequenceEpoch,
    make_bert4rec_epoch_fn,
    make_sasrec_epoch_fn,
)
from robustjax.train.state import init_state


@dataclasses.dataclass(frozen=True)
class _Recipe:
    """What differs between the sequential families."""

    model: str  # "sasrec" | "bert4rec"
    cls: type
    model_kwargs: dict
    tx: optax.GradientTransformation
    make_task: Callable  # (graphdef, data, adv | None) -> EpochTask
    make_eval: Callable  # (graphdef, data) -> evaluate(params, split) -> {metric: float}


def _phases(recipe, graphdef, data, adv: SeqAdvConfig | None, epochs: int) -> list[Phase]:
    if adv is None or not adv.enabled:
        return [Phase(0, recipe.make_task(graphdef, data, None), "clean")]
    if adv.start_epoch > epochs:
        raise ValueError(
            f"{recipe.model}: adv.start_epoch={adv.start_epoch} is after the last epoch "
            f"(epochs={epochs}); no adversarial epoch would run."
        )
    adversarial = Phase(adv.start_epoch - 1, recipe.make_task(graphdef, data, adv), adv.method)
    if adv.start_epoch == 1:
        return [adversarial]
    return [Phase(0, recipe.make_task(graphdef, data, None), "clean"), adversarial]


def _timings(history: list[dict], adv: SeqAdvConfig | None) -> dict:
    times = [r["seconds"] for r in history if "seconds" in r]
    out = {
        "epochs_run": len(times),
        "epoch_seconds_median": float(np.median(times[1:] or times)),
        "first_epoch_seconds": times[0],
        "train_seconds": float(sum(times)),
    }
    if adv is not None and adv.enabled:
        for key, phase in (("adv", adv.method), ("clean", "clean")):
            t = [r["seconds"] for r in history if r.get("phase") == phase]
            if t:
                out[f"{key}_epoch_seconds_median"] = float(np.median(t[1:] or t))
    return out


def _train_sequence_model(
    recipe: _Recipe,
    *,
    data,
    data_spec: dict,
    out_dir: str,
    epochs: int,
    eval_every: int,
    seed: int,
    adv: SeqAdvConfig | None,
    init_params,
    time_budget_s: float | None,
    resume: bool,
    progress: bool,
    name: str,
    config: dict,
) -> dict:
    t_start = time.perf_counter()
    graphdef, params = nnx.split(recipe.cls(**recipe.model_kwargs, rngs=nnx.Rngs(seed)), nnx.Param)
    if init_params is not None:
        params = init_params
    evaluate = recipe.make_eval(graphdef, data)
    hist_path = os.path.join(out_dir, "history.jsonl")
    if not resume:
        open(hist_path, "w").close()

    def log(record):
        with open(hist_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    result = train_loop(
        state=init_state(params, recipe.tx),
        phases=_phases(recipe, graphdef, data, adv, epochs),
        epochs=epochs,
        seed=seed,
        validate=lambda state: evaluate(state.params, "valid"),
        selectors={"model": Selector("ndcg@10")},
        eval_every=eval_every,
        checkpoint_every=eval_every,
        time_budget_s=time_budget_s,
        checkpoint_dir=os.path.join(out_dir, "checkpoint"),
        resume=resume,
        progress=progress,
        desc=name,
        on_epoch=log,
    )
    best = result.selected["model"]
    metrics = {
        **{f"valid/{k}": v for k, v in evaluate(best.params, "valid").items()},
        **{f"test/{k}": v for k, v in evaluate(best.params, "test").items()},
        "best_epoch": best.epoch,
        **_timings(result.history, adv),
        "wall_seconds": time.perf_counter() - t_start,  # data, training, validation
        "num_users": data.num_users,
        "num_items": data.num_items,
        "config": config,
    }
    metrics["checkpoint"] = save_sequence_run(
        out_dir,
        best.params,
        model=recipe.model,
        model_kwargs=recipe.model_kwargs,
        data_spec=data_spec,
        max_len=recipe.model_kwargs["max_len"],
        seed=seed,
        extra={"best_epoch": best.epoch, "name": name, "config": config},
    )
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    return metrics


def _load_data(data_path, table, synthetic, *, max_len, seed, who):
    data_spec = {"synthetic": synthetic} if synthetic is not None else {"path": data_path}
    if table is None:
        if data_path is None and synthetic is None:
            raise ValueError(
                f"{who}: pass data_path= (e.g. ../shared/data/ml-1m), synthetic= or table=."
            )
        table = load_table(data_spec)
    return make_sequence_data(table, max_len=max_len, seed=seed), data_spec


def _prologue(who, *, out_dir, data_path, table, synthetic, seed, batch_size, **model):
    """Checks, data and model arguments shared by both families: returns the data, its
    recipe, the batch size (at most the number of users) and the model's kwargs."""
    for name in ("epochs", "eval_every", "batch_size", "buckets"):
        value = model.pop(name, 1) if name != "batch_size" else batch_size
        if value < 1:
            raise ValueError(f"{who}: {name} must be >= 1, got {name}={value!r}.")
    os.makedirs(out_dir, exist_ok=True)
    data, data_spec = _load_data(
        data_path, table, synthetic, max_len=model["max_len"], seed=seed, who=who
    )
    return data, data_spec, min(batch_size, data.num_users), {"num_items": data.num_items, **model}


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
    resume: bool = False,
) -> dict:
    """Trains SASRec (optionally adversarially) and evaluates it (sampled, 100 negatives).

    ``buckets > 1`` batches users of similar history length together and trains each
    bucket on its own static length (:class:`robustjax.train.sequence.SequenceEpoch`): the
    same model and loss per batch, about half the work at max_len 200 on ML-1M. Adam with
    ``b2 = 0.98`` (the paper's). Stops early once ``time_budget_s`` of training has elapsed.

    ``init_from``: a run folder whose saved parameters initialise the model (fine-tuning,
    e.g. adversarial training of a trained SASRec, as APR fine-tunes a trained BPR-MF); the
    model settings and data must match.

    Data: ``synthetic`` (kwargs of ``robustjax.data.synthetic``), else ``table`` (not
    reloadable by sweeps), else ``load(data_path)``. Returns the metrics.
    """
    data, data_spec, batch_size, kwargs = _prologue(
        "run_sasrec",
        out_dir=out_dir,
        data_path=data_path,
        table=table,
        synthetic=synthetic,
        seed=seed,
        batch_size=batch_size,
        epochs=epochs,
        eval_every=eval_every,
        buckets=buckets,
        max_len=max_len,
        dim=dim,
        num_blocks=num_blocks,
        num_heads=num_heads,
        dropout=dropout,
    )
    init_params = None
    if init_from is not None:
        prev = load_sequence_run(init_from, data=data)
        if prev.meta["model_kwargs"] != kwargs:
            raise ValueError(
                f"run_sasrec: init_from={init_from!r} holds a model with "
                f"{prev.meta['model_kwargs']}, this run builds {kwargs}."
            )
        init_params = prev.params
    tx = optax.adam(lr, b1=0.9, b2=0.98)
    train_host = np.asarray(data.train)
    bounds, lengths = length_buckets(train_host, buckets), history_lengths(train_host)

    def make_task(graphdef, data, adv):
        fn = make_sasrec_epoch_fn(graphdef, tx, data.num_items, adv)
        return SequenceEpoch(fn, data, lengths, bounds, batch_size, seed)

    def make_eval(graphdef, data):
        eval_fn = make_sasrec_eval_fn(graphdef)
        inputs = {"valid": (data.valid_input, data.valid_cands)}
        inputs["test"] = (data.test_input, data.test_cands)
        return lambda p, split: _floats(eval_fn(p, *inputs[split]))

    config = {
        "epochs": epochs,
        **{k: v for k, v in kwargs.items() if k != "num_items"},
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
    recipe = _Recipe("sasrec", SASRec, kwargs, tx, make_task, make_eval)
    common = {"data": data, "data_spec": data_spec, "out_dir": out_dir, "seed": seed}
    return _train_sequence_model(
        recipe,
        **common,
        epochs=epochs,
        eval_every=eval_every,
        adv=adv,
        init_params=init_params,
        time_budget_s=time_budget_s,
        resume=resume,
        progress=progress,
        name=name,
        config=config,
    )


def _floats(metrics) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def run_bert4rec(
    *,
    data_path: str | None,
    out_dir: str,
    epochs: int = 200,
    max_len: int = 100,
    dim: int = 64,
    num_blocks: int = 2,
    num_heads: int = 2,
    dropout: float = 0.1,
    mask_prob: float = 0.2,
    mask_last_prob: float = 0.0,
    num_sampled: int = 0,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    clip_norm: float = 5.0,
    batch_size: int = 128,
    seed: int = 0,
    eval_every: int = 10,
    time_budget_s: float | None = None,
    progress: bool = True,
    table: InteractionTable | None = None,
    synthetic: dict | None = None,
    adv: SeqAdvConfig | None = None,
    name: str = "bert4rec",
    resume: bool = False,
) -> dict:
    """Trains BERT4Rec with masked-item prediction and evaluates it (sampled + full).

    Optimiser: global-norm clipping then AdamW (``weight_decay=0`` is Adam). Metrics of the
    sampled protocol (``hr@10``, ``ndcg@10``, selection on the latter) and of full ranking
    (``full/hr@10``, ``full/ndcg@10``, ``full/recall@20``, ``full/ndcg@20``); see
    :func:`robustjax.eval.sequence.make_bert4rec_eval_fn`. Returns the metrics.
    """
    data, data_spec, batch_size, kwargs = _prologue(
        "run_bert4rec",
        out_dir=out_dir,
        data_path=data_path,
        table=table,
        synthetic=synthetic,
        seed=seed,
        batch_size=batch_size,
        epochs=epochs,
        eval_every=eval_every,
        max_len=max_len,
        dim=dim,
        num_blocks=num_blocks,
        num_heads=num_heads,
        dropout=dropout,
    )
    tx = optax.chain(
        optax.clip_by_global_norm(clip_norm),
        optax.adamw(lr, b1=0.9, b2=0.999, weight_decay=weight_decay),
    )

    def make_task(graphdef, data, adv):
        fn = make_bert4rec_epoch_fn(
            graphdef,
            tx,
            data.num_items,
            mask_prob=mask_prob,
            max_len=max_len,
            mask_last_prob=mask_last_prob,
            num_sampled=num_sampled,
            adv=adv,
        )
        return ClozeEpoch(fn, data, batch_size, seed)

    def make_eval(graphdef, data):
        eval_fn = make_bert4rec_eval_fn(graphdef)
        users = np.arange(data.num_users)
        seen_test = data.seen_train.at[users, data.valid_target].set(True)
        inputs = {
            "valid": (data.valid_input, data.valid_cands, data.seen_train),
            "test": (data.test_input, data.test_cands, seen_test),
        }
        return lambda p, split: _floats(eval_fn(p, *inputs[split]))

    config = {
        "epochs": epochs,
        **{k: v for k, v in kwargs.items() if k != "num_items"},
        "mask_prob": mask_prob,
        "mask_last_prob": mask_last_prob,
        "num_sampled": num_sampled,
        "lr": lr,
        "weight_decay": weight_decay,
        "clip_norm": clip_norm,
        "batch_size": batch_size,
        "seed": seed,
        "eval_every": eval_every,
        "time_budget_s": time_budget_s,
        "data_path": data_path,
        "adv": None if adv is None else dataclasses.asdict(adv),
    }
    recipe = _Recipe("bert4rec", BERT4Rec, kwargs, tx, make_task, make_eval)
    common = {"data": data, "data_spec": data_spec, "out_dir": out_dir, "seed": seed}
    return _train_sequence_model(
        recipe,
        **common,
        epochs=epochs,
        eval_every=eval_every,
        adv=adv,
        init_params=None,
        time_budget_s=time_budget_s,
        resume=resume,
        progress=progress,
        name=name,
        config=config,
    )
