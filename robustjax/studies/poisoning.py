"""Data poisoning (fake-user injection) against victims, with and without defences.

The threat model, attacks and defences are described in ``experiments/poisoning/config.py``.
The study runs over ``seeds`` training seeds ``seed, seed + 1, ...``; on training seed ``s``
every attack draws its own fake profiles (heuristic ``i``: seed ``s + 1 + i``; unrolled:
key ``fold_in(key(s), i)``) and the detector is fitted on its own training file (seed
``s + 1000``), so each figure covers ``seeds`` victim initialisations and ``seeds`` attack
draws, paired by seed. The targets stay fixed (seed ``seed``).

Writes ``config.json``, ``results.json``, ``results.md`` (the tables), ``results.png`` (needs
matplotlib), ``metrics.json`` (flat, the means) and every fake-profile file under
``profiles/seed<s>/``. In ``results.json`` every figure of a row (``<metric>/before``: the
same victim and defence on the clean data, ``<metric>/after``: on the poisoned data, and
the detector's ``detector_*``) is ``{"mean", "ci95", "values", "n"}`` over the seeds, and
``row["paired"]`` holds the per-seed differences: ``vs_clean`` (poisoned minus clean, the
attack's effect) and ``vs_no_defence`` (this defence minus ``none`` on the same seeds and
attack draws: ``<metric>/before``, ``/after`` and ``/gain``).
"""

import dataclasses
import os
import time

import jax
import numpy as np
from tqdm.auto import tqdm

from robustjax._config_checks import check_int_fields, check_name_fields
from robustjax.data import SplitData
from robustjax.poison import (
    evaluate_detector,
    fit_detector,
    heuristic_attack,
    inject,
    interaction_weights,
    pick_targets,
    remove_users,
)
from robustjax.report.intervals import mean_ci, paired_diff
from robustjax.studies._common import (
    StudyConfig,
    check_no_resume,
    load_split,
    start,
    try_plot,
    write_json,
    write_text,
)
from robustjax.studies._fake_profiles import FakeProfileBudget, fake_budget, unrolled_profiles
from robustjax.studies._poisoning_report import markdown_table, optimisation_lead, plot
from robustjax.studies._victims import VictimConfig, measure, train_victim

ATTACKS = ("random", "average", "bandwagon", "segment", "unrolled")
VICTIMS = ("mf", "lightgcn")
DEFENCES = ("none", "apr", "detect", "downweight")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PoisonConfig(StudyConfig, FakeProfileBudget):
    """The poisoning study (module docstring); the fake-profile budget fields are
    :class:`FakeProfileBudget`'s. ``--set key=value`` sets any field."""

    name: str = "poisoning"
    data_path: str | None = None
    attacks: tuple[str, ...] = ATTACKS
    victims: tuple[str, ...] = ("mf",)
    defences: tuple[str, ...] = DEFENCES
    # victim (bpr-mf protocol)
    dim: int = 64
    epochs: int = 100
    batch_size: int = 2048
    learning_rate: float = 1e-3
    eval_every: int = 10
    seeds: int = 5  # training seeds seed, seed + 1, ...; each with its own attack draws
    apr_epochs: int = 100  # APR epochs after the clean warm start of ``epochs``
    apr_eps: float = 0.5
    apr_weight: float = 1.0
    # unrolled attack
    surrogate: str = "victim"  # "victim": the victim's own BPR-MF training; "dense"
    warm_epochs: int = 60  # victim surrogate: epochs on real + fakes, not unrolled
    unroll_epochs: int = 10  # victim surrogate: differentiated epochs
    unroll_steps: int = 20  # dense surrogate: differentiated Adam steps
    pretrain_steps: int = 300  # dense surrogate: warm-start steps
    outer_steps: int = 4
    surrogates: int = 3  # victim surrogate: initialisations averaged per gradient
    outer_lr: float = 6.0
    surrogate_lr: float = 1e-3  # the victim's Adam rate (dense surrogate: 0.01 before)
    # detector and robust training
    detector_attack: str = "random"
    detector_components: int = 10
    detector_normalise: str = "degree"
    down_weight: float = 0.1
    seed: int = 2024
    # synthetic data (no data_path)
    synthetic_users: int = 500
    synthetic_items: int = 800
    synthetic_per_user: int = 30
    tiny: bool = False

    def __post_init__(self):
        check_name_fields(
            self, (("attacks", ATTACKS), ("victims", VICTIMS), ("defences", DEFENCES))
        )
        self.check_budget()
        check_int_fields(
            self,
            (
                "dim",
                "epochs",
                "batch_size",
                "eval_every",
                "seeds",
                "apr_epochs",
                "unroll_steps",
                "outer_steps",
                "unroll_epochs",
                "detector_components",
                "surrogates",
            ),
        )
        if self.detector_attack not in ATTACKS[:4]:
            raise ValueError(
                f"PoisonConfig.detector_attack must be a heuristic attack "
                f"{ATTACKS[:4]}, got {self.detector_attack!r}."
            )
        if not 0.0 <= self.down_weight <= 1.0:
            raise ValueError(
                f"PoisonConfig.down_weight must lie in [0, 1], got {self.down_weight!r}."
            )


