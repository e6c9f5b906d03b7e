"""Training runs of sequence models (SASRec, BERT4Rec) from an ``ExperimentConfig``.

:func:`run_sequence_experiment` is what ``robustjax.run.run_experiment`` calls for a
sequence model: the same config sections, host loop, run folder and evaluation options as
the pair models. Data: leave-one-out histories (:mod:`robustjax.data.sequences`) of
``cfg.data`` (a file or folder, or the synthetic generator), with ``eval.sampled_negatives``
fixed sampled negatives per target (seeded by ``train.seed``). Training goes through the
library's one host loop (:func:`robustjax.train.loop.train_loop`): validation every
``train.eval_every`` epochs selects on ``train.early_metric`` (validation data only; test is
evaluated once, after selection); epochs before ``adv.warm_epochs`` train on the clean loss
and only adversarial epochs are candidates; ``resume=True`` continues from
``checkpoint/state.npz`` and ends bit-identical to an uninterrupted run.

The run folder holds ``config.json``, ``data.json``, ``history.jsonl``, ``metrics.json`` and
``checkpoint/`` (``state.npz``, ``best_model.npz``, and ``params.npz`` + ``params.json``,
see :mod:`robustjax.runs.sequence_io`).
"""

import time

import jax
import numpy as np
from flax import nnx

from robustjax.data.sequences import history_lengths, length_buckets, make_sequence_data
from robustjax.data.table import InteractionTable
from robustjax.eval.sequence import make_sequence_eval_fn
from robustjax.losses.sequence import SeqAdvConfig
from robustjax.runs.folder import RunFolder, optimizer_of
from robustjax.runs.sequence_io import (
    SEQUENCE_MODELS,
    load_sequence_run,
    load_table,
    save_sequence_run,
)
from robustjax.train.loop import Phase, Selector, train_loop
from robustjax.train.sequence import (
    ClozeEpoch,
    SequenceEpoch,
    make_bert4rec_epoch_fn,
    make_sasrec_epoch_fn,
)
from robustjax.train.state import init_state

_PAIR_TARGETS = ("user", "pos", "neg")


def sequence_adv(adv) -> SeqAdvConfig | None:
    """The sequence objective's config of an ``AdvConfig`` (None for ``method="none"``)."""
    if adv.method == "none":
        return None
    if tuple(adv.targets) not in (_PAIR_TARGETS, ("seq",)):
        raise ValueError(
            f"AdvConfig.targets={adv.targets!r}: sequence models perturb their input "
            "sequence only; use targets=('seq',)."
        )
    return SeqAdvConfig(
        method=adv.method,
        eps=adv.eps,
        lam=adv.weight,
        num_steps=1 if adv.method == "apr" else adv.num_steps,
        norm=adv.norm,
        scope=adv.scope,
        start_epoch=adv.warm_epochs + 1,
        budget=adv.budget,
        num_candidates=adv.num_candidates,
        step_size=1.0 if adv.step_size is None else adv.step_size,
    )


def data_spec(data_cfg) -> dict:
    """How :func:`robustjax.runs.load_table` rebuilds the table of ``cfg.data``."""
    if data_cfg.path is None or data_cfg.format == "synthetic":
        kwargs = {
            "num_users": data_cfg.synthetic_users,
            "num_items": data_cfg.synthetic_items,
            "interactions_per_user": data_cfg.synthetic_per_user,
            "seed": data_cfg.seed,
        }
        return {"synthetic": kwargs}
    spec = {"path": data_cfg.path}
    if data_cfg.format is not None:
        spec["format"] = data_cfg.format
    return spec


