"""The poisoning experiment's driver: attacks, victims, defences, one table and a plot."""

import dataclasses
import json
import os
import sys
import time

import jax
import numpy as np
from tqdm.auto import tqdm

from experiments._base import load_split
from robustjax.data import SplitData, user_item_csr
from robustjax.eval import evaluate_full
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import AdvConfig, build_phases
from robustjax.poison import (
    UnrolledConfig,
    evaluate_detector,
    fit_detector,
    heuristic_attack,
    inject,
    interaction_weights,
    pick_targets,
    remove_users,
    split_target_metrics,
    unrolled_attack,
)
from robustjax.train import build_train_arrays, fit, make_optimizer


def make_attacks(
    cfg, split: SplitData, targets: np.ndarray, num_fake: int, out_dir: str, progress: bool
) -> dict:
    """Every configured attack's profiles, saved under ``out_dir/profiles/``."""
    out = {}
    for i, name in enumerate(cfg.attacks):
        t0 = time.perf_counter()
        if name == "unrolled":
            ucfg = UnrolledConfig(
                dim=cfg.dim,
                pretrain_steps=cfg.pretrain_steps,
                unroll_steps=cfg.unroll_steps,
                outer_steps=cfg.outer_steps,
                inner_lr=cfg.surrogate_lr,
                outer_lr=cfg.outer_lr,
                surrogate=cfg.surrogate,
                warm_epochs=cfg.warm_epochs,
                unroll_epochs=cfg.unroll_epochs,
                surrogates=cfg.surrogates,
                batch_size=min(cfg.batch_size, len(split.train)),
                objective="cw" if cfg.surrogate == "victim" else "hit",
                k=min(cfg.k, split.num_items - targets.size),
            )
            prof = unrolled_attack(
                split.train,
                targets,
                num_fake,
                cfg.filler_size,
                key=jax.random.fold_in(jax.random.key(cfg.seed), i),
                config=ucfg,
                progress=progress,
            )
        else:
            prof = heuristic_attack(
                name, split.train, targets, num_fake, cfg.filler_size, seed=cfg.seed + 1 + i
            )
        prof.save(os.path.join(out_dir, "profiles", f"{name}.npz"))
        out[name] = (prof, time.perf_counter() - t0)
    return out


def train_victim(
    cfg,
    victim: str,
    split: SplitData,
    *,
    defence: str,
    weight=None,
    progress: bool = False,
    seed: int | None = None,
):
    """Trains ``victim`` on ``split`` (bpr-mf protocol; APR after a clean warm start for the
    ``apr`` defence); selects on validation NDCG@20. ``seed`` (default ``cfg.seed``) seeds
    the initialisation, shuffling and negatives. Returns ``(fns, params)``."""
    seed = cfg.seed if seed is None else seed
    mcfg = ModelConfig(name=victim, dim=cfg.dim, num_layers=2 if cfg.tiny else 3)
    fns, params = build_model(
        mcfg,
        split.num_users,
        split.num_items,
        seed=seed,
        train_pairs=(split.train.user, split.train.item),
    )
    data = build_train_arrays(
        split.train.user, split.train.item, split.num_users, split.num_items, weight=weight
    )
    epochs = cfg.epochs
    adv = AdvConfig()
    if defence == "apr":
        adv = AdvConfig(
            method="apr", eps=cfg.apr_eps, weight=cfg.apr_weight, warm_epochs=cfg.epochs
        )
        epochs = cfg.epochs + cfg.apr_epochs
    l2 = 1e-4 if victim == "lightgcn" else 0.0
    phases = build_phases(fns, loss="bpr", l2=l2, adv=adv, epochs=epochs)
    train_csr = user_item_csr(split.train, split.num_users)
    valid_csr = user_item_csr(split.valid, split.num_users)
    ks = (10, 20)

    def validate(p):
        return evaluate_full(
            fns.score_all,
            p,
            target_csr=valid_csr,
            exclude_csrs=[train_csr],
            num_items=split.num_items,
            ks=ks,
            batch_size=1024,
            auc=False,
        )

    result = fit(
        params=params,
        tx=make_optimizer("adam", cfg.learning_rate),
        phases=phases,
        data=data,
        epochs=epochs,
        batch_size=cfg.batch_size,
        seed=seed,
        validate=validate,
        early_metric="ndcg@20" if not cfg.tiny else "ndcg@10",
        eval_every=cfg.eval_every,
        progress=progress,
    )
    return fns, result.params