def victim_config(cfg: PoisonConfig) -> VictimConfig:
    """How ``cfg``'s victims are trained."""
    return VictimConfig(
        dim=cfg.dim,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        eval_every=cfg.eval_every,
        seed=cfg.seed,
        tiny=cfg.tiny,
        apr_epochs=cfg.apr_epochs,
        apr_eps=cfg.apr_eps,
        apr_weight=cfg.apr_weight,
    )


def make_attacks(
    cfg,
    split: SplitData,
    targets: np.ndarray,
    num_fake: int,
    out_dir: str,
    progress: bool,
    *,
    seed: int,
) -> dict:
    """Every configured attack's profiles drawn for training seed ``seed``, saved under
    ``out_dir/profiles/seed<seed>/``. Returns ``{name: (profiles, seconds)}``."""
    out = {}
    for i, name in enumerate(cfg.attacks):
        t0 = time.perf_counter()
        if name == "unrolled":
            prof = unrolled_profiles(
                cfg,
                split,
                targets,
                num_fake,
                key=jax.random.fold_in(jax.random.key(seed), i),
                progress=progress,
                dim=cfg.dim,
                outer_lr=cfg.outer_lr,
                surrogate=cfg.surrogate,
                warm_epochs=cfg.warm_epochs,
                unroll_epochs=cfg.unroll_epochs,
                surrogates=cfg.surrogates,
                batch_size=min(cfg.batch_size, len(split.train)),
                objective="cw" if cfg.surrogate == "victim" else "hit",
            )
        else:
            prof = heuristic_attack(
                name, split.train, targets, num_fake, cfg.filler_size, seed=seed + 1 + i
            )
        prof.save(os.path.join(out_dir, "profiles", f"seed{seed}", f"{name}.npz"))
        out[name] = (prof, time.perf_counter() - t0)
    return out


def _fit_detector(cfg: PoisonConfig, clean: SplitData, num_fake: int, out_dir: str, *, seed: int):
    """The spectral detector of training seed ``seed``, fitted on its own attack file (other
    targets, seed ``seed + 1000``); None when no defence needs it."""
    if not {"detect", "downweight"} & set(cfg.defences):
        return None
    other = pick_targets(clean.train, cfg.num_targets, cfg.target_band, seed=cfg.seed + 7)
    train_file = heuristic_attack(
        cfg.detector_attack, clean.train, other, num_fake, cfg.filler_size, seed=seed + 1000
    )
    train_file.save(
        os.path.join(
            out_dir, "profiles", f"seed{seed}", f"detector_train_{cfg.detector_attack}.npz"
        )
    )
    return fit_detector(
        clean,
        train_file,
        num_components=cfg.detector_components,
        normalise=cfg.detector_normalise,
    )


def _train_victims(cfg, clean, attacks, detectors, targets, seeds, progress):
    """Every victim x scenario x defence x seed, measured, each seed against its own attack
    draws and detector. Returns ``(measured, detection)``, keyed by ``(..., seed)``."""
    scenarios = ["clean", *cfg.attacks]
    jobs = [
        (v, s, d, r) for v in cfg.victims for s in scenarios for d in cfg.defences for r in seeds
    ]
    vcfg = victim_config(cfg)
    measured, detection = {}, {}
    bar = tqdm(jobs, desc="poisoning", unit="run", disable=not progress, dynamic_ncols=True)
    for victim, scenario, defence, seed in bar:
        bar.set_postfix_str(f"{victim}/{scenario}/{defence}/seed {seed}")
        prof = None if scenario == "clean" else attacks[seed][scenario][0]
        split = clean if prof is None else inject(clean, prof)
        train_split, weight = split, None
        if defence in ("detect", "downweight"):
            detector = detectors[seed]
            flagged = detector.flag(split.train)
            if (scenario, seed) not in detection:
                detection[(scenario, seed)] = evaluate_detector(detector, clean, prof)
            if defence == "detect":
                train_split = remove_users(split, flagged)
            else:
                weight = interaction_weights(split.train, flagged, weight=cfg.down_weight)
        fns, params = train_victim(
            vcfg, victim, train_split, defence=defence, weight=weight, seed=seed
        )
        measured[(victim, scenario, defence, seed)] = measure(
            fns, params, split, clean, targets, k=cfg.k
        )
    bar.close()
    return measured, detection


def _interval(values) -> dict:
    """``mean_ci``, or ``{"mean": None, ...}`` when a value is undefined (a detector's AUC
    without fake users is NaN): an undefined figure is reported as missing, not averaged."""
    v = np.asarray(values, np.float64)
    if np.all(np.isfinite(v)):
        return mean_ci(v)
    return {"mean": None, "ci95": [None, None], "values": v.tolist(), "n": int(v.size)}