def _epoch_task(cfg, graphdef, data, tx, adv: SeqAdvConfig | None, batch_size: int):
    seed = cfg.train.seed
    if cfg.model.name == "sasrec":
        train_host = np.asarray(data.train)
        bounds = length_buckets(train_host, cfg.train.buckets)
        fn = make_sasrec_epoch_fn(graphdef, tx, data.num_items, adv)
        return SequenceEpoch(fn, data, history_lengths(train_host), bounds, batch_size, seed)
    fn = make_bert4rec_epoch_fn(
        graphdef,
        tx,
        data.num_items,
        mask_prob=cfg.train.mask_prob,
        max_len=cfg.model.max_len,
        mask_last_prob=cfg.train.mask_last_prob,
        num_sampled=cfg.train.cloze_negatives,
        adv=adv,
    )
    return ClozeEpoch(fn, data, batch_size, seed)


def _phases(cfg, graphdef, data, tx, batch_size) -> list[Phase]:
    adv = sequence_adv(cfg.adv)
    clean = Phase(0, _epoch_task(cfg, graphdef, data, tx, None, batch_size), "clean")
    if adv is None:
        return [clean]
    task = _epoch_task(cfg, graphdef, data, tx, adv, batch_size)
    adversarial = Phase(cfg.adv.warm_epochs, task, cfg.adv.method)
    return [clean, adversarial] if cfg.adv.warm_epochs else [adversarial]


def _evaluator(cfg, graphdef, data):
    eval_fn = make_sequence_eval_fn(graphdef, ks=cfg.eval.ks, batch_size=cfg.eval.batch_size)
    users = np.arange(data.num_users)
    seen_test = data.seen_train.at[users, data.valid_target].set(True)
    inputs = {
        "valid": (data.valid_input, data.valid_cands, data.seen_train),
        "test": (data.test_input, data.test_cands, seen_test),
    }

    def evaluate(params, split):
        return {k: float(v) for k, v in jax.device_get(eval_fn(params, *inputs[split])).items()}

    return evaluate


def _timings(history: list[dict], adv_method: str) -> dict:
    times = [r["seconds"] for r in history if "seconds" in r]
    out = {
        "epochs_run": len(times),
        "epoch_seconds_median": float(np.median(times[1:] or times)),
        "first_epoch_seconds": times[0],
        "train_seconds": float(sum(times)),
    }
    if adv_method != "none":
        for key, phase in (("adv", adv_method), ("clean", "clean")):
            t = [r["seconds"] for r in history if r.get("phase") == phase]
            if t:
                out[f"{key}_epoch_seconds_median"] = float(np.median(t[1:] or t))
    return out


def _model_kwargs(cfg, num_items: int) -> dict:
    m = cfg.model
    return {
        "num_items": num_items,
        "max_len": m.max_len,
        "dim": m.dim,
        "num_blocks": m.num_blocks,
        "num_heads": m.num_heads,
        "dropout": m.dropout,
    }


def _initial_params(cfg, kwargs, data):
    cls = SEQUENCE_MODELS[cfg.model.name]
    graphdef, params = nnx.split(cls(**kwargs, rngs=nnx.Rngs(cfg.train.seed)), nnx.Param)
    if cfg.train.init_from is None:
        return graphdef, params
    prev = load_sequence_run(cfg.train.init_from, data=data)
    if prev.meta["model"] != cfg.model.name or prev.meta["model_kwargs"] != kwargs:
        raise ValueError(
            f"train.init_from={cfg.train.init_from!r} holds a {prev.meta['model']} with "
            f"{prev.meta['model_kwargs']}, this run builds a {cfg.model.name} with {kwargs}."
        )
    return graphdef, prev.params


