"""The natural-noise study's outputs: results.md tables, plots, metrics.json."""

import json
import os
import sys

import numpy as np


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


def markdown(cfg, results: dict) -> str:
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


def write_outputs(cfg, results: dict, out_dir: str) -> dict:
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
