"""IRGAN (Wang et al., SIGIR 2017) for item recommendation next to BPR-MF and APR-MF.

The protocol is described in ``experiments/irgan/config.py``: the baselines run through
``run_experiment`` with their own experiment configs, IRGAN through ``fit_gan``, each on
``seeds`` training seeds (``seed``, ``seed + 1``, ...; the split stays fixed) in
``OUT/seed<S>/``. ``results.json`` holds every figure as ``{"mean", "ci95", "values",
"n"}`` (Student-t 95% over the seeds) and the per-seed (paired) differences against BPR-MF
(``paired``) and of G and D against their BPR-pretrained start (``paired_start``);
``results.md`` the tables, ``irgan_valid.png`` the mean validation curves with 95% bands,
``metrics.json`` the mean test metrics. Finished runs in ``OUT`` are read back, not retrained.
"""

import dataclasses
import json
import os
import time

import jax

from robustjax.data import prepare
from robustjax.experiments import get_config
from robustjax.losses import Term, clean_term, combine
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import ObjectivePhase
from robustjax.report.intervals import excludes_zero, fmt_ci, mean_ci, paired_diff
from robustjax.report.plots import plot_bands
from robustjax.run import Evaluator, run_experiment
from robustjax.studies._common import StudyConfig, start, try_plot, write_json
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
from robustjax.train.gan import BASELINES, D_LOSSES, ESTIMATORS, REWARDS
from robustjax.train.state import OPTIMIZERS

MODELS = ("mf", "neumf", "lightgcn")


