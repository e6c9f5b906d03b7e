"""One IRGAN run of the study (:func:`train_irgan`): BPR pretraining of G and D, the GAN
loop (:func:`robustjax.train.fit_gan`) with its history log, and the selected models'
valid and test metrics."""

import json
import os
import time

from robustjax.data import prepare
from robustjax.losses import Term, clean_term, combine
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import ObjectivePhase
from robustjax.run import Evaluator
from robustjax.studies._irgan_config import IrganConfig
from robustjax.train import (
    build_train_arrays,
    fit,
    fit_gan,
    init_state,
    make_d_epoch,
    make_g_epoch,
    make_optimizer,
    save_pytree,
)


def resumable(checkpoint_dir: str, resume: bool) -> bool:
    """Resume a part of the study only where it left a checkpoint (else start it)."""
    return resume and os.path.exists(os.path.join(checkpoint_dir, "state.npz"))


def _pretrain(fns, params, data, cfg, progress, checkpoint_dir, resume):
    if cfg.pretrain_epochs == 0:
        return params
    result = fit(
        checkpoint_dir=checkpoint_dir,
        resume=resumable(checkpoint_dir, resume),
        params=params,
        tx=make_optimizer(cfg.optimizer, cfg.learning_rate),
        phases=[ObjectivePhase(0, combine(bpr=Term(clean_term(fns))), "bpr")],
        data=data,
        epochs=cfg.pretrain_epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        progress=progress,
    )
    return result.final_params


def _gan_epochs(cfg: IrganConfig, g_fns, d_fns, tx):
    """``(g_epoch, d_epoch)``: one epoch of G against D, one of D against G's samples."""
    d_epoch = make_d_epoch(
        d_fns,
        g_fns,
        tx,
        loss=cfg.d_loss,
        num_negatives=cfg.d_negatives,
        temperature=cfg.temperature,
        exclude_positives=cfg.exclude_positives,
    )
    g_epoch = make_g_epoch(
        g_fns,
        d_fns,
        tx,
        estimator=cfg.g_estimator,
        num_samples=cfg.g_samples,
        temperature=cfg.temperature,
        reward=cfg.reward,
        baseline=cfg.baseline,
        gumbel_tau=cfg.gumbel_tau,
        importance_mix=cfg.importance_mix,
    )
    return g_epoch, d_epoch


def train_irgan(cfg, ref, out_dir: str, *, progress: bool, resume: bool = False) -> dict:
    """Pretrains G and D with BPR, runs ``fit_gan``, evaluates the selected G and D on test.

    ``ref`` is the bpr-mf config: its data (the same split as the baselines), evaluation
    cutoffs and selection metric are used.
    """
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    split = prepare(ref.data)
    pairs = (split.train.user, split.train.item)
    data = build_train_arrays(*pairs, split.num_users, split.num_items)
    build, pretrained = _pretrained_models(cfg, split, data, out_dir, progress, resume)
    (g_fns, _), (d_fns, _) = build[cfg.g_model], build[cfg.d_model]
    g_eval = Evaluator(g_fns, split, ref.eval.ks, ref.eval.batch_size)
    d_eval = Evaluator(d_fns, split, ref.eval.ks, ref.eval.batch_size)
    pretrain_seconds = time.perf_counter() - t0

    tx = make_optimizer(cfg.optimizer, cfg.learning_rate, weight_decay=cfg.weight_decay)
    g_epoch, d_epoch = _gan_epochs(cfg, g_fns, d_fns, tx)
    checkpoint_dir = os.path.join(out_dir, "checkpoint")
    resume = resumable(checkpoint_dir, resume)
    log = _history_logger(out_dir, resume)
    t1 = time.perf_counter()
    result = fit_gan(
        g_state=init_state(pretrained[cfg.g_model], tx),
        d_state=init_state(pretrained[cfg.d_model], tx),
        g_epoch=g_epoch,
        d_epoch=d_epoch,
        data=data,
        gan_epochs=cfg.gan_epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        d_steps=cfg.d_steps,
        g_steps=cfg.g_steps,
        validate_g=lambda p: g_eval(p, "valid"),
        validate_d=lambda p: d_eval(p, "valid"),
        early_metric=ref.train.early_metric,
        eval_every=cfg.eval_every,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=1,
        resume=resume,
        progress=progress,
        on_epoch=log,
    )
    gan_seconds = time.perf_counter() - t1
    out = _save_and_evaluate(result, pretrained[cfg.d_model], g_eval, d_eval, out_dir)
    out["seconds"] = {"pretrain": pretrain_seconds, "gan": gan_seconds}
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True, default=float)
    return {"rows": out, "history": result.history}


def _pretrained_models(cfg: IrganConfig, split, data, out_dir: str, progress, resume):
    """``(build, pretrained)``: ``{model: (fns, params)}`` of G's and D's model kinds and
    ``{model: BPR-pretrained params}``."""
    pairs = (split.train.user, split.train.item)
    build = {
        m: build_model(
            ModelConfig(name=m, dim=cfg.dim),
            split.num_users,
            split.num_items,
            seed=cfg.seed,
            train_pairs=pairs,
        )
        for m in {cfg.g_model, cfg.d_model}
    }
    # IRGAN starts G and D from the same pretrained MF: one pretraining per model kind
    pretrained = {
        m: _pretrain(
            fns, params, data, cfg, progress, os.path.join(out_dir, f"pretrain_{m}"), resume
        )
        for m, (fns, params) in build.items()
    }
    return build, pretrained


def _history_logger(out_dir: str, resume: bool):
    """``log(record)`` appending to ``out_dir/history.jsonl`` (cleared unless resuming)."""
    history_path = os.path.join(out_dir, "history.jsonl")
    if os.path.exists(history_path) and not resume:
        os.remove(history_path)

    def log(record):
        with open(history_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    return log


def _save_and_evaluate(result, init_params, g_eval, d_eval, out_dir: str) -> dict:
    """Saves the selected G and D parameters; ``{row: {"metrics", "selected_epoch"}}`` of
    them and of D's pretrained start ``init_params`` on valid and test."""
    for name, params in (("g", result.g_params), ("d", result.d_params)):
        save_pytree(os.path.join(out_dir, "checkpoint", f"{name}_params.npz"), params)
    out = {}
    for name, fn, params, epoch in (
        ("irgan-g", g_eval, result.g_params, result.best_g_epoch),
        ("irgan-d", d_eval, result.d_params, result.best_d_epoch),
        ("irgan-init", d_eval, init_params, 0),
    ):
        metrics = {
            **{f"valid/{k}": v for k, v in fn(params, "valid").items()},
            **{f"test/{k}": v for k, v in fn(params, "test").items()},
        }
        out[name] = {"metrics": metrics, "selected_epoch": epoch}
    return out


def read_history(out_dir: str) -> list[dict]:
    """``history.jsonl``, one record per GAN epoch (a resumed run logs the replayed epochs
    again: the last record of an epoch wins)."""
    by_epoch = {}
    with open(os.path.join(out_dir, "history.jsonl")) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                by_epoch[record["epoch"]] = record
    return [by_epoch[e] for e in sorted(by_epoch)]
