"""The natural-noise grid: training runs, clean-mask and test-time evaluation, the report.

``results.json`` holds, per noise kind, a sweep dict in the format of ``robustjax.report``
(``eps`` = the noise levels, one checkpoint per model, ``metrics[key]`` = per-seed lists
over levels) summarised by ``robustjax.report.summarise``: ``clean``, ``drop@<level>``
(relative change from the clean level), ``auc`` (area under the metric-vs-level curve
divided by the level range, i.e. the curve's mean height) and ``eps_half``.
"""

import dataclasses
import json
import os
import sys
import time

import numpy as np

from experiments.natural_noise.config import NaturalNoiseConfig, model_config
from robustjax.data import SplitData, apply_noise, prepare
from robustjax.report import summarise


def _is_metric(key: str) -> bool:
    name = key.rpartition("/")[2]
    return "@" in name or name == "auc"


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()}


def _evaluate(fns, split: SplitData, params, ecfg, prefix: str) -> dict:
    """Full-ranking valid and test metrics of ``params``; the mask is ``split.train``."""
    from robustjax.run import Evaluator

    ev = Evaluator(fns, split, ecfg.eval.ks, ecfg.eval.batch_size)
    return {
        **_prefixed(prefix + "valid/", ev(params, "valid")),
        **_prefixed(prefix + "test/", ev(params, "test")),
    }


def _train(ecfg, run_dir: str, *, resume: bool) -> dict:
    """``run_experiment`` in ``run_dir``; with ``resume``, a finished run of the same config
    is reused and an interrupted one continues from its checkpoint."""
    from robustjax.run import run_experiment

    metrics_path = os.path.join(run_dir, "metrics.json")
    config_path = os.path.join(run_dir, "config.json")
    if resume and os.path.exists(metrics_path) and os.path.exists(config_path):
        with open(config_path) as f:
            same = f.read() == ecfg.to_json()
        if same:
            with open(metrics_path) as f:
                return json.load(f)
    state = os.path.join(run_dir, "checkpoint", "state.npz")
    return run_experiment(ecfg, run_dir, resume=resume and os.path.exists(state), progress=False)


