"""IRGAN (Wang et al., SIGIR 2017) for item recommendation next to BPR-MF and APR-MF.

The protocol is described in ``experiments/irgan/config.py``: the baselines run through
``run_experiment`` with their own experiment configs, IRGAN through ``fit_gan``; one
results table (``results.json``, ``results.md``), ``irgan_valid.png`` and ``metrics.json``.
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
from robustjax.run import Evaluator, run_experiment
from robustjax.studies._common import StudyConfig, start, write_json
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
    seed: int = 2024
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


def run_irgan_comparison(
    cfg: IrganConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Runs every baseline and IRGAN on one split and writes one table; returns the test
    metrics (also written to ``metrics.json``)."""
    start(cfg, out_dir)
    ref = baseline_config("bpr-mf", cfg)
    k = int(ref.train.early_metric.partition("@")[2])
    rows = {}
    for name in cfg.baselines:
        bcfg = baseline_config(name, cfg)
        if bcfg.data != ref.data or bcfg.eval.ks != ref.eval.ks:
            raise ValueError(
                f"irgan: baseline {name!r} uses other data or cutoffs than "
                f"bpr-mf ({bcfg.data} vs {ref.data}); the table needs one split."
            )
        run_dir = os.path.join(out_dir, name)
        resume_run = _resumable(os.path.join(run_dir, "checkpoint"), resume)
        metrics = run_experiment(bcfg, run_dir, resume=resume_run, progress=progress)
        rows[name] = {
            "test": _row(metrics, k),
            "valid": _row(metrics, k, "valid/"),
            "selected_epoch": metrics["best_epoch"],
            "epochs": bcfg.train.epochs,
            "seconds": metrics["total_seconds"],
        }
    irgan_dir = os.path.join(out_dir, "irgan")
    irgan = train_irgan(cfg, ref, irgan_dir, progress=progress, resume=resume)
    for name, row in irgan["rows"].items():
        if name == "seconds":
            continue
        rows[name] = {
            "test": _row(row["metrics"], k),
            "valid": _row(row["metrics"], k, "valid/"),
            "selected_epoch": cfg.pretrain_epochs + row["selected_epoch"],
            "epochs": cfg.pretrain_epochs + (cfg.gan_epochs if name != "irgan-init" else 0),
        }
    results = {
        "k": k,
        "selection": f"validation {ref.train.early_metric}",
        "data": cfg.data_path or "synthetic",
        "rows": rows,
        "irgan_seconds": irgan["rows"]["seconds"],
        "device": str(jax.devices()[0]),
        "config": dataclasses.asdict(cfg),
    }
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown(results))
    plot_history(
        irgan["history"], rows, ref.train.early_metric, os.path.join(out_dir, "irgan_valid.png")
    )
    flat = {f"test/{name}/{m}@{k}": v for name, row in rows.items() for m, v in row["test"].items()}
    write_json(os.path.join(out_dir, "metrics.json"), flat, sort_keys=True)
    return flat


def markdown(results: dict) -> str:
    k = results["k"]
    lines = [
        f"# IRGAN vs BPR-MF and APR-MF: test metrics@{k} (data: {results['data']})",
        "",
        f"Each model selected on {results['selection']}; test evaluated once.",
        "",
        (
            f"| model | Recall@{k} | NDCG@{k} | Precision@{k} | valid NDCG@{k} | "
            "selected epoch | epochs |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    rows = results["rows"]
    for name in sorted(rows, key=lambda n: list(LABELS).index(n) if n in LABELS else len(LABELS)):
        row = rows[name]
        t = row["test"]
        lines.append(
            f"| {LABELS.get(name, name)} | {t['recall']:.4f} | {t['ndcg']:.4f} | "
            f"{t['precision']:.4f} | {row['valid']['ndcg']:.4f} | "
            f"{row['selected_epoch']} | {row['epochs']} |"
        )
    return "\n".join(lines) + "\n"


def plot_history(history: list[dict], rows: dict, metric: str, path: str) -> None:
    """Validation ``metric`` of G and D over GAN epochs (skipped without matplotlib)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    for name, label in (("g", "IRGAN generator"), ("d", "IRGAN discriminator")):
        pts = [
            (r["epoch"], r[f"valid/{name}/{metric}"])
            for r in history
            if f"valid/{name}/{metric}" in r
        ]
        if pts:
            ax.plot(*zip(*pts), marker=".", label=label)
    for name in ("bpr-mf", "apr-mf"):
        if name in rows:
            ax.axhline(
                rows[name]["valid"]["ndcg"], ls="--", lw=1, label=f"{LABELS[name]} (selected)"
            )
    ax.set_xlabel("GAN epoch (0 = BPR-pretrained start)")
    ax.set_ylabel(f"validation {metric}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