def measure(cfg, fns, params, split: SplitData, clean: SplitData, targets) -> dict:
    """Target HR/NDCG@K over eligible real users, and clean test NDCG/Recall@20."""
    tm = split_target_metrics(
        fns.score_all, params, split, targets, num_real_users=clean.num_users, k=cfg.k
    )
    # clean quality: real users only (fake users have no valid/test rows)
    test = evaluate_full(
        fns.score_all,
        params,
        target_csr=user_item_csr(split.test, split.num_users),
        exclude_csrs=[
            user_item_csr(split.train, split.num_users),
            user_item_csr(split.valid, split.num_users),
        ],
        num_items=split.num_items,
        ks=(20,),
        batch_size=1024,
        auc=False,
    )
    return {
        f"target_hr@{cfg.k}": tm[f"hr@{cfg.k}"],
        f"target_ndcg@{cfg.k}": tm[f"ndcg@{cfg.k}"],
        "target_users": tm["num_users"],
        "test_ndcg@20": test["ndcg@20"],
        "test_recall@20": test["recall@20"],
    }


def run_poisoning(cfg, out_dir: str, *, progress: bool = True) -> dict:
    t_start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(cfg.to_json())
    clean = load_split(cfg)
    num_fake = max(1, round(cfg.fake_fraction * clean.num_users))
    targets = pick_targets(clean.train, cfg.num_targets, cfg.target_band, seed=cfg.seed)
    attacks = make_attacks(cfg, clean, targets, num_fake, out_dir, progress)
    needs_detector = {"detect", "downweight"} & set(cfg.defences)
    detector = None
    if needs_detector:
        # the detector's threshold is fitted on its own attack file: other targets, other seed
        other = pick_targets(clean.train, cfg.num_targets, cfg.target_band, seed=cfg.seed + 7)
        train_file = heuristic_attack(
            cfg.detector_attack, clean.train, other, num_fake, cfg.filler_size, seed=cfg.seed + 1000
        )
        train_file.save(
            os.path.join(out_dir, "profiles", f"detector_train_{cfg.detector_attack}.npz")
        )
        detector = fit_detector(
            clean,
            train_file,
            num_components=cfg.detector_components,
            normalise=cfg.detector_normalise,
        )

    scenarios = [("clean", None)] + [(a, attacks[a][0]) for a in cfg.attacks]
    seeds = [cfg.seed + r for r in range(cfg.victim_seeds)]
    jobs = [
        (v, s, d, r) for v in cfg.victims for s in scenarios for d in cfg.defences for r in seeds
    ]
    measured, detection = {}, {}
    bar = tqdm(jobs, desc="poisoning", unit="run", disable=not progress, dynamic_ncols=True)
    for victim, (scenario, prof), defence, seed in bar:
        bar.set_postfix_str(f"{victim}/{scenario}/{defence}/seed {seed}")
        split = clean if prof is None else inject(clean, prof)
        train_split, weight = split, None
        if defence in ("detect", "downweight"):
            flagged = detector.flag(split.train)
            if scenario not in detection:
                detection[scenario] = evaluate_detector(detector, clean, prof)
            if defence == "detect":
                train_split = remove_users(split, flagged)
            else:
                weight = interaction_weights(split.train, flagged, weight=cfg.down_weight)
        fns, params = train_victim(
            cfg, victim, train_split, defence=defence, weight=weight, seed=seed
        )
        measured[(victim, scenario, defence, seed)] = measure(
            cfg, fns, params, split, clean, targets
        )
    bar.close()

    rows = []
    for victim in cfg.victims:
        for attack in cfg.attacks:
            for defence in cfg.defences:
                row = {"attack": attack, "victim": victim, "defence": defence, "seeds": seeds}
                for key in measured[(victim, "clean", defence, seeds[0])]:
                    if key == "target_users":
                        continue
                    before = np.array([measured[(victim, "clean", defence, r)][key] for r in seeds])
                    after = np.array([measured[(victim, attack, defence, r)][key] for r in seeds])
                    row[f"{key}/before"] = float(before.mean())
                    row[f"{key}/after"] = float(after.mean())
                    # paired by seed: the same victim seed trained on clean and poisoned data
                    row[f"{key}/gain"] = float((after - before).mean())
                    row[f"{key}/gain_sd"] = (
                        float((after - before).std(ddof=1)) if len(seeds) > 1 else None
                    )
                    row[f"{key}/per_seed"] = {"before": before.tolist(), "after": after.tolist()}
                if defence in ("detect", "downweight"):
                    row["detector_precision"] = detection[attack]["precision"]
                    row["detector_recall"] = detection[attack]["recall"]
                    row["detector_auc"] = detection[attack]["auc"]
                    row["detector_clean_flagged"] = detection["clean"]["flagged"]
                rows.append(row)
    results = {
        "config": dataclasses.asdict(cfg),
        "data": clean.summary(),
        "num_fake": num_fake,
        "lead": optimisation_lead(rows, cfg.k),
        "targets": targets.tolist(),
        "target_users": measured[(cfg.victims[0], "clean", cfg.defences[0], seeds[0])][
            "target_users"
        ],
        "attack_seconds": {a: t for a, (_, t) in attacks.items()},
        "unrolled": (
            {k: v for k, v in attacks["unrolled"][0].params.items()}
            if "unrolled" in attacks
            else None
        ),
        "detector": None
        if detector is None
        else {
            "threshold": detector.threshold,
            "trained_on_attack": cfg.detector_attack,
            "train_report": dict(detector.train_report),
            "evaluation": detection,
        },
        "rows": rows,
        "total_seconds": time.perf_counter() - t_start,
    }
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=float)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown_table(results, cfg.k))
    try:
        plot(results, os.path.join(out_dir, "results.png"), cfg.k)
    except ImportError:
        print(
            "poisoning: matplotlib not installed, plot skipped (pip install 'robustjax[plot]').",
            file=sys.stderr,
        )
    flat = {
        f"test/target_hr@{cfg.k}/{r['attack']}/{r['victim']}/{r['defence']}": r[
            f"target_hr@{cfg.k}/after"
        ]
        for r in rows
    }
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(flat, f, indent=1, sort_keys=True)
    return flat


