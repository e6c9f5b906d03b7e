"""The natural-noise study's summary over seeds and its outputs.

``summarise_section`` turns ``per_model[model][tag]["seed<s>"] -> metrics`` (tag ``clean``
or ``kind@level``) into, per noise kind::

    {"levels": [L],
     "models": {model: {key: {"levels": [mean_ci] * L,       # the metric at every level
                              "auc": mean_ci,                 # per-seed area / level range
                              "rel_change": [None] + [mean_ci] * (L - 1)}}},
     "paired": {"vs_clean": {model: {key: [None] + [paired_diff] * (L - 1)}},
                "vs_baseline": {model: {key: {"levels": [paired_diff] * L,
                                              "auc": paired_diff,
                                              "rel_change": [None] + [paired_diff] * (L - 1)}}}}}

Every entry is ``{"mean", "ci95", "values", "n"}`` (``robustjax.report.intervals``).
``rel_change`` is the per-seed relative change ``(m(level) - m(0)) / m(0)`` (None when a
clean value is not positive); ``vs_clean`` the per-seed difference ``m(level) - m(0)`` of
the same model; ``vs_baseline`` the per-seed difference of a model from the first model
(``baseline`` in results.json, e.g. apr-mf minus bpr-mf) on the same seeds and noise.
``key`` runs over every metric of the runs (``valid/...``, ``test/...``,
``clean_mask/...``).
"""

import json
import os

import numpy as np

from robustjax.report.intervals import excludes_zero, fmt_ci, mean_ci, paired_diff
from robustjax.report.summary import curve_summary
from robustjax.studies._common import try_plot

NOT_A_RANKING = (
    "A difference whose 95% interval includes 0 is not a ranking (* marks intervals that "
    "exclude 0)."
)


def is_metric(key: str) -> bool:
    name = key.rpartition("/")[2]
    return "@" in name or name == "auc"


