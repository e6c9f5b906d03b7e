"""What the method-comparison studies over seeds share (``apr``, ``seq-robustness``,
``text-towers``).

A study names methods, trains each on ``seeds`` training seeds at equal epochs, attacks
every trained model, and reports every figure as ``mean_ci`` over the seeds plus each
method's per-seed difference from a baseline method (``paired_diff``).
"""

import dataclasses
import itertools
import json
import os
from collections.abc import Callable

from tqdm.auto import tqdm

from robustjax._config_checks import check_int_fields, check_name_fields
from robustjax.report.intervals import mean_ci, paired_diff
from robustjax.studies._common import (
    StudyConfig,
    start_study,
    train_or_load,
    try_plot,
    write_json,
    write_text,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ComparisonConfig(StudyConfig):
    """The fields of a method comparison over seeds that ``run_comparison`` reads: the
    study's ``name``, its data (``data_path``, None: the synthetic set), the ``methods``
    compared, ``seeds`` training seeds ``first_seed``, ``first_seed + 1``, ... and every
    method's total ``epochs``. A study's config subclasses it with its defaults."""

    name: str
    data_path: str | None = None
    methods: tuple[str, ...]
    seeds: int = 5
    first_seed: int = 2024
    epochs: int


def check_comparison(
    cfg, *, methods: tuple[str, ...], ints: tuple[str, ...], baseline: str, grids: tuple[str, ...]
) -> None:
    """Common config checks: ``cfg.methods`` among the known ``methods``, the ``ints`` fields
    positive ints, ``warm_epochs`` inside the budget, every level grid strictly ascending
    from 0 (the clean level), and the baseline among the methods."""
    check_name_fields(cfg, (("methods", methods),))
    check_int_fields(cfg, ints)
    where = type(cfg).__name__
    if not 0 <= cfg.warm_epochs < cfg.epochs:
        raise ValueError(
            f"{where}.warm_epochs must be in [0, epochs={cfg.epochs}), got {cfg.warm_epochs}."
        )
    for field in grids:
        grid = getattr(cfg, field)
        if len(grid) < 2 or grid[0] != 0 or any(b <= a for a, b in itertools.pairwise(grid)):
            raise ValueError(
                f"{where}.{field} must ascend strictly from 0 (the clean level) with at "
                f"least 2 levels, got {grid}."
            )
    if baseline not in cfg.methods:
        raise ValueError(
            f"{where}.methods must include the baseline {baseline!r} (every method is "
            f"compared with it), got {cfg.methods}."
        )


def run_comparison(
    cfg,
    out_dir: str,
    method_config: Callable,
    attack: Callable,
    summarise: Callable,
    markdown: Callable,
    plots: Callable,
    *,
    resume: bool,
    progress: bool,
) -> dict:
    """Trains (or reads back) and attacks every method on every seed, with a progress bar
    over the runs; writes ``study.json``, ``study.md``, the plots and ``metrics.json``
    (the means, ``methods/<name>/<figure>/mean``), which it returns. The study's pieces
    (``method_config`` ... ``plots``) may be passed by position or by name."""
    cfg.validate()
    start_study(cfg, out_dir, resume)
    seeds = [cfg.first_seed + i for i in range(cfg.seeds)]
    units = [(m, s) for m in cfg.methods for s in seeds]
    configs = {(m, s): method_config(cfg, m, s) for m, s in units}  # all checked up front
    runs, cache = {}, {}
    bar = tqdm(units, desc=f"{cfg.name} study", unit="run", disable=not progress)
    for m, s in bar:
        bar.set_postfix_str(f"{m} seed {s}")
        run_dir = os.path.join(out_dir, "runs", m, f"seed{s}")
        metrics = train_or_load(configs[m, s], run_dir, progress=False)
        runs[m, s] = {"metrics": metrics, "attacks": attack(cfg, run_dir, cache)}
    study = summarise(cfg, runs, seeds)
    write_json(os.path.join(out_dir, "study.json"), study)
    write_text(os.path.join(out_dir, "study.md"), markdown(study))
    try_plot(cfg.name, plots, study, out_dir)
    flat = {
        f"methods/{m}/{fig}/mean": e["mean"]
        for m, figs in study["methods"].items()
        for fig, e in figs.items()
        if isinstance(e, dict) and "mean" in e
    }
    write_json(os.path.join(out_dir, "metrics.json"), flat, sort_keys=True)
    return flat


def cached_attacks(run_dir: str, spec: dict) -> tuple[str, dict | None]:
    """``(path, saved)``: the run's ``attacks.json`` path and its contents when they were
    computed under the same attack ``spec`` (else None: attack again)."""
    path = os.path.join(run_dir, "attacks.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved.get("spec") == spec:
            return path, saved
    return path, None


def comparison_study(cfg, runs: dict, seeds: list[int], figures: dict, extra, *, baseline, attack):
    """``study.json`` of a comparison with a warm-up (``warm_epochs``): ``study_header``,
    the ``attack`` description, and ``per_method``'s ``methods`` and ``paired``."""
    methods, paired = per_method(cfg.methods, runs, seeds, figures, baseline, extra)
    return {
        **study_header(cfg, seeds, baseline),
        "attack": attack,
        "methods": methods,
        "paired": paired,
    }


def study_header(cfg, seeds: list[int], baseline: str) -> dict:
    """The leading entries of ``study.json``: seeds, baseline, data and training budget."""
    return {
        "n": len(seeds),
        "seeds": seeds,
        "baseline": baseline,
        "data": cfg.data_path or "synthetic",
        "epochs": cfg.epochs,
        "warm_epochs": cfg.warm_epochs,
    }


def plot_curves(study: dict, curve: str, out_dir: str, *, xlabel: str, ylabel: str, title: str):
    """``curves_<curve>.png``: every method's mean ``curves[curve]`` with its 95% band (the
    title gets ``: mean, 95% CI (n=N)``)."""
    from robustjax.report.plots import plot_bands

    plot_bands(
        {m: e["curves"][curve] for m, e in study["methods"].items()},
        os.path.join(out_dir, f"curves_{curve}.png"),
        xlabel=xlabel,
        ylabel=ylabel,
        title=f"{title}: mean, 95% CI (n={study['n']})",
    )


def per_method(methods, runs: dict, seeds: list[int], figures: dict, baseline: str, extra):
    """``(methods, paired)``: every figure's ``mean_ci`` per method (plus ``extra(rows)``),
    and every other method's ``paired_diff`` against ``baseline`` (timings excluded)."""
    out, paired = {}, {}
    for m in methods:
        rows = [runs[m, s] for s in seeds]
        out[m] = {fig: mean_ci([f(r) for r in rows]) for fig, f in figures.items()}
        out[m].update(extra(rows))
    for m in methods:
        if m != baseline:
            paired[m] = {
                fig: paired_diff(out[m][fig]["values"], out[baseline][fig]["values"])
                for fig in figures
                if fig != "train_seconds"
            }
    return out, paired


def band(levels: list, curves: list[list[float]]) -> dict:
    """Mean curve and per-level 95% band over the seeds' curves (``curves[seed][level]``),
    in the form ``report.plot_bands`` draws."""
    per_level = [mean_ci([c[i] for c in curves]) for i in range(len(levels))]
    two = len(curves) >= 2
    return {
        "eps": levels,
        "mean": [e["mean"] for e in per_level],
        "lo": [e["ci95"][0] for e in per_level] if two else None,
        "hi": [e["ci95"][1] for e in per_level] if two else None,
        "n": len(curves),
    }