def run_sequence_experiment(
    cfg,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    table: InteractionTable | None = None,
) -> dict[str, float]:
    """Trains a sequence model, selects on validation, evaluates on test, writes the run
    folder; returns the metrics (``valid/<metric>``, ``test/<metric>``, timings).

    ``table``: an interaction table (time-ordered per user) to use instead of ``cfg.data``;
    such a run cannot be reloaded from its folder alone.
    """
    cfg.validate()
    t_start = time.perf_counter()
    folder = RunFolder(out_dir, resume=resume)
    folder.write_config(cfg)
    spec = data_spec(cfg.data) if table is None else {"table": "given in memory"}
    data = make_sequence_data(
        load_table(spec) if table is None else table,
        max_len=cfg.model.max_len,
        seed=cfg.train.seed,
        num_negatives=cfg.eval.sampled_negatives,
    )
    folder.write_json(
        "data.json", {"num_users": data.num_users, "num_items": data.num_items, "data": spec}
    )
    batch_size = min(cfg.train.batch_size, data.num_users)
    kwargs = _model_kwargs(cfg, data.num_items)
    graphdef, params = _initial_params(cfg, kwargs, data)
    t = cfg.train
    tx = optimizer_of(t)
    evaluate = _evaluator(cfg, graphdef, data)
    result = train_loop(
        state=init_state(params, tx),
        phases=_phases(cfg, graphdef, data, tx, batch_size),
        epochs=t.epochs,
        seed=t.seed,
        validate=lambda state: evaluate(state.params, "valid"),
        selectors={"model": Selector(t.early_metric)},
        eval_every=t.eval_every,
        patience=t.patience,
        checkpoint_every=t.checkpoint_every,
        time_budget_s=t.time_budget_s,
        checkpoint_dir=folder.checkpoint_dir,
        resume=resume,
        progress=progress,
        desc=cfg.name,
        on_epoch=folder.log,
    )
    best = result.selected["model"]
    metrics = {
        **{f"valid/{k}": v for k, v in evaluate(best.params, "valid").items()},
        **{f"test/{k}": v for k, v in evaluate(best.params, "test").items()},
        "best_epoch": best.epoch,
        **_timings(result.history, cfg.adv.method),
        "wall_seconds": time.perf_counter() - t_start,  # data, training, validation
        "num_users": data.num_users,
        "num_items": data.num_items,
    }
    save_sequence_run(
        out_dir,
        best.params,
        model=cfg.model.name,
        model_kwargs=kwargs,
        data_spec=spec,
        max_len=cfg.model.max_len,
        seed=t.seed,
        extra={"best_epoch": best.epoch, "name": cfg.name},
    )
    folder.write_metrics(metrics)
    return metrics


_LEGACY_DEFAULTS = {
    "sasrec": {
        "epochs": 200,
        "max_len": 200,
        "dim": 50,
        "num_heads": 1,
        "dropout": 0.2,
        "eval_every": 20,
        "buckets": 1,
    },
    "bert4rec": {
        "epochs": 200,
        "max_len": 100,
        "dim": 64,
        "num_heads": 2,
        "dropout": 0.1,
        "eval_every": 10,
        "mask_prob": 0.2,
        "mask_last_prob": 0.0,
        "num_sampled": 0,
        "weight_decay": 0.0,
        "clip_norm": 5.0,
    },
}
_LEGACY_COMMON = {
    "num_blocks": 2,
    "lr": 1e-3,
    "batch_size": 128,
    "seed": 0,
    "time_budget_s": None,
    "data_path": None,
    "table": None,
    "synthetic": None,
    "adv": None,
    "name": None,
    "init_from": None,
}


