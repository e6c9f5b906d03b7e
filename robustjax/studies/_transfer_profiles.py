"""The transfer study, part 1, fake-profile transfer: surrogate-crafted profiles against victims of every model class."""

import os
import time

import jax
from tqdm.auto import tqdm

from robustjax.data import SplitData
from robustjax.poison.heuristic import heuristic_attack
from robustjax.poison.profiles import inject
from robustjax.poison.transfer import item_embeddings, surrogate_guided_attack
from robustjax.studies._common import load_split
from robustjax.studies._fake_profiles import fake_budget, unrolled_profiles
from robustjax.studies._victims import VictimConfig, measure, train_victim


def training_config(cfg, model: str, seed: int) -> VictimConfig:
    """How ``model`` is trained as a surrogate or victim (the poisoning study's protocol)
    with this study's per-model epochs, batch and learning rate, and ``seed``."""
    epochs = {"mf": cfg.epochs_mf, "neumf": cfg.epochs_neumf, "lightgcn": cfg.epochs_lightgcn}[
        model
    ]
    batch = cfg.batch_lightgcn if model == "lightgcn" else cfg.batch_size
    lr = cfg.lr_lightgcn if model == "lightgcn" else cfg.learning_rate
    # validate twice (mf: every 20 epochs): NeuMF's full-ranking validation is costly
    every = max(1, epochs // 2) if model != "mf" else max(1, min(20, epochs))
    return VictimConfig(
        dim=cfg.dim,
        epochs=epochs,
        batch_size=batch,
        learning_rate=lr,
        eval_every=every,
        seed=seed,
        tiny=cfg.tiny,
    )


def train(cfg, model: str, split: SplitData, *, seed: int):
    """``(fns, params)`` of ``model`` trained on ``split`` (BPR, no defence)."""
    return train_victim(training_config(cfg, model, seed), model, split, defence="none")


def craft_profiles(
    cfg,
    clean: SplitData,
    targets,
    num_fake: int,
    out_dir: str,
    progress: bool,
    *,
    surrogate_seed: int,
    seed: int,
) -> tuple[dict, dict]:
    """Every surrogate's (and the reference's) profiles, saved under ``out_dir/profiles``.

    Surrogates are trained with ``surrogate_seed``; surrogate ``i`` draws its fillers with
    ``seed + 1 + i``, the heuristic reference with ``seed + 100``.

    Returns ``({row: FakeProfiles}, {row: seconds})``.
    """
    profiles, seconds = {}, {}
    for i, name in enumerate(cfg.surrogates):
        t0 = time.perf_counter()
        if name == "mf-unrolled":
            key = jax.random.fold_in(jax.random.key(surrogate_seed), i)
            prof = unrolled_profiles(
                cfg, clean, targets, num_fake, key=key, progress=progress, dim=cfg.unroll_dim
            )
        else:
            fns, params = train(cfg, name, clean, seed=surrogate_seed)
            prof = surrogate_guided_attack(
                item_embeddings(fns, params),
                targets,
                num_fake,
                cfg.filler_size,
                seed=seed + 1 + i,
                temperature=cfg.temperature,
                surrogate=name,
                params={"surrogate_seed": surrogate_seed},
            )
        seconds[name] = time.perf_counter() - t0
        profiles[name] = prof
    if cfg.reference != "none":
        t0 = time.perf_counter()
        profiles[cfg.reference] = heuristic_attack(
            cfg.reference, clean.train, targets, num_fake, cfg.filler_size, seed=seed + 100
        )
        seconds[cfg.reference] = time.perf_counter() - t0
    for name, prof in profiles.items():
        prof.save(os.path.join(out_dir, "profiles", f"{name}.npz"))
    return profiles, seconds


def _measure_victims(cfg, clean, profiles, targets, *, victim_seed: int, progress: bool):
    """``{(row, victim): measure(...)}``: every victim trained with ``victim_seed`` on the
    clean data (row ``None``) and on the data poisoned by each row's profiles."""
    jobs = [(v, r) for v in cfg.victims for r in [None, *profiles]]
    measured = {}
    bar = tqdm(jobs, desc="transfer victims", unit="run", disable=not progress, dynamic_ncols=True)
    for victim, row in bar:
        bar.set_postfix_str(f"{row or 'clean'} -> {victim}")
        split = clean if row is None else inject(clean, profiles[row])
        fns, params = train(cfg, victim, split, seed=victim_seed)
        measured[(row, victim)] = measure(fns, params, split, clean, targets, k=cfg.k)
    bar.close()
    return measured


def _cell(row: str, victim: str, kind: str, before: dict, after: dict, k: int) -> dict:
    """One matrix cell: the victim's target and test metrics on the clean data (``before``)
    and on the data poisoned by ``row``'s profiles (``after``), and their differences."""
    return {
        "surrogate": row,
        "victim": victim,
        "kind": kind,
        f"target_hr@{k}/before": before[f"target_hr@{k}"],
        f"target_hr@{k}/after": after[f"target_hr@{k}"],
        f"target_hr@{k}/delta": after[f"target_hr@{k}"] - before[f"target_hr@{k}"],
        f"target_ndcg@{k}/delta": after[f"target_ndcg@{k}"] - before[f"target_ndcg@{k}"],
        "test_ndcg@20/before": before["test_ndcg@20"],
        "test_ndcg@20/after": after["test_ndcg@20"],
        "test_ndcg@20/delta": after["test_ndcg@20"] - before["test_ndcg@20"],
    }


def _training_record(cfg, victim_seed: int) -> dict:
    """How every trained model (victims and trained surrogates) is trained."""
    models = sorted(set(cfg.victims) | {s for s in cfg.surrogates if s != "mf-unrolled"})
    fields = ("dim", "epochs", "batch_size", "learning_rate", "eval_every")
    return {
        m: {f: getattr(training_config(cfg, m, victim_seed), f) for f in fields} for m in models
    }


def run_fake_profiles(
    cfg,
    out_dir: str,
    *,
    surrogate_seed: int,
    victim_seed: int,
    seed: int,
    progress: bool = True,
) -> dict:
    """One repetition of the fake-profile transfer matrix (see the config docstring); a
    JSON-ready dict of plain numbers. Surrogates train with ``surrogate_seed``, victims with
    ``victim_seed``; ``seed`` picks the targets and seeds the profile draws (the data set
    stays fixed: ``load_split(cfg)``)."""
    t_start = time.perf_counter()
    clean = load_split(cfg)
    num_fake, targets = fake_budget(cfg, clean, seed=seed)
    profiles, craft_seconds = craft_profiles(
        cfg, clean, targets, num_fake, out_dir, progress, surrogate_seed=surrogate_seed, seed=seed
    )
    measured = _measure_victims(
        cfg, clean, profiles, targets, victim_seed=victim_seed, progress=progress
    )
    rows = list(profiles)
    cells = [
        _cell(
            row,
            victim,
            "heuristic" if row == cfg.reference else "transfer",
            measured[(None, victim)],
            measured[(row, victim)],
            cfg.k,
        )
        for row in rows
        for victim in cfg.victims
    ]
    return {
        "data": clean.summary(),
        "num_fake": num_fake,
        "targets": targets.tolist(),
        "target_users": measured[(None, cfg.victims[0])]["target_users"],
        "k": cfg.k,
        "rows": rows,
        "victims": list(cfg.victims),
        "cells": cells,
        "clean": {v: measured[(None, v)] for v in cfg.victims},
        "training": _training_record(cfg, victim_seed),
        "profile_params": {r: dict(p.params) for r, p in profiles.items()},
        "craft_seconds": craft_seconds,
        "seconds": time.perf_counter() - t_start,
    }
