"""Runs a configured experiment end to end and writes its outputs.

Outputs in ``out_dir``: ``config.json``, ``history.jsonl`` (one record per epoch),
``metrics.json`` (flat ``<split>/<metric>@<k>`` keys), ``recommendations.tsv`` (top-N per
test user, original id tokens), ``checkpoint/`` (``state.npz`` for resume, ``best_model.npz``,
``params.npz`` of the selected model), and ``data.json`` (split summary).

With ``data.split='cold_items'`` the metrics also hold ``valid_cold/<metric>@<k>`` and
``test_cold/<metric>@<k>``: each user's held-out cold-item rows ranked among the cold items
only (:mod:`robustjax.eval.cold`). ``valid/`` and ``test/`` are the warm items' rows ranked
as without cold items (all items are candidates); model selection uses ``valid/`` only.
Evaluation goes through :class:`robustjax.evaluator.Evaluator` (re-exported here).
"""

import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robustjax.config import ExperimentConfig
from robustjax.data import (
    SplitData,
    check_fingerprint,
    data_fingerprint,
    prepare,
    read_fingerprint,
    source_of,
    user_item_csr,
)
from robustjax.eval import make_sampled_candidates
from robustjax.evaluator import Evaluator
from robustjax.models import ModelFns, build_model
from robustjax.models.registry import SEQUENCE_MODELS
from robustjax.objectives import ObjectivePhase, build_phases
from robustjax.runs.folder import RunFolder, loop_options, optimizer_of
from robustjax.runs.text import run_text_adv_inputs, text_model_inputs
from robustjax.sharding import mesh_from_string
from robustjax.train import build_train_arrays, fit, save_pytree
from robustjax.train.sparse_step import optimizer_for


def default_phases(
    cfg: ExperimentConfig, fns: ModelFns, *, item_tokens=None
) -> list[ObjectivePhase]:
    """The configured objective: the clean loss (+ L2), then the adversarial phase.
    ``adv.method="text"`` needs ``item_tokens`` (the split's, to read the item texts)."""
    text_inputs = None
    if cfg.adv.method == "text" and fns.text is not None:
        if item_tokens is None:
            raise ValueError("default_phases: adv.method='text' needs item_tokens=.")
        text_inputs = run_text_adv_inputs(cfg, item_tokens)
    return build_phases(
        fns, loss=cfg.train.loss, l2=cfg.train.l2, adv=cfg.adv, epochs=cfg.train.epochs,
        text_inputs=text_inputs,
    )  # fmt: skip


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: str,
    *,
    resume: bool = False,
    progress: bool = True,
    make_phases: Callable[[ExperimentConfig, ModelFns], list[ObjectivePhase]] | None = None,
    overwrite: bool = True,
    allow_config_change: bool = False,
) -> dict[str, float]:
    """Trains, selects on validation, evaluates on test, writes every output file.

    ``overwrite=False`` refuses an ``out_dir`` that already holds a run (the CLI's default;
    ``--overwrite``); ``resume`` refuses a config that differs from the run's unless
    ``allow_config_change``. See :class:`robustjax.runs.folder.RunFolder`. Result files
    are written last (``metrics.json`` the very last), so a failed run leaves none.

    Sequence models (``cfg.model.name`` in ``SEQUENCE_MODELS``) run through
    :func:`robustjax.runs.sequence.run_sequence_experiment` (same sections, loop and run
    folder)."""
    if cfg.model.name in SEQUENCE_MODELS:
        if make_phases is not None:
            raise ValueError("run_experiment: make_phases applies to pair models only.")
        from robustjax.runs.sequence import run_sequence_experiment

        return run_sequence_experiment(
            cfg,
            out_dir,
            resume=resume,
            progress=progress,
            overwrite=overwrite,
            allow_config_change=allow_config_change,
        )
    cfg.validate()
    mesh = mesh_from_string(cfg.train.mesh, key="train.mesh")  # too few devices: fail early
    t0 = time.perf_counter()
    folder = RunFolder(out_dir, resume=resume, overwrite=overwrite)
    folder.write_config(cfg, allow_change=allow_config_change)
    split = prepare(cfg.data)
    summary = {**split.summary(), "fingerprint": data_fingerprint(split, source_of(cfg.data))}
    folder.write_json("data.json", summary, default=str)
    fns, params = _build_model(cfg, split, seed=cfg.train.seed)
    if cfg.train.init_from is not None:
        params = load_run_params(cfg.train.init_from, params)
    evaluator = _evaluator(cfg, fns, split, mesh)
    phases = (
        make_phases(cfg, fns)
        if make_phases
        else default_phases(cfg, fns, item_tokens=split.train.item_tokens)
    )
    result = _fit(cfg, fns, params, phases, split, evaluator, mesh, folder, resume, progress)
    meta = {"best_epoch": result.best_epoch, "num_users": split.num_users,
            "num_items": split.num_items, "model": dataclasses.asdict(cfg.model)}  # fmt: skip
    save_pytree(os.path.join(folder.checkpoint_dir, "params.npz"), result.params, meta)
    metrics, top = _final_metrics(cfg, evaluator, result.params)
    metrics |= {
        **_timings(result, cfg.train.early_metric),
        "total_seconds": time.perf_counter() - t0,
    }
    if result.warnings:
        metrics["warnings"] = result.warnings
    write_recommendations(folder.path("recommendations.tsv"), split, top)
    folder.write_metrics(metrics)  # last: its presence means the run finished
    return metrics