def _legacy_config(model: str, kw: dict):
    """An ``ExperimentConfig`` from the keyword arguments of :func:`run_sasrec` /
    :func:`run_bert4rec` (their defaults are those of the original runs)."""
    from robustjax.config import EvalConfig, ExperimentConfig, TrainConfig
    from robustjax.data import DataConfig
    from robustjax.models import ModelConfig
    from robustjax.objectives import AdvConfig

    allowed = {**_LEGACY_COMMON, **_LEGACY_DEFAULTS[model]}
    if model == "bert4rec":
        allowed.pop("init_from")
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise TypeError(f"run_{model}: unexpected arguments {unknown}; valid: {sorted(allowed)}.")
    kw = {**allowed, **kw, "name": kw.get("name") or model}
    synthetic = kw.pop("synthetic", None)
    if synthetic is not None:
        data = DataConfig(
            synthetic_users=synthetic["num_users"],
            synthetic_items=synthetic["num_items"],
            synthetic_per_user=synthetic["interactions_per_user"],
            seed=synthetic.get("seed", 0),
        )
    elif kw.get("data_path") is not None or kw.get("table") is not None:
        data = DataConfig(path=kw.get("data_path"))
    else:
        raise ValueError(
            f"run_{model}: pass data_path= (e.g. ../shared/data/ml-1m), synthetic= or table=."
        )
    adv = kw.pop("adv", None) or SeqAdvConfig()
    model_keys = ("max_len", "dim", "num_blocks", "num_heads", "dropout")
    train_keys = ("epochs", "batch_size", "seed", "eval_every", "time_budget_s", "init_from")
    train_keys += ("buckets", "weight_decay", "clip_norm", "mask_prob", "mask_last_prob")
    train = {k: kw[k] for k in train_keys if k in kw and k != "clip_norm"}
    if "num_sampled" in kw:
        train["cloze_negatives"] = kw["num_sampled"]
    loss = "bce" if model == "sasrec" else "softmax"
    optimizer = {"optimizer": "adam", "beta2": 0.98}
    if model == "bert4rec":
        optimizer = {"optimizer": "adamw", "beta2": 0.999, "clip_norm": kw["clip_norm"]}
    return ExperimentConfig(
        name=kw["name"],
        data=data,
        model=ModelConfig(name=model, **{k: kw[k] for k in model_keys if k in kw}),
        train=TrainConfig(
            learning_rate=kw["lr"],
            loss=loss,
            early_metric="sampled_ndcg@10",
            checkpoint_every=kw["eval_every"],
            **{**optimizer, **train},
        ),
        adv=AdvConfig(
            method=adv.method,
            eps=adv.eps,
            weight=adv.lam,
            warm_epochs=adv.start_epoch - 1,
            num_steps=adv.num_steps,
            step_size=adv.step_size if adv.method == "hull" else None,
            norm=adv.norm,
            scope=adv.scope,
            targets=("seq",),
            budget=adv.budget,
            num_candidates=adv.num_candidates,
        ),
        eval=EvalConfig(ks=(10,), sampled_negatives=100, batch_size=256),
    ).validate()


def run_sasrec(*, out_dir: str, resume: bool = False, progress: bool = True, **kw) -> dict:
    """SASRec through :func:`run_sequence_experiment`, configured by keywords: ``data_path``
    / ``synthetic`` (kwargs of ``robustjax.data.synthetic``) / ``table``, ``epochs``,
    ``max_len``, ``dim``, ``num_blocks``, ``num_heads``, ``dropout``, ``lr``,
    ``batch_size``, ``seed``, ``eval_every``, ``time_budget_s``, ``adv``
    (:class:`SeqAdvConfig`), ``init_from``, ``name``, ``buckets``. Adam with ``b2 = 0.98``
    (the paper's); selection on sampled NDCG@10 (100 negatives)."""
    table = kw.pop("table", None)
    cfg = _legacy_config("sasrec", {"table": table, **kw})
    return run_sequence_experiment(cfg, out_dir, resume=resume, progress=progress, table=table)


def run_bert4rec(*, out_dir: str, resume: bool = False, progress: bool = True, **kw) -> dict:
    """BERT4Rec through :func:`run_sequence_experiment`, configured by keywords: those of
    :func:`run_sasrec` (but ``buckets``, ``init_from``) and ``mask_prob``,
    ``mask_last_prob``, ``num_sampled`` (0 = full softmax), ``weight_decay``,
    ``clip_norm``. Optimiser: global-norm clipping, then AdamW."""
    table = kw.pop("table", None)
    cfg = _legacy_config("bert4rec", {"table": table, **kw})
    return run_sequence_experiment(cfg, out_dir, resume=resume, progress=progress, table=table)


__all__ = ["data_spec", "run_bert4rec", "run_sasrec", "run_sequence_experiment", "sequence_adv"]