def run_grid(
    cfg: NaturalNoiseConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Runs the grid of ``cfg`` and writes results.json, results.md, metrics.json, PNGs."""
    from tqdm.auto import tqdm

    from robustjax.models import build_model
    from robustjax.run import load_run

    cfg.validate()
    t0 = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(cfg.to_json())
    jobs = [
        (model, seed, kind, level)
        for model in cfg.models
        for seed in cfg.seeds
        for kind, level in [(None, 0.0)] + [(k, lv) for k in cfg.kinds for lv in cfg.levels[1:]]
    ]
    clean_splits: dict[str, SplitData] = {}
    runs: dict = {}  # model -> "clean" | "kind@level" -> "seed<s>" -> metrics
    test_time: dict = {}  # model -> kind@level -> seed<s> -> metrics (graph models)
    bar = tqdm(jobs, desc="natural-noise", unit="run", disable=not progress, dynamic_ncols=True)
    for model, seed, kind, level in bar:
        tag = "clean" if kind is None else f"{kind}@{level:g}"
        bar.set_postfix_str(f"{model} {tag} seed {seed}")
        ecfg = model_config(cfg, model, kind=kind, level=level, seed=seed)
        clean_cfg = dataclasses.replace(ecfg.data, train_noise=None, train_noise_level=0.0)
        if repr(clean_cfg) not in clean_splits:
            clean_splits[repr(clean_cfg)] = prepare(clean_cfg)
        clean = clean_splits[repr(clean_cfg)]
        run_dir = os.path.join(out_dir, "runs", model, tag, f"seed{seed}")
        metrics = dict(_train(ecfg, run_dir, resume=resume))
        noisy = clean if kind is None else apply_noise(clean, kind, level, seed=seed)
        loaded = load_run(run_dir, split=noisy)
        if kind is not None:  # the same parameters, hiding the clean training items
            metrics.update(_evaluate(loaded.fns, clean, loaded.params, ecfg, "clean_mask/"))
        else:
            metrics.update({f"clean_mask/{k}": v for k, v in metrics.items() if _is_metric(k)})
        runs.setdefault(model, {}).setdefault(tag, {})[f"seed{seed}"] = metrics
        if kind is None and cfg.test_time and ecfg.model.name == "lightgcn":
            for k in cfg.kinds:
                for lv in cfg.levels[1:]:
                    noised = apply_noise(clean, k, lv, seed=seed)
                    fns, _ = build_model(
                        ecfg.model,
                        clean.num_users,
                        clean.num_items,
                        seed=0,
                        train_pairs=(noised.train.user, noised.train.item),
                    )
                    m = {
                        **_evaluate(fns, noised, loaded.params, ecfg, ""),
                        **_evaluate(fns, clean, loaded.params, ecfg, "clean_mask/"),
                    }
                    test_time.setdefault(model, {}).setdefault(f"{k}@{lv:g}", {})[f"seed{seed}"] = m
    results = assemble(
        cfg,
        runs,
        test_time,
        data=next(iter(clean_splits.values())).name,
        seconds=time.perf_counter() - t0,
    )
    return write_outputs(cfg, results, out_dir)


def _sweep(cfg: NaturalNoiseConfig, kind: str, per_model: dict) -> dict:
    """One report sweep for ``kind``: ``per_model[model][tag][seed] -> metrics``."""
    checkpoints = {}
    for model, tags in per_model.items():
        cells = [tags["clean" if lv == 0 else f"{kind}@{lv:g}"] for lv in cfg.levels]
        keys = [
            k
            for k in cells[0][f"seed{cfg.seeds[0]}"]
            if _is_metric(k) and all(k in c[f"seed{s}"] for c in cells for s in cfg.seeds)
        ]
        checkpoints[model] = {
            "metrics": {
                k: [[float(c[f"seed{s}"][k]) for c in cells] for s in cfg.seeds] for k in keys
            }
        }
    shared = set.intersection(*(set(c["metrics"]) for c in checkpoints.values()))
    sweep = {
        "noise": {"kind": kind},
        "eps": [float(x) for x in cfg.levels],
        "levels": [float(x) for x in cfg.levels],
        "seeds": list(cfg.seeds),
        "checkpoints": checkpoints,
    }
    return summarise(sweep, sorted(shared))


def assemble(
    cfg: NaturalNoiseConfig, runs: dict, test_time: dict, *, data: str, seconds: float
) -> dict:
    """The results.json dict (module docstring)."""
    out = {
        "experiment": cfg.name,
        "config": dataclasses.asdict(cfg),
        "data": data,
        "levels": list(cfg.levels),
        "kinds": list(cfg.kinds),
        "models": list(cfg.models),
        "seeds": list(cfg.seeds),
        "seconds": seconds,
        "training_time": {k: _sweep(cfg, k, runs) for k in cfg.kinds},
        "runs": runs,
    }
    if test_time:
        per_model = {m: {**tags, "clean": runs[m]["clean"]} for m, tags in test_time.items()}
        out["test_time"] = {k: _sweep(cfg, k, per_model) for k in cfg.kinds}
    return out


# ----------------------------------------------------------------------------- outputs


def _fmt(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.4f}"


def table(results: dict, key: str, section: str = "training_time") -> str:
    """Markdown: one row per model x kind, the seed-mean ``key`` at every level with its
    relative change from the clean level, and the area under the curve."""
    levels = results["levels"]
    lines = [
        f"| model | noise | {' | '.join(f'{lv:g}' for lv in levels)} | AUC |",
        "|---" * (len(levels) + 3) + "|",
    ]
    for model in results["models"]:
        for kind in results["kinds"]:
            ck = results[section][kind]["checkpoints"].get(model)
            if ck is None or key not in ck.get("summary", {}):
                continue
            s = ck["summary"][key]
            cells = [_fmt(s["mean_over_seeds"][0])]
            for lv, v in zip(levels[1:], s["mean_over_seeds"][1:]):
                d = s[f"drop@{float(lv)!r}"]
                cells.append(_fmt(v) + ("" if d is None else f" ({100 * d:+.1f}%)"))
            lines.append(f"| {model} | {kind} | {' | '.join(cells)} | {_fmt(s['auc'])} |")
    return "\n".join(lines) + "\n"


def markdown(cfg: NaturalNoiseConfig, results: dict) -> str:
    n_seeds = len(results["seeds"])
    parts = [
        f"# Natural-noise robustness on {results['data']}",
        "",
        (
            f"Models {', '.join(results['models'])}; noise on the training split only "
            f"(valid/test clean); seed mean over {n_seeds} seed(s) {results['seeds']}; "
            f"{results['seconds']:.0f} s in total. Cells: metric (relative change from "
            "the clean level); AUC: area under the metric-vs-level curve / level range."
        ),
        "",
    ]
    for m in cfg.metrics:
        parts += [
            f"## test/{m}, training-time noise (observed training items masked)",
            "",
            table(results, f"test/{m}"),
        ]
    for m in cfg.metrics[:1]:
        parts += [
            f"## test/{m}, training-time noise (clean training items masked)",
            "",
            table(results, f"clean_mask/test/{m}"),
        ]
    if "test_time" in results:
        for m in cfg.metrics[:1]:
            parts += [
                f"## test/{m}, test-time noise on the graph (clean-trained model)",
                "",
                table(results, f"test/{m}", "test_time"),
            ]
    return "\n".join(parts)


def plot(
    results: dict, out_dir: str, key: str, section: str = "training_time", prefix: str = ""
) -> str:
    """``<prefix><metric>.png``: one panel per kind, one line (seed mean +- std) per model."""
    from matplotlib.figure import Figure

    kinds = results["kinds"]
    fig = Figure(figsize=(3.2 * len(kinds), 3.2), layout="constrained")
    axes = fig.subplots(1, len(kinds), sharey=True, squeeze=False)[0]
    for ax, kind in zip(axes, kinds):
        sweep = results[section][kind]
        x = np.asarray(sweep["levels"])
        for c, (model, ck) in enumerate(sweep["checkpoints"].items()):
            if key not in ck["summary"]:
                continue
            mean = np.asarray(ck["summary"][key]["mean_over_seeds"], dtype=float)
            std = np.asarray(ck["summary"][key]["std_over_seeds"], dtype=float)
            ax.plot(x, mean, marker="o", markersize=3, color=f"C{c}", label=model)
            ax.fill_between(x, mean - std, mean + std, color=f"C{c}", alpha=0.2)
        ax.set(title=kind, xlabel="noise level (fraction of interactions)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(key)
    axes[0].legend(fontsize="small")
    path = os.path.join(out_dir, prefix + key.rpartition("/")[2].replace("@", "_at_") + ".png")
    fig.savefig(path, dpi=110)
    return path


def write_outputs(cfg: NaturalNoiseConfig, results: dict, out_dir: str) -> dict:
    """Writes results.json, results.md, metrics.json and the plots; returns the headline
    numbers (``test/<metric>/<model>/clean`` and ``.../<kind>/auc``)."""
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown(cfg, results))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            "natural-noise: matplotlib not installed, plots skipped "
            "(pip install 'robustjax[plot]').",
            file=sys.stderr,
        )
    else:
        for m in cfg.metrics:
            plot(results, out_dir, f"test/{m}")
            if "test_time" in results:
                plot(results, out_dir, f"test/{m}", "test_time", prefix="test_time_")
    key = f"test/{cfg.metrics[0]}"
    headline = {}
    for model in cfg.models:
        s = results["training_time"][cfg.kinds[0]]["checkpoints"][model]["summary"][key]
        headline[f"{key}/{model}/clean"] = s["clean"]
        for kind in cfg.kinds:
            s = results["training_time"][kind]["checkpoints"][model]["summary"][key]
            headline[f"{key}/{model}/{kind}/auc"] = s["auc"]
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(headline, f, indent=1, sort_keys=True)
    return headline