def _evaluator(cfg: ExperimentConfig, fns: ModelFns, split: SplitData, mesh) -> Evaluator:
    """The run's evaluator: AUC on validation only on catalogues of at most
    ``eval.valid_auc_max_items`` items, unless the run selects on AUC."""
    valid_auc = cfg.eval.auc and (
        split.num_items <= cfg.eval.valid_auc_max_items or cfg.train.early_metric == "auc"
    )
    return Evaluator(
        fns, split, cfg.eval.ks, cfg.eval.batch_size, _sampled(cfg, split), cfg.eval.auc,
        valid_auc, mesh,
    )  # fmt: skip


def _fit(cfg, fns, params, phases, split, evaluator, mesh, folder, resume, progress):
    """Trains ``params`` through ``phases`` on the split's training pairs, selecting on
    validation (:func:`robustjax.train.fit`)."""
    t = cfg.train
    return fit(
        params=params,
        # dense, or row-sparse updates of the tables (train.sparse_updates)
        tx=optimizer_for(t, fns, lambda: optimizer_of(t)),
        phases=phases,
        data=build_train_arrays(  # negatives among warm items only (split='cold_items')
            split.train.user, split.train.item, split.num_users, split.num_warm_items
        ),
        batch_size=t.batch_size,
        validate=lambda p: evaluator(p, "valid"),
        early_metric=t.early_metric,
        num_negatives=t.num_negatives,
        sampler=t.sampler,
        mesh=mesh,
        **loop_options(t, folder, resume=resume, progress=progress),
    )


def _final_metrics(cfg: ExperimentConfig, evaluator: Evaluator, params):
    """``(metrics, top)``: the selected model's valid, test and cold-item metrics, and its
    top-N recommendations per test user."""
    valid = evaluator(params, "valid")
    test, top = evaluator(params, "test", top_n=min(cfg.eval.top_n, evaluator.split.num_items))
    metrics = {
        **{f"valid/{k}": v for k, v in valid.items()},
        **{f"test/{k}": v for k, v in test.items()},
        **{f"valid_cold/{k}": v for k, v in evaluator.cold(params, "valid").items()},
        **{f"test_cold/{k}": v for k, v in evaluator.cold(params, "test").items()},
    }
    return metrics, top


def _build_model(cfg: ExperimentConfig, split: SplitData, *, seed: int):
    """``(fns, params)`` of ``cfg.model`` for ``split``: graph models take its training
    pairs, text models its item texts' features."""
    return build_model(
        cfg.model,
        split.num_users,
        split.num_items,
        seed=seed,
        train_pairs=(split.train.user, split.train.item),
        **text_model_inputs(cfg, split.train.item_tokens),
    )


def _sampled(cfg: ExperimentConfig, split: SplitData):
    """The sampled protocol's fixed candidates of valid and test (None when it is off)."""
    if not cfg.eval.sampled_negatives:
        return None
    parts = ("train", "valid", "test")
    csrs = {p: user_item_csr(getattr(split, p), split.num_users) for p in parts}
    return {
        p: make_sampled_candidates(
            csrs[p],
            list(csrs.values()),
            num_items=split.num_items,
            num_negatives=cfg.eval.sampled_negatives,
            seed=cfg.train.seed,
        )
        for p in ("valid", "test")
    }


