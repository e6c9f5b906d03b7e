"""The transfer experiment's driver: both matrices, one JSON, one table file, one heat map."""

import dataclasses
import json
import os
import sys
import time

import numpy as np

from experiments.transfer.sequence import run_histories
from experiments.transfer.user_item import run_fake_profiles


def run_transfer(cfg, out_dir: str, *, progress: bool = True) -> dict:
    t0 = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(cfg.to_json())
    fake = run_fake_profiles(cfg, out_dir, progress=progress)
    hist = run_histories(cfg, out_dir, progress=progress)
    results = {
        "config": dataclasses.asdict(cfg),
        "fake_profiles": fake,
        "histories": hist,
        "total_seconds": time.perf_counter() - t0,
    }
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=float)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown(results))
    try:
        plot(results, os.path.join(out_dir, "results.png"))
    except ImportError:
        print(
            "transfer: matplotlib not installed, heat map skipped (pip install 'robustjax[plot]').",
            file=sys.stderr,
        )
    flat = flat_metrics(results)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(flat, f, indent=1, sort_keys=True)
    return flat


def flat_metrics(results: dict) -> dict:
    fake, hist = results["fake_profiles"], results["histories"]
    k = fake["k"]
    out = {
        f"test/target_hr@{k}_delta/{c['surrogate']}/{c['victim']}": c[f"target_hr@{k}/delta"]
        for c in fake["cells"]
    }
    for row in hist["rows"]:
        for m, cell in row["cells"].items():
            out[f"test/hr@10_drop/{row['surrogate']}/{m}"] = cell["hr@10/drop"]
    return out


def fake_matrix(fake: dict, key: str) -> np.ndarray:
    """``[rows, victims]`` of ``cell[key]``."""
    at = {(c["surrogate"], c["victim"]): c[key] for c in fake["cells"]}
    return np.array([[at[(r, v)] for v in fake["victims"]] for r in fake["rows"]])


def history_matrix(hist: dict, key: str = "hr@10/drop") -> np.ndarray:
    return np.array([[row["cells"][m][key] for m in hist["models"]] for row in hist["rows"]])


def _label(row: str, reference: str) -> str:
    if row == reference:
        return f"{row} (heuristic reference)"
    return row if row == "mf-unrolled" else f"{row} surrogate"


def markdown(results: dict) -> str:
    cfg, fake, hist = results["config"], results["fake_profiles"], results["histories"]
    k = fake["k"]
    lines = [
        (
            f"### Fake-profile transfer, {fake['data']['name']}: {fake['num_fake']} fake users "
            f"({cfg['fake_fraction']:.1%}), {len(fake['targets'])} {cfg['target_band']} targets, "
            f"filler size {cfg['filler_size']}, {fake['target_users']} unexposed users"
        ),
        "",
        (
            f"Cell: target HR@{k} after − before (victim seed {cfg['victim_seed']}; surrogates "
            f"seed {cfg['surrogate_seed']}), then test NDCG@20 after − before."
        ),
        "",
        "| surrogate → victim | " + " | ".join(fake["victims"]) + " |",
        "|---|" + "---|" * len(fake["victims"]),
    ]
    at = {(c["surrogate"], c["victim"]): c for c in fake["cells"]}
    for r in fake["rows"]:
        cells = [
            f"{at[(r, v)][f'target_hr@{k}/delta']:+.4f} "
            f"(NDCG@20 {at[(r, v)]['test_ndcg@20/delta']:+.4f})"
            for v in fake["victims"]
        ]
        lines.append(f"| {_label(r, cfg['reference'])} | " + " | ".join(cells) + " |")
    clean = " | ".join(
        f"{fake['clean'][v][f'target_hr@{k}']:.4f} / {fake['clean'][v]['test_ndcg@20']:.4f}"
        for v in fake["victims"]
    )
    lines += [f"| clean victim: target HR@{k} / test NDCG@20 | {clean} |", ""]
    lines += [
        (
            f"### History-edit transfer, {hist['source']}: {hist['num_users']} users, "
            f"{hist['num_items']} items, max_len {hist['max_len']}, {hist['budget']} substituted "
            "items per test history"
        ),
        "",
        (
            "Cell: HR@10 clean − edited (sampled protocol, 100 negatives); the diagonal "
            "(surrogate = model) is white-box."
        ),
        "",
        "| edits crafted on → evaluated on | " + " | ".join(hist["models"]) + " |",
        "|---|" + "---|" * len(hist["models"]),
    ]
    for row in hist["rows"]:
        name = (
            "random substitution (baseline)"
            if row["attack"] == "random"
            else f"{row['surrogate']} (gradient)"
        )
        lines.append(
            f"| {name} | "
            + " | ".join(f"{row['cells'][m]['hr@10/drop']:+.4f}" for m in hist["models"])
            + " |"
        )
    lines.append(
        "| clean HR@10 | "
        + " | ".join(f"{hist['clean'][m]['hr@10']:.4f}" for m in hist["models"])
        + " |"
    )
    lines.append("")
    lines.append(
        f"Total time {results['total_seconds']:.0f} s (fake profiles "
        f"{fake['seconds']:.0f} s, histories {hist['seconds']:.0f} s)."
    )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str) -> str:
    """Two heat maps (fake-profile target HR@K gain; history-edit HR@10 drop). Needs
    matplotlib (object API, no pyplot state)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("transfer heat map needs matplotlib") from err
    fake, hist = results["fake_profiles"], results["histories"]
    k = fake["k"]
    panels = [
        (
            fake_matrix(fake, f"target_hr@{k}/delta"),
            fake["rows"],
            fake["victims"],
            f"fake profiles: target HR@{k} gain",
            "surrogate (row) → victim (column)",
        ),
        (
            history_matrix(hist),
            [r["surrogate"] for r in hist["rows"]],
            hist["models"],
            "history edits: HR@10 drop",
            "crafted on (row) → evaluated on (column)",
        ),
    ]
    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    for ax, (m, rows, cols, title, xlabel) in zip(fig.subplots(1, 2), panels):
        lim = max(float(np.max(np.abs(m))), 1e-6)
        im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xticks(np.arange(len(cols)), cols)
        ax.set_yticks(np.arange(len(rows)), rows)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]:+.3f}", ha="center", va="center", fontsize=8)
        ax.set(title=title, xlabel=xlabel)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=120)
    return path