def _per_seed(v: np.ndarray, levels) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-seed AUC [S] and relative change [S, L] (None if a clean value is <= 0)."""
    auc = np.array([curve_summary(levels, row.tolist())["auc"] for row in v])
    rel = (v - v[:, :1]) / v[:, :1] if np.all(v[:, 0] > 0) else None
    return auc, rel


def _figures(v: np.ndarray, levels) -> dict:
    auc, rel = _per_seed(v, levels)
    return {
        "levels": [mean_ci(v[:, j]) for j in range(v.shape[1])],
        "auc": mean_ci(auc),
        "rel_change": [None]
        + [None if rel is None else mean_ci(rel[:, j]) for j in range(1, v.shape[1])],
    }


def _paired(a: np.ndarray, b: np.ndarray, levels) -> dict:
    (auc_a, rel_a), (auc_b, rel_b) = _per_seed(a, levels), _per_seed(b, levels)
    rel_ok = rel_a is not None and rel_b is not None
    return {
        "levels": [paired_diff(a[:, j], b[:, j]) for j in range(a.shape[1])],
        "auc": paired_diff(auc_a, auc_b),
        "rel_change": [None]
        + [paired_diff(rel_a[:, j], rel_b[:, j]) if rel_ok else None for j in range(1, a.shape[1])],
    }


def summarise_section(cfg, per_model: dict, seeds: list[int]) -> dict:
    """The per-kind summary of ``per_model`` over ``seeds`` (module docstring)."""
    levels = [float(x) for x in cfg.levels]
    baseline = cfg.models[0]
    out = {}
    for kind in cfg.kinds:
        tags = ["clean" if lv == 0 else f"{kind}@{lv:g}" for lv in cfg.levels]
        raw = {}  # model -> key -> [S, L]
        for model, cells in per_model.items():
            rows = [[cells[t][f"seed{s}"] for t in tags] for s in seeds]
            keys = [k for k in rows[0][0] if is_metric(k) and all(k in c for r in rows for c in r)]
            raw[model] = {
                k: np.array([[float(c[k]) for c in r] for r in rows], dtype=np.float64)
                for k in keys
            }
        vs_baseline = {}
        if baseline in raw:
            for model, figs in raw.items():
                if model != baseline:
                    vs_baseline[model] = {
                        k: _paired(v, raw[baseline][k], levels)
                        for k, v in figs.items()
                        if k in raw[baseline]
                    }
        out[kind] = {
            "levels": levels,
            "models": {
                m: {k: _figures(v, levels) for k, v in figs.items()} for m, figs in raw.items()
            },
            "paired": {
                "vs_clean": {
                    m: {
                        k: [None] + [paired_diff(v[:, j], v[:, 0]) for j in range(1, len(levels))]
                        for k, v in figs.items()
                    }
                    for m, figs in raw.items()
                },
                "vs_baseline": vs_baseline,
            },
        }
    return out


def _star(entry: dict) -> str:
    return " *" if excludes_zero(entry) else ""


def _pct(entry: dict | None, unit: str = "%") -> str:
    """A relative change entry in percent: ``-32.8% [-35.1, -30.5]`` (signed); ``unit``
    ``" pp"`` for a difference of two relative changes (percentage points)."""
    if entry is None:
        return "–"
    scaled = {
        "mean": 100 * entry["mean"],
        "ci95": [None if x is None else 100 * x for x in entry["ci95"]],
    }
    return fmt_ci(scaled, 1, signed=True).replace(" [", f"{unit} [", 1) + _star(entry)


def _header(first: list[str], levels: list[str]) -> list[str]:
    cols = first + levels
    return ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]


def tables(results: dict, key: str, section: str = "training_time") -> str:
    """Markdown for ``key``: mean [95% CI] at every level and the AUC; the relative change
    from the clean level (paired on the seed); differences from the baseline model."""
    levels = results["levels"]
    names = [f"{lv:g}" for lv in levels]
    sec = results[section]
    base = results["baseline"]
    rows = [(m, k) for m in results["models"] for k in results["kinds"]]
    have = [(m, k) for m, k in rows if key in sec[k]["models"].get(m, {})]
    lines = ["Mean [95% CI] over the training seeds:", ""]
    lines += _header(["model", "noise", "n"], names + ["AUC"])
    for m, k in have:
        e = sec[k]["models"][m][key]
        cells = [fmt_ci(x) for x in e["levels"]] + [fmt_ci(e["auc"])]
        lines.append(f"| {m} | {k} | {e['auc']['n']} | " + " | ".join(cells) + " |")
    lines += ["", "Relative change from the clean level of the same model and seed:", ""]
    lines += _header(["model", "noise", "n"], names[1:])
    for m, k in have:
        e = sec[k]["models"][m][key]
        cells = [_pct(x) for x in e["rel_change"][1:]]
        lines.append(f"| {m} | {k} | {e['auc']['n']} | " + " | ".join(cells) + " |")
    paired = [(m, k) for m, k in rows if key in sec[k]["paired"]["vs_baseline"].get(m, {})]
    if paired:
        lines += ["", f"Paired differences from {base} (same seeds and noise):", ""]
        lines += _header(
            ["model", "noise", "n"],
            [f"Δ at {n}" for n in names]
            + ["Δ AUC"]
            + [f"Δ rel. change at {n} (pp)" for n in names[1:]],
        )
        for m, k in paired:
            e = sec[k]["paired"]["vs_baseline"][m][key]
            cells = [fmt_ci(x, signed=True) + _star(x) for x in e["levels"] + [e["auc"]]]
            cells += [_pct(x, " pp") for x in e["rel_change"][1:]]
            lines.append(f"| {m} | {k} | {e['auc']['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(cfg, results: dict) -> str:
    n = results["n"]
    parts = [
        f"# Natural-noise robustness on {results['data']}",
        "",
        (
            f"Models {', '.join(results['models'])}; noise on the training split only "
            f"(valid/test clean); n = {n} training seed(s) {results['seeds']} (each sets the "
            f"model and the noise seed); {results['seconds']:.0f} s in total. Cells: mean "
            "[95% Student-t CI] over the seeds; AUC: area under the metric-vs-level curve / "
            "level range, per seed. Changes and differences are paired on the seed. "
            + NOT_A_RANKING
        ),
        "",
    ]
    for m in cfg.metrics:
        parts += [
            f"## test/{m}, training-time noise (observed training items masked)",
            "",
            tables(results, f"test/{m}"),
        ]
    for m in cfg.metrics[:1]:
        parts += [
            f"## test/{m}, training-time noise (clean training items masked)",
            "",
            tables(results, f"clean_mask/test/{m}"),
        ]
    if "test_time" in results:
        for m in cfg.metrics[:1]:
            parts += [
                f"## test/{m}, test-time noise on the graph (clean-trained model)",
                "",
                tables(results, f"test/{m}", "test_time"),
            ]
    return "\n".join(parts)


def curves(results: dict, key: str, kind: str, section: str = "training_time") -> dict:
    """``plot_bands`` curves of ``key`` under ``kind``: the mean over seeds at every level
    with its 95% band (none for a single seed), one per model."""
    sec = results[section][kind]
    out = {}
    for model, figs in sec["models"].items():
        if key not in figs:
            continue
        entries = figs[key]["levels"]
        single = entries[0]["ci95"][0] is None
        out[model] = {
            "eps": sec["levels"],
            "mean": [e["mean"] for e in entries],
            "lo": None if single else [e["ci95"][0] for e in entries],
            "hi": None if single else [e["ci95"][1] for e in entries],
            "n": entries[0]["n"],
        }
    return out


def plot(results: dict, out_dir: str, key: str, section: str = "training_time", prefix: str = ""):
    """``<prefix><metric>_<kind>.png`` for every kind: one mean curve with its 95% band per
    model (``robustjax.report.plots.plot_bands``); returns the paths."""
    from robustjax.report.plots import plot_bands

    stem = prefix + key.rpartition("/")[2].replace("@", "_at_")
    where = "training" if section == "training_time" else "test-time graph"
    return [
        plot_bands(
            curves(results, key, kind, section),
            os.path.join(out_dir, f"{stem}_{kind}.png"),
            xlabel=f"{kind} noise level ({where})",
            ylabel=key,
            title=f"{kind} noise: mean, 95% CI (n={results['n']})",
        )
        for kind in results["kinds"]
    ]


def _plots(cfg, results: dict, out_dir: str) -> None:
    for m in cfg.metrics:
        plot(results, out_dir, f"test/{m}")
        if "test_time" in results:
            plot(results, out_dir, f"test/{m}", "test_time", prefix="test_time_")


def write_outputs(cfg, results: dict, out_dir: str) -> dict:
    """Writes results.json, results.md, metrics.json and the plots; returns the headline
    numbers, means over the seeds (``test/<metric>/<model>/clean`` and
    ``.../<kind>/auc``)."""
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown(cfg, results))
    try_plot("natural-noise", _plots, cfg, results, out_dir, what="plots")
    key = f"test/{cfg.metrics[0]}"
    headline = {}
    for model in cfg.models:
        figs = results["training_time"][cfg.kinds[0]]["models"][model][key]
        headline[f"{key}/{model}/clean"] = figs["levels"][0]["mean"]
        for kind in cfg.kinds:
            figs = results["training_time"][kind]["models"][model][key]
            headline[f"{key}/{model}/{kind}/auc"] = figs["auc"]["mean"]
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(headline, f, indent=1, sort_keys=True)
    return headline