def optimisation_lead(rows: list[dict], k: int) -> list[dict]:
    """Per victim and defence: the unrolled attack's target HR@K after poisoning minus that
    of the best heuristic (by mean), paired by victim seed: mean, standard error, and how
    many seeds it is ahead on. Empty without the unrolled attack or a heuristic."""
    key = f"target_hr@{k}"
    out = []
    for victim, defence in dict.fromkeys((r["victim"], r["defence"]) for r in rows):
        cell = {r["attack"]: r for r in rows if (r["victim"], r["defence"]) == (victim, defence)}
        heur = [a for a in cell if a != "unrolled"]
        if "unrolled" not in cell or not heur:
            continue
        best = max(heur, key=lambda a: cell[a][f"{key}/after"])
        d = np.asarray(cell["unrolled"][f"{key}/per_seed"]["after"]) - np.asarray(
            cell[best][f"{key}/per_seed"]["after"]
        )
        out.append(
            {
                "victim": victim,
                "defence": defence,
                "best_heuristic": best,
                "mean": float(d.mean()),
                "se": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else None,
                "ahead": int(np.sum(d > 0)),
                "seeds": int(d.size),
            }
        )
    return out


def _f(x, digits=4) -> str:
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def markdown_table(results: dict, k: int) -> str:
    """One table: attack x victim x defence, before -> after."""
    cfg = results["config"]
    seeds = cfg.get("victim_seeds", 1)
    title = (
        f"### Poisoning {results['data']['name']}: {results['num_fake']} fake users "
        f"({cfg['fake_fraction']:.1%}), filler size {cfg['filler_size']}, "
        f"{len(results['targets'])} {cfg['target_band']} targets, "
        f"{results['target_users']} unexposed users, "
        f"{seeds} victim seed{'s' if seeds > 1 else ''}"
    )
    note = (
        "Values are means over the victim seeds; the gain is after − before, paired by "
        "seed, ± its standard deviation across seeds."
        if seeds > 1
        else "One victim seed (`--set victim_seeds=3` adds the spread)."
    )
    head = (
        f"| attack | victim | defence | target HR@{k} before → after | gain | "
        f"target NDCG@{k} before → after | test NDCG@20 before → after | "
        "test Recall@20 before → after | detector P / R (AUC) |"
    )
    lines = [title, "", note, "", head, "|---|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        det = "–"
        if "detector_precision" in r:
            det = (
                f"{r['detector_precision']:.2f} / {r['detector_recall']:.2f} "
                f"({_f(r['detector_auc'], 3)})"
            )
        cells = [r["attack"], r["victim"], r["defence"]]
        for key in (f"target_hr@{k}", f"target_ndcg@{k}", "test_ndcg@20", "test_recall@20"):
            cells.append(f"{_f(r[key + '/before'])} → {_f(r[key + '/after'])}")
            if key == f"target_hr@{k}":
                sd = r.get(key + "/gain_sd")
                cells.append(f"{r[key + '/gain']:+.4f}" + ("" if sd is None else f" ± {sd:.4f}"))
        lines.append("| " + " | ".join(cells + [det]) + " |")
    lead = results.get("lead") or []
    if lead:
        lines += [
            "",
            (
                f"Unrolled minus the best heuristic, target HR@{k} after poisoning, "
                "paired by victim seed (mean ± standard error; seeds ahead):"
            ),
            "",
        ]
        for x in lead:
            se = "" if x["se"] is None else f" ± {x['se']:.4f}"
            lines.append(
                f"- {x['victim']}/{x['defence']}: {x['mean']:+.4f}{se} vs "
                f"{x['best_heuristic']} ({x['ahead']} of {x['seeds']} seeds ahead)"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str, k: int) -> str:
    """Grouped bars of target HR@K after poisoning (attack groups, one bar per
    victim/defence) with the clean level as a marker. Needs matplotlib (object API)."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("poisoning plot needs matplotlib") from err
    rows = results["rows"]
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    series = list(dict.fromkeys((r["victim"], r["defence"]) for r in rows))
    fig = Figure(
        figsize=(max(6.0, 1.4 * len(attacks) * max(1, len(series)) / 3), 4.0), layout="constrained"
    )
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for j, (victim, defence) in enumerate(series):
        sel = {r["attack"]: r for r in rows if (r["victim"], r["defence"]) == (victim, defence)}
        xs = np.arange(len(attacks)) + (j - (len(series) - 1) / 2) * width
        after = [sel[a][f"target_hr@{k}/after"] for a in attacks]
        before = [sel[a][f"target_hr@{k}/before"] for a in attacks]
        ax.bar(xs, after, width, label=f"{victim}/{defence}", color=f"C{j}")
        ax.plot(xs, before, "k_", markersize=8)
    ax.set_xticks(np.arange(len(attacks)), attacks)
    ax.set(
        ylabel=f"target HR@{k} after poisoning",
        title="Target promotion (bars: poisoned, ticks: clean)",
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    return path