def _timings(result, early_metric: str) -> dict:
    """Whole-run timings (``train_seconds``, ``epoch_seconds_median``: also the epochs
    before a resume) and this process's (``process_*``, ``first_epoch_seconds``: epochs
    that include compilation); see :func:`robustjax.train.loop._timings`."""
    return {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run, **result.timings}


def load_run_params(run_dir: str, template):
    """The selected parameters of an earlier pair-model run (``RUN/checkpoint/params.npz``),
    shaped like ``template`` (the freshly built model's): warm start with
    ``train.init_from`` (e.g. APR from a trained BPR run, with fresh model selection)."""
    from robustjax.train import load_pytree

    path = os.path.join(run_dir, "checkpoint", "params.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"train.init_from={run_dir!r}: no {path}; is it the --out folder of a training run?"
        )
    return load_pytree(path, template)


def write_recommendations(path: str, split: SplitData, top) -> None:
    """``user item rank score`` rows (original id tokens), ``rank`` 1-based."""
    users = np.asarray(top.users)
    items = np.asarray(top.items)
    scores = np.asarray(top.scores)
    ut, it = split.train.user_tokens, split.train.item_tokens
    with open(path, "w") as f:
        f.write("user\titem\trank\tscore\n")
        for r in range(users.shape[0]):
            u = ut[users[r]]
            for k in range(items.shape[1]):
                if not np.isfinite(scores[r, k]):
                    break
                f.write(f"{u}\t{it[items[r, k]]}\t{k + 1}\t{scores[r, k]:.6g}\n")


def _read_run_config(path: str, from_dict) -> ExperimentConfig:
    """A run's ``config.json``; a damaged or foreign file is an error naming it."""
    with open(path) as f:
        text = f.read()
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        return from_dict(ExperimentConfig, data)
    except (ValueError, TypeError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(
            f"load_run: {path!r} is not a robustjax run config ({e}); the file is truncated, "
            "damaged or from another program. Restore it, or train the run again."
        ) from None


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A trained run read back from its output folder."""

    path: str
    config: ExperimentConfig
    split: SplitData
    fns: ModelFns
    params: Any
    fingerprint: dict | None = None  # of ``split`` (the data it is evaluated on)


def load_run(
    run_dir: str, *, split: SplitData | None = None, data_from: str | None = None
) -> LoadedRun:
    """Reads ``run_dir/config.json`` and ``checkpoint/params.npz`` (the selected model).

    ``split`` reuses already prepared data (``data_from``: the run it was prepared for,
    named in errors); it must have the run's user and item counts (a checkpoint from
    another data set is reported with both shapes) and the data fingerprint stored in the
    run's ``data.json`` (same ids, rows and split; see
    :func:`robustjax.data.data_fingerprint`). Without ``split``, the data is prepared from
    the run's config and must still match its fingerprint (the file may have changed).
    A run without a stored fingerprint (older robustjax) is loaded with a
    ``FingerprintWarning``.
    """
    from robustjax.config import from_dict
    from robustjax.train import load_meta, load_pytree

    config_path = os.path.join(run_dir, "config.json")
    params_path = os.path.join(run_dir, "checkpoint", "params.npz")
    for path in (config_path, params_path):
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"load_run: {path!r} does not exist; is {run_dir!r} the "
                "--out folder of a finished `robustjax train` run?"
            )
    cfg = _read_run_config(config_path, from_dict)
    meta = load_meta(params_path)
    if split is None:
        split = prepare(cfg.data)
        against = f"its config's data now ({cfg.data.path or 'synthetic'})"
        fingerprint = data_fingerprint(split, source_of(cfg.data))
    else:
        against = f"run {data_from!r}" if data_from is not None else "the data given"
        fingerprint = data_fingerprint(split)
    if (split.num_users, split.num_items) != (meta["num_users"], meta["num_items"]):
        raise ValueError(
            f"load_run: {run_dir!r} was trained on {meta['num_users']} users x "
            f"{meta['num_items']} items, but the data has {split.num_users} x "
            f"{split.num_items}; compare checkpoints of the same data set."
        )
    check_fingerprint(
        run_dir, read_fingerprint(run_dir), fingerprint, against=against, who="load_run"
    )
    fns, template = _build_model(cfg, split, seed=0)
    params = load_pytree(params_path, template)
    return LoadedRun(run_dir, cfg, split, fns, params, fingerprint)


__all__ = [
    "Evaluator",
    "LoadedRun",
    "default_phases",
    "load_run",
    "load_run_params",
    "run_experiment",
    "write_recommendations",
]