@dataclasses.dataclass(frozen=True, kw_only=True)
class IrganConfig(StudyConfig):
    """IRGAN settings (the baselines use their own experiment configs)."""

    name: str = "irgan"
    data_path: str | None = None  # None: the embedded synthetic data set
    tiny: bool = False
    g_model: str = "mf"
    d_model: str = "mf"
    dim: int = 64
    pretrain_epochs: int = 100  # BPR epochs for G and for D (bpr-mf protocol)
    gan_epochs: int = 20
    d_steps: int = 1  # D epochs per GAN epoch
    g_steps: int = 1  # G epochs per GAN epoch
    batch_size: int = 2048
    optimizer: str = "adam"
    learning_rate: float = 1e-3  # pretraining, D and G
    weight_decay: float = 0.0  # dense L2 through the optimizer (GAN phase)
    temperature: float = 1.0  # G's softmax temperature
    d_loss: str = "bce"
    d_negatives: int = 1
    exclude_positives: bool = False  # IRGAN's code draws from all items
    g_estimator: str = "reinforce"
    g_samples: int = 4
    reward: str = "log1pexp"
    baseline: str = "loo"
    gumbel_tau: float = 0.5
    importance_mix: float = 0.0  # IRGAN: 0.2
    eval_every: int = 1  # GAN epochs between validations
    seed: int = 2024  # the first training seed: seeds are seed, seed + 1, ...
    seeds: int = 5  # training seeds (each runs every baseline and IRGAN)
    baselines: tuple[str, ...] = ("bpr-mf", "apr-mf")  # experiments run on the same split

    def __post_init__(self):
        object.__setattr__(self, "baselines", tuple(self.baselines))
        for name in (
            "dim",
            "gan_epochs",
            "d_steps",
            "g_steps",
            "batch_size",
            "d_negatives",
            "g_samples",
            "eval_every",
            "seeds",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(
                    f"IrganConfig.{name} must be an integer >= 1, got {getattr(self, name)!r}."
                )
        if self.pretrain_epochs < 0:
            raise ValueError(
                f"IrganConfig.pretrain_epochs must be >= 0, got {self.pretrain_epochs!r}."
            )
        for name in ("learning_rate", "temperature", "gumbel_tau"):
            if getattr(self, name) <= 0:
                raise ValueError(f"IrganConfig.{name} must be > 0, got {getattr(self, name)!r}.")
        if self.weight_decay < 0 or not 0 <= self.importance_mix < 1:
            raise ValueError(
                "IrganConfig: weight_decay must be >= 0 and importance_mix in "
                f"[0, 1), got {self.weight_decay!r} and {self.importance_mix!r}."
            )
        for name, choices in (
            ("g_model", MODELS),
            ("d_model", MODELS),
            ("optimizer", OPTIMIZERS),
            ("d_loss", D_LOSSES),
            ("g_estimator", ESTIMATORS),
            ("reward", tuple(REWARDS)),
            ("baseline", BASELINES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"IrganConfig.{name}={getattr(self, name)!r} is unknown; "
                    f"expected one of {choices}."
                )
        unknown = [b for b in self.baselines if b not in ("bpr-mf", "apr-mf")]
        if unknown:
            raise ValueError(
                f"IrganConfig.baselines={self.baselines!r} names {unknown}; "
                "expected a subset of ('bpr-mf', 'apr-mf')."
            )


LABELS = {
    "bpr-mf": "BPR-MF",
    "apr-mf": "APR-MF",
    "irgan-g": "IRGAN generator",
    "irgan-d": "IRGAN discriminator",
    "irgan-init": "IRGAN start (BPR-pretrained, before GAN; not selected)",
}


def baseline_config(name: str, cfg):
    """The named experiment's own config on ``cfg``'s data (tiny when ``cfg`` is)."""
    base = get_config(name, tiny=cfg.tiny)
    return dataclasses.replace(base, data=dataclasses.replace(base.data, path=cfg.data_path))


def _row(metrics: dict, k: int, prefix: str = "test/") -> dict:
    return {m: float(metrics[f"{prefix}{m}@{k}"]) for m in ("recall", "ndcg", "precision")}


def _resumable(checkpoint_dir: str, resume: bool) -> bool:
    """Resume a part of the study only where it left a checkpoint (else start it)."""
    return resume and os.path.exists(os.path.join(checkpoint_dir, "state.npz"))


def _pretrain(fns, params, data, cfg, progress, checkpoint_dir, resume):
    if cfg.pretrain_epochs == 0:
        return params
    result = fit(
        checkpoint_dir=checkpoint_dir,
        resume=_resumable(checkpoint_dir, resume),
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
    resume = _resumable(checkpoint_dir, resume)
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


def _seeds(cfg: IrganConfig) -> list[int]:
    return [cfg.seed + i for i in range(cfg.seeds)]


def _read_json(path: str):
    with open(path) as f:
        return json.load(f)


def _train_baseline(bcfg, run_dir: str, *, resume: bool, progress: bool) -> dict:
    """Trains a baseline into ``run_dir`` unless it holds a finished run of ``bcfg``
    (then its metrics are read back); ``resume`` continues an interrupted one."""
    done = os.path.join(run_dir, "metrics.json")
    config = os.path.join(run_dir, "config.json")
    params = os.path.join(run_dir, "checkpoint", "params.npz")
    finished = all(map(os.path.exists, (done, config, params)))
    if finished and _read_json(config) == json.loads(bcfg.to_json()):
        return _read_json(done)
    resume_run = _resumable(os.path.join(run_dir, "checkpoint"), resume)
    return run_experiment(bcfg, run_dir, resume=resume_run, progress=progress)


def _read_history(out_dir: str) -> list[dict]:
    """``history.jsonl``, one record per GAN epoch (a resumed run logs the replayed epochs
    again: the last record of an epoch wins)."""
    by_epoch = {}
    with open(os.path.join(out_dir, "history.jsonl")) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                by_epoch[record["epoch"]] = record
    return [by_epoch[e] for e in sorted(by_epoch)]


def _irgan_or_load(scfg: IrganConfig, ref, out_dir: str, *, progress: bool, resume: bool):
    """``train_irgan`` on one seed, or the rows and history of a finished run of the same
    config in ``out_dir`` (``run_config.json`` is written last, when the run is done)."""
    spec = json.loads(json.dumps(dataclasses.asdict(scfg)))
    marker = os.path.join(out_dir, "run_config.json")
    done = os.path.join(out_dir, "metrics.json")
    if os.path.exists(marker) and os.path.exists(done) and _read_json(marker) == spec:
        return {"rows": _read_json(done), "history": _read_history(out_dir)}
    if os.path.exists(marker):
        os.remove(marker)
    rows = train_irgan(scfg, ref, out_dir, progress=progress, resume=resume)["rows"]
    write_json(marker, spec, sort_keys=True)
    return {"rows": rows, "history": _read_history(out_dir)}


def _run_seed(cfg: IrganConfig, ref, k: int, seed: int, seed_dir: str, *, resume, progress):
    """Every baseline and IRGAN on training seed ``seed`` (the data split stays fixed)."""
    rows = {}
    for name in cfg.baselines:
        bcfg = baseline_config(name, cfg)
        bcfg = dataclasses.replace(bcfg, train=dataclasses.replace(bcfg.train, seed=seed))
        metrics = _train_baseline(
            bcfg, os.path.join(seed_dir, name), resume=resume, progress=progress
        )
        rows[name] = {
            "test": _row(metrics, k),
            "valid": _row(metrics, k, "valid/"),
            "selected_epoch": metrics["best_epoch"],
            "epochs": bcfg.train.epochs,
            "seconds": metrics["total_seconds"],
        }
    scfg = dataclasses.replace(cfg, seed=seed, seeds=1)
    irgan_dir = os.path.join(seed_dir, "irgan")
    irgan = _irgan_or_load(scfg, ref, irgan_dir, progress=progress, resume=resume)
    for name, row in irgan["rows"].items():
        if name == "seconds":
            continue
        rows[name] = {
            "test": _row(row["metrics"], k),
            "valid": _row(row["metrics"], k, "valid/"),
            "selected_epoch": cfg.pretrain_epochs + row["selected_epoch"],
            "epochs": cfg.pretrain_epochs + (cfg.gan_epochs if name != "irgan-init" else 0),
        }
    return {"rows": rows, "history": irgan["history"], "irgan_seconds": irgan["rows"]["seconds"]}


def run_irgan_comparison(
    cfg: IrganConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Runs every baseline and IRGAN on one split for each training seed and writes one
    table of means with 95% intervals and the paired differences against BPR-MF; returns
    the mean test metrics (also written to ``metrics.json``)."""
    start(cfg, out_dir)
    ref = baseline_config("bpr-mf", cfg)
    k = int(ref.train.early_metric.partition("@")[2])
    for name in cfg.baselines:
        bcfg = baseline_config(name, cfg)
        if bcfg.data != ref.data or bcfg.eval.ks != ref.eval.ks:
            raise ValueError(
                f"irgan: baseline {name!r} uses other data or cutoffs than "
                f"bpr-mf ({bcfg.data} vs {ref.data}); the table needs one split."
            )
    seeds = _seeds(cfg)
    per_seed = {
        s: _run_seed(
            cfg, ref, k, s, os.path.join(out_dir, f"seed{s}"), resume=resume, progress=progress
        )
        for s in seeds
    }
    results = summarise(cfg, per_seed, seeds, k, ref.train.early_metric)
    results["device"] = str(jax.devices()[0])
    write_json(os.path.join(out_dir, "results.json"), results, sort_keys=True)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown(results))
    try_plot(cfg.name, plot_history, results, os.path.join(out_dir, "irgan_valid.png"))
    flat = {
        f"test/{name}/{m}@{k}": e["mean"]
        for name, row in results["rows"].items()
        for m, e in row["test"].items()
    }
    write_json(os.path.join(out_dir, "metrics.json"), flat, sort_keys=True)
    return flat


def _paired(row: dict, base: dict) -> dict:
    return {
        part: {m: paired_diff(row[part][m]["values"], base[part][m]["values"]) for m in row[part]}
        for part in ("test", "valid")
    }


def summarise(cfg: IrganConfig, per_seed: dict, seeds: list[int], k: int, metric: str) -> dict:
    """``results.json``: per row (model) the mean [95% CI] of each figure over the seeds,
    paired differences against BPR-MF (``paired``; the IRGAN start when BPR-MF is not run)
    and of G and D against their own BPR-pretrained start (``paired_start``), and the mean
    validation curves of G and D per GAN epoch (``curves``)."""
    runs = [per_seed[s] for s in seeds]
    rows = {}
    for name in runs[0]["rows"]:
        rs = [r["rows"][name] for r in runs]
        rows[name] = {
            part: {m: mean_ci([r[part][m] for r in rs]) for m in rs[0][part]}
            for part in ("test", "valid")
        }
        rows[name]["selected_epoch"] = mean_ci([r["selected_epoch"] for r in rs])
        rows[name]["epochs"] = rs[0]["epochs"]
        if "seconds" in rs[0]:
            rows[name]["seconds"] = mean_ci([r["seconds"] for r in rs])
    baseline = "bpr-mf" if "bpr-mf" in rows else "irgan-init"
    paired = {n: _paired(rows[n], rows[baseline]) for n in rows if n != baseline}
    paired_start = {n: _paired(rows[n], rows["irgan-init"]) for n in ("irgan-g", "irgan-d")}
    return {
        "k": k,
        "n": len(seeds),
        "seeds": seeds,
        "selection": f"validation {metric}",
        "data": cfg.data_path or "synthetic",
        "baseline": baseline,
        "rows": rows,
        "paired": paired,
        "paired_start": paired_start,
        "curves": {n: _band([r["history"] for r in runs], n, metric) for n in ("g", "d")},
        "irgan_seconds": {
            part: mean_ci([r["irgan_seconds"][part] for r in runs]) for part in ("pretrain", "gan")
        },
        "config": dataclasses.asdict(cfg),
    }


def _band(histories: list[list[dict]], name: str, metric: str) -> dict:
    """Mean validation ``metric`` of G or D (``name``) per GAN epoch over the seeds, with
    the per-epoch 95% band (epochs validated in every seed)."""
    key = f"valid/{name}/{metric}"
    per_seed = [{r["epoch"]: r[key] for r in h if key in r} for h in histories]
    epochs = sorted(set.intersection(*(set(p) for p in per_seed)))
    entries = [mean_ci([p[e] for p in per_seed]) for e in epochs]
    two = len(histories) >= 2
    return {
        "eps": epochs,  # plot_bands' x axis: GAN epochs here
        "mean": [e["mean"] for e in entries],
        "lo": [e["ci95"][0] for e in entries] if two else None,
        "hi": [e["ci95"][1] for e in entries] if two else None,
        "n": len(histories),
    }


def _order(names) -> list[str]:
    return sorted(names, key=lambda n: list(LABELS).index(n) if n in LABELS else len(LABELS))


def _diff_cell(entry: dict) -> str:
    return fmt_ci(entry, signed=True) + (" *" if excludes_zero(entry) else "")


def _paired_table(paired: dict, k: int, n: int) -> list[str]:
    lines = [
        f"| model | n | Δ Recall@{k} | Δ NDCG@{k} | Δ Precision@{k} | Δ valid NDCG@{k} |",
        "|---|---|---|---|---|---|",
    ]
    for name in _order(paired):
        t = paired[name]["test"]
        cells = [t["recall"], t["ndcg"], t["precision"], paired[name]["valid"]["ndcg"]]
        lines.append(
            f"| {LABELS.get(name, name)} | {n} | " + " | ".join(map(_diff_cell, cells)) + " |"
        )
    return lines


def markdown(results: dict) -> str:
    k, n, rows = results["k"], results["n"], results["rows"]
    base = LABELS[results["baseline"]]
    lines = [
        (
            f"# IRGAN vs BPR-MF and APR-MF: test metrics@{k} (data: {results['data']}), "
            f"n = {n} training seeds ({', '.join(map(str, results['seeds']))})"
        ),
        "",
        (
            f"Each model selected on {results['selection']} per seed; test evaluated once per "
            "selected model. Cells: mean [95% CI] over the n training seeds (Student t); the "
            "per-seed values are in results.json."
        ),
        "",
        (
            f"| model | n | Recall@{k} | NDCG@{k} | Precision@{k} | valid NDCG@{k} | "
            "selected epoch | epochs |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in _order(rows):
        row = rows[name]
        t = row["test"]
        lines.append(
            f"| {LABELS.get(name, name)} | {row['test']['ndcg']['n']} | {fmt_ci(t['recall'])} | "
            f"{fmt_ci(t['ndcg'])} | {fmt_ci(t['precision'])} | {fmt_ci(row['valid']['ndcg'])} | "
            f"{fmt_ci(row['selected_epoch'], 1)} | {row['epochs']} |"
        )
    lines += [
        "",
        f"## Paired differences against {base} (same seeds; * = 95% CI excludes 0)",
        "",
        *_paired_table(results["paired"], k, n),
        "",
        "## IRGAN against its own BPR-pretrained start (same seeds)",
        "",
        *_paired_table(results["paired_start"], k, n),
        "",
        (
            "A difference whose interval includes 0 is not a ranking: the models are not "
            "shown to differ at these n seeds. With n = 1 there is no interval, and no ranking."
        ),
    ]
    return "\n".join(lines) + "\n"


def plot_history(results: dict, path: str) -> None:
    """Mean validation metric of G and D over GAN epochs with 95% bands over the seeds,
    and the selected baselines' mean (flat, with its band)."""
    metric = results["selection"].removeprefix("validation ")
    curves = {LABELS[f"irgan-{n}"]: results["curves"][n] for n in ("g", "d")}
    epochs = results["curves"]["g"]["eps"]
    for name in ("bpr-mf", "apr-mf"):
        if name in results["rows"]:
            e = results["rows"][name]["valid"]["ndcg"]
            lo, hi = e["ci95"]
            curves[f"{LABELS[name]} (selected)"] = {
                "eps": epochs,
                "mean": [e["mean"]] * len(epochs),
                "lo": None if lo is None else [lo] * len(epochs),
                "hi": None if hi is None else [hi] * len(epochs),
                "n": e["n"],
            }
    plot_bands(
        curves,
        path,
        xlabel="GAN epoch (0 = BPR-pretrained start)",
        ylabel=f"validation {metric}",
        title=f"IRGAN, mean [95% CI] over {results['n']} training seeds",
    )
