"""The IRGAN study's report: :func:`summarise` (``results.json``), :func:`markdown`
(``results.md``) and :func:`plot_history` (``irgan_valid.png``)."""

import dataclasses

from robustjax.report.intervals import excludes_zero, fmt_ci, mean_ci, paired_diff
from robustjax.report.plots import plot_bands
from robustjax.studies._irgan_config import IrganConfig

LABELS = {
    "bpr-mf": "BPR-MF",
    "apr-mf": "APR-MF",
    "irgan-g": "IRGAN generator",
    "irgan-d": "IRGAN discriminator",
    "irgan-init": "IRGAN start (BPR-pretrained, before GAN; not selected)",
}


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
