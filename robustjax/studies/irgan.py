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

import jax

from robustjax.experiments import get_config
from robustjax.run import run_experiment
from robustjax.studies._common import start, try_plot, write_json
from robustjax.studies._irgan_config import MODELS, IrganConfig
from robustjax.studies._irgan_report import LABELS, markdown, plot_history, summarise
from robustjax.studies._irgan_train import read_history, resumable, train_irgan

__all__ = [
    "LABELS",
    "MODELS",
    "IrganConfig",
    "baseline_config",
    "markdown",
    "plot_history",
    "run_irgan_comparison",
    "summarise",
    "train_irgan",
]


def baseline_config(name: str, cfg):
    """The named experiment's own config on ``cfg``'s data (tiny when ``cfg`` is)."""
    base = get_config(name, tiny=cfg.tiny)
    return dataclasses.replace(base, data=dataclasses.replace(base.data, path=cfg.data_path))


def _row(metrics: dict, k: int, prefix: str = "test/") -> dict:
    return {m: float(metrics[f"{prefix}{m}@{k}"]) for m in ("recall", "ndcg", "precision")}


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
    resume_run = resumable(os.path.join(run_dir, "checkpoint"), resume)
    return run_experiment(bcfg, run_dir, resume=resume_run, progress=progress)


def _irgan_or_load(scfg: IrganConfig, ref, out_dir: str, *, progress: bool, resume: bool):
    """``train_irgan`` on one seed, or the rows and history of a finished run of the same
    config in ``out_dir`` (``run_config.json`` is written last, when the run is done)."""
    spec = json.loads(json.dumps(dataclasses.asdict(scfg)))
    marker = os.path.join(out_dir, "run_config.json")
    done = os.path.join(out_dir, "metrics.json")
    if os.path.exists(marker) and os.path.exists(done) and _read_json(marker) == spec:
        return {"rows": _read_json(done), "history": read_history(out_dir)}
    if os.path.exists(marker):
        os.remove(marker)
    rows = train_irgan(scfg, ref, out_dir, progress=progress, resume=resume)["rows"]
    write_json(marker, spec, sort_keys=True)
    return {"rows": rows, "history": read_history(out_dir)}


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
