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

from robustjax.data.fingerprint import data_fingerprint
from robustjax.data.sequences import history_lengths, length_buckets, make_sequence_data
from robustjax.data.table import InteractionTable
from robustjax.eval.sequence import make_sequence_eval_fn
from robustjax.losses.sequence import SeqAdvConfig
from robustjax.models.registry import TEXT_MODELS
from robustjax.models.text_sasrec import sequence_text_features, with_text_features, with_text_top
from robustjax.runs.folder import RunFolder, loop_options, optimizer_of
from robustjax.runs.sequence_io import (
    SEQUENCE_MODELS,
    load_sequence_run,
    load_table,
    save_sequence_run,
)
from robustjax.runs.text import run_item_features, run_item_texts
from robustjax.sharding import mesh_from_string, shard_params
from robustjax.train.loop import Phase, Selector, train_loop
from robustjax.train.sequence import (
    ClozeEpoch,
    SequenceEpoch,
    make_bert4rec_epoch_fn,
    make_sasrec_epoch_fn,
)
from robustjax.train.sparse_step import with_frozen
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
        random_start=adv.random_start,
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
    if data_cfg.max_users:
        spec["max_users"] = data_cfg.max_users
    return spec


def _epoch_task(cfg, graphdef, data, tx, adv: SeqAdvConfig | None, batch_size: int, mesh=None):
    seed = cfg.train.seed
    if cfg.model.name in ("sasrec", "text-sasrec"):
        train_host = np.asarray(data.train)
        bounds = length_buckets(train_host, cfg.train.buckets)
        fn = make_sasrec_epoch_fn(graphdef, tx, data.num_items, adv)
        lengths = history_lengths(train_host)
        return SequenceEpoch(fn, data, lengths, bounds, batch_size, seed, mesh)
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
    return ClozeEpoch(fn, data, batch_size, seed, mesh)


def _phases(cfg, graphdef, data, tx, batch_size, mesh=None) -> list[Phase]:
    adv = sequence_adv(cfg.adv)
    clean = Phase(0, _epoch_task(cfg, graphdef, data, tx, None, batch_size, mesh), "clean")
    if adv is None:
        return [clean]
    task = _epoch_task(cfg, graphdef, data, tx, adv, batch_size, mesh)
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


def _timings(result, adv_method: str) -> dict:
    """The loop's timings (whole run and this process, see
    :func:`robustjax.train.loop._timings`) and, with an adversary, per-phase medians."""
    history = result.history
    out = {"epochs_run": result.epochs_run, **result.timings}
    if adv_method != "none":
        for key, phase in (("adv", adv_method), ("clean", "clean")):
            t = [r["seconds"] for r in history if r.get("phase") == phase]
            if t:
                out[f"{key}_epoch_seconds_median"] = float(np.median(t[1:] or t))
    return out


def _model_kwargs(cfg, num_items: int, features=None) -> dict:
    m = cfg.model
    kwargs = {
        "num_items": num_items,
        "max_len": m.max_len,
        "dim": m.dim,
        "num_blocks": m.num_blocks,
        "num_heads": m.num_heads,
        "dropout": m.dropout,
    }
    if features is not None:  # text-sasrec: the tower's sizes and the features' origin
        kwargs.update(text_dim=int(features.shape[-1]), id_embedding=m.text_id_embedding,
                      text_encoder=m.text_encoder, text_max_len=m.text_max_len)  # fmt: skip
        if m.text_trainable_layers:  # features: the cached states [I + 1, T, H]
            kwargs.update(text_trainable_layers=m.text_trainable_layers,
                          text_tokens=int(features.shape[1]))  # fmt: skip
    return kwargs