def _metric_names(measured) -> list[str]:
    return [k for k in next(iter(measured.values())) if k != "target_users"]


def _row(measured, detection, cfg, victim, attack, defence, seeds) -> dict:
    """One table row: clean ("before") and poisoned ("after") figures over the seeds, the
    paired differences (attack vs clean, defence vs none) and the detector's scores."""
    row = {"attack": attack, "victim": victim, "defence": defence, "seeds": seeds}
    row["n"] = len(seeds)

    def per_seed(scenario, d, key):
        return np.array([measured[(victim, scenario, d, r)][key] for r in seeds])

    vs_clean, vs_none = {}, {}
    for key in _metric_names(measured):
        before, after = per_seed("clean", defence, key), per_seed(attack, defence, key)
        row[f"{key}/before"] = mean_ci(before)
        row[f"{key}/after"] = mean_ci(after)
        # paired by seed: the same victim seed trained on clean and poisoned data
        vs_clean[key] = paired_diff(after, before)
        if defence != "none" and "none" in cfg.defences:
            before0, after0 = per_seed("clean", "none", key), per_seed(attack, "none", key)
            vs_none[f"{key}/before"] = paired_diff(before, before0)
            vs_none[f"{key}/after"] = paired_diff(after, after0)
            vs_none[f"{key}/gain"] = paired_diff(after - before, after0 - before0)
    row["paired"] = {"vs_clean": vs_clean}
    if vs_none:
        row["paired"]["vs_no_defence"] = vs_none
    if defence in ("detect", "downweight"):
        for name in ("precision", "recall", "auc"):
            row[f"detector_{name}"] = _interval([detection[(attack, r)][name] for r in seeds])
        row["detector_clean_flagged"] = _interval(
            [detection[("clean", r)]["flagged"] for r in seeds]
        )
    return row


def _detector_record(cfg: PoisonConfig, detectors, detection, seeds) -> dict | None:
    """``results["detector"]``: each seed's detector and its evaluation on every scenario;
    None without a detector."""
    if detectors[seeds[0]] is None:
        return None
    return {
        "trained_on_attack": cfg.detector_attack,
        "threshold": {str(s): detectors[s].threshold for s in seeds},
        "train_report": {str(s): dict(detectors[s].train_report) for s in seeds},
        "evaluation": {
            scenario: {str(s): detection[(scenario, s)] for s in seeds}
            for scenario in ("clean", *cfg.attacks)
        },
    }


def _flat_metrics(rows: list[dict], k: int) -> dict:
    """``metrics.json``: the mean target HR@K after poisoning of every row."""
    return {
        f"test/target_hr@{k}/{r['attack']}/{r['victim']}/{r['defence']}": r[f"target_hr@{k}/after"][
            "mean"
        ]
        for r in rows
    }


def run_poisoning(
    cfg: PoisonConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Runs the study; returns flat metrics (the means; also written to ``metrics.json``)."""
    check_no_resume(cfg.name, resume)
    t_start = time.perf_counter()
    start(cfg, out_dir)
    clean = load_split(cfg)
    num_fake, targets = fake_budget(cfg, clean, seed=cfg.seed)
    seeds = [cfg.seed + r for r in range(cfg.seeds)]
    attacks = {
        s: make_attacks(cfg, clean, targets, num_fake, out_dir, progress, seed=s) for s in seeds
    }
    detectors = {s: _fit_detector(cfg, clean, num_fake, out_dir, seed=s) for s in seeds}
    measured, detection = _train_victims(cfg, clean, attacks, detectors, targets, seeds, progress)
    rows = [
        _row(measured, detection, cfg, victim, attack, defence, seeds)
        for victim in cfg.victims
        for attack in cfg.attacks
        for defence in cfg.defences
    ]
    results = {
        "config": dataclasses.asdict(cfg),
        "data": clean.summary(),
        "num_fake": num_fake,
        "seeds": seeds,
        "attack_draws": len(seeds),  # one draw of every attack per training seed
        "lead": optimisation_lead(rows, cfg.k),
        "targets": targets.tolist(),
        "target_users": measured[(cfg.victims[0], "clean", cfg.defences[0], seeds[0])][
            "target_users"
        ],
        "attack_seconds": {a: mean_ci([attacks[s][a][1] for s in seeds]) for a in cfg.attacks},
        "unrolled": (
            {str(s): dict(attacks[s]["unrolled"][0].params) for s in seeds}
            if "unrolled" in cfg.attacks
            else None
        ),
        "detector": _detector_record(cfg, detectors, detection, seeds),
        "rows": rows,
        "total_seconds": time.perf_counter() - t_start,
    }
    write_json(os.path.join(out_dir, "results.json"), results, default=float)
    write_text(os.path.join(out_dir, "results.md"), markdown_table(results, cfg.k))
    try_plot(cfg.name, plot, results, os.path.join(out_dir, "results.png"), cfg.k)
    flat = _flat_metrics(rows, cfg.k)
    write_json(os.path.join(out_dir, "metrics.json"), flat, sort_keys=True)
    return flat