def _text_inputs(cfg, item_tokens):
    """text-sasrec: ``(features [I + 1, H] or cached states [I + 1, T, H], fill)`` where
    ``fill(graphdef, params)`` puts them (and trainable top layers' initial weights) into
    the parameters; row 0 is the padding item (zeros). None for other models."""
    if cfg.model.name not in TEXT_MODELS:
        return None
    k = cfg.model.text_trainable_layers
    if not k:
        features = sequence_text_features(run_item_features(cfg, item_tokens))
        return features, lambda graphdef, params: with_text_features(params, features)
    from robustjax.text import encode_states, encoder_from_checkpoint, load_checkpoint

    ckpt = load_checkpoint(cfg.model.text_encoder)
    num = ckpt.config.num_layers
    if k > num:
        raise ValueError(
            f"ModelConfig.text_trainable_layers={k}: the encoder {cfg.model.text_encoder!r} "
            f"has only {num} layers."
        )
    texts = run_item_texts(cfg, item_tokens)
    states, mask = encode_states(ckpt, texts, stop_layer=num - k, max_len=cfg.model.text_max_len)
    states = np.concatenate([np.zeros_like(states[:1]), states])
    mask = np.concatenate([np.zeros_like(mask[:1]), mask])
    encoder = encoder_from_checkpoint(ckpt)
    return states, lambda graphdef, params: with_text_top(graphdef, params, states, mask, encoder)


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


def _sequence_data(cfg, folder: RunFolder, table):
    spec = data_spec(cfg.data) if table is None else {"table": "given in memory"}
    table = load_table(spec) if table is None else table
    data = make_sequence_data(
        table,
        max_len=cfg.model.max_len,
        seed=cfg.train.seed,
        num_negatives=cfg.eval.sampled_negatives,
    )
    summary = {"num_users": data.num_users, "num_items": data.num_items, "data": spec,
               "fingerprint": data_fingerprint(table, spec)}  # fmt: skip
    folder.write_json("data.json", summary)
    return data, spec, table


def _train(cfg, graphdef, params, data, folder: RunFolder, evaluate, resume, progress):
    """The host loop over the configured phases; selection on validation only."""
    t = cfg.train
    # text features (or cached encoder states) are inputs, never updated
    tx = with_frozen(optimizer_of(t), getattr(nnx.merge(graphdef, params), "frozen_params", ()))
    batch_size = min(t.batch_size, data.num_users)
    mesh = mesh_from_string(t.mesh, key="train.mesh")  # tables row-sharded, users split
    return train_loop(
        state=shard_params(init_state(params, tx), mesh),
        phases=_phases(cfg, graphdef, data, tx, batch_size, mesh),
        validate=lambda state: evaluate(state.params, "valid"),
        selectors={"model": Selector(t.early_metric)},
        time_budget_s=t.time_budget_s,
        desc=cfg.name,
        **loop_options(t, folder, resume=resume, progress=progress),
    )


def run_sequence_experiment(
    cfg,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    table: InteractionTable | None = None,
    overwrite: bool = True,
    allow_config_change: bool = False,
) -> dict[str, float]:
    """Trains a sequence model, selects on validation, evaluates on test, writes the run
    folder; returns the metrics (``valid/<metric>``, ``test/<metric>``, timings).

    ``table``: an interaction table (time-ordered per user) to use instead of ``cfg.data``;
    such a run cannot be reloaded from its folder alone.
    """
    cfg.validate()
    t_start = time.perf_counter()
    folder = RunFolder(out_dir, resume=resume, overwrite=overwrite)
    folder.write_config(cfg, allow_change=allow_config_change)
    data, spec, table = _sequence_data(cfg, folder, table)
    features = _text_inputs(cfg, table.item_tokens)
    kwargs = _model_kwargs(cfg, data.num_items, None if features is None else features[0])
    graphdef, params = _initial_params(cfg, kwargs, data)
    if features is not None and cfg.train.init_from is None:
        params = features[1](graphdef, params)
    evaluate = _evaluator(cfg, graphdef, data)
    result = _train(cfg, graphdef, params, data, folder, evaluate, resume, progress)
    best = result.selected["model"]
    metrics = {
        **{f"valid/{k}": v for k, v in evaluate(best.params, "valid").items()},
        **{f"test/{k}": v for k, v in evaluate(best.params, "test").items()},
        "best_epoch": best.epoch,
        **_timings(result, cfg.adv.method),
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
        seed=cfg.train.seed,
        extra={
            "best_epoch": best.epoch,
            "name": cfg.name,
            "num_negatives": cfg.eval.sampled_negatives,
        },
    )
    if result.warnings:
        metrics["warnings"] = result.warnings
    folder.write_metrics(metrics)
    return metrics


__all__ = ["data_spec", "run_sequence_experiment", "sequence_adv"]
