"""The text-tower study: ID-only MF against text-aware MF (and its adversarially trained
tower), over seeds, on a cold-item split; then attacks that rewrite item text.

Each method trains on every training seed with the same epochs on the same split (the data
seed stays fixed: ``cold_items``, 10% of the items held out of training entirely). Figures:

* ``clean/ndcg@K``, ``clean/recall@K``: test metrics on the warm items (every item a
  candidate);
* ``cold/ndcg@K``, ``cold/recall@K``: each user's held-out cold-item rows ranked among the
  cold items only; an ID model has never trained those rows, a text tower reads their text;
* text methods only: for each text attack kind (gradient-guided substitution and its random
  baseline) and token budget ``b``, the target items' HR@K and mean rank over the users who
  never interacted with them (:mod:`robustjax.eval.text_sweep`), averaged over the targets
  (the same seeded targets for every run), and the test NDCG@K with the rewritten item.

Every figure is a mean with a 95% Student-t interval over the training seeds, plus paired
per-seed differences from the baseline (``text-mf``) on the figures both methods have.
Outputs in ``out_dir``: ``study.json``, ``study.md`` (with example rewrites),
``target_hr_<kind>.png``, ``metrics.json`` and one run folder per method and seed (its
``attacks.json`` caches the attacks).
"""

import dataclasses
import itertools
import json
import os

from robustjax._config_checks import check_int_fields, check_name_fields
from robustjax.experiments import get_config
from robustjax.report.intervals import excludes_zero, fmt_ci, mean_ci, paired_diff
from robustjax.studies._common import write_json
from robustjax.studies._seeds import ComparisonConfig, band, cached_attacks, run_comparison

# name -> (experiment, model name override or None)
METHODS = {
    "mf": ("text-mf", "mf"),
    "text-mf": ("text-mf", None),
    "text-mf-adv": ("text-mf-adv", None),
}
TEXT_METHODS = ("text-mf", "text-mf-adv")
BASELINE = "text-mf"
ATTACKS = ("text_substitute_gradient", "text_substitute_random")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextTowersConfig(ComparisonConfig):
    """Methods, seeds, equal epochs and the text attacks (``data_path``: a RecBole folder
    with item texts, ``<name>.item``). ``--set key=value`` sets any field; ``--seeds N``
    sets ``seeds``."""

    name: str = "text-towers"
    methods: tuple[str, ...] = ("mf", "text-mf")
    epochs: int = 100
    budgets: tuple[int, ...] = (0, 1, 2, 4, 8)  # tokens rewritten per target text
    num_targets: int = 20  # target items drawn once (seed 0) for every run
    attack_seeds: int = 3  # draws of the random-substitution baseline
    rescore: int = 64  # candidates re-scored exactly per greedy edit (the sweep's default)
    k: int = 20
    tiny: bool = False

    def __post_init__(self):
        check_name_fields(self, (("methods", tuple(METHODS)),))
        check_int_fields(self, ("seeds", "epochs", "num_targets", "attack_seeds", "k"))
        b = self.budgets
        if len(b) < 2 or b[0] != 0 or any(y <= x for x, y in itertools.pairwise(b)):
            raise ValueError(
                f"TextTowersConfig.budgets must ascend strictly from 0 (the clean text), got {b}."
            )
        if BASELINE not in self.methods:
            raise ValueError(
                f"TextTowersConfig.methods must include the baseline {BASELINE!r}, got "
                f"{self.methods}."
            )

    def validate(self):
        if self.data_path is None:
            raise ValueError(
                "text-towers needs item texts: pass --data with a RecBole folder holding "
                "<name>.item (e.g. --data ../shared/data/ml-100k); the synthetic set has none."
            )
        return self

    def headline(self, metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if f"/ndcg@{self.k}/" in k}


def method_config(cfg: TextTowersConfig, name: str, seed: int):
    """The training config of ``name`` on training seed ``seed`` (the split stays fixed):
    ``cfg.epochs`` in total for every method; an adversarial method keeps its experiment's
    number of adversarial epochs at the end (``text-mf-adv``: 80 clean + 20 adversarial)."""
    experiment, model_name = METHODS[name]
    base = get_config(experiment, tiny=cfg.tiny).with_data(cfg.data_path, None)
    model = base.model if model_name is None else dataclasses.replace(base.model, name=model_name)
    train = dataclasses.replace(base.train, epochs=cfg.epochs, seed=seed)
    adv = base.adv
    if adv.method != "none":  # equal budgets: its adversarial epochs end the same total
        adv_epochs = min(base.train.epochs - adv.warm_epochs, cfg.epochs - 1)
        adv = dataclasses.replace(adv, warm_epochs=cfg.epochs - adv_epochs)
    return dataclasses.replace(
        base, name=f"{cfg.name}/{name}", model=model, train=train, adv=adv
    ).validate()


def _attack_spec(cfg: TextTowersConfig) -> dict:
    return {
        "budgets": list(cfg.budgets),
        "num_targets": cfg.num_targets,
        "attack_seeds": cfg.attack_seeds,
        "rescore": cfg.rescore,
        "k": cfg.k,
        "kinds": list(ATTACKS),
    }


def _attack(cfg: TextTowersConfig, run_dir: str, cache: dict) -> dict:
    """Both text attacks on the run's targets (text models only), cached in
    ``run_dir/attacks.json``; ``{}`` for ID models."""
    with open(os.path.join(run_dir, "config.json")) as f:
        if json.load(f)["model"]["name"] != "text-mf":
            return {}
    spec = _attack_spec(cfg)
    path, saved = cached_attacks(run_dir, spec)
    if saved is not None:
        return saved
    from robustjax.eval.text_sweep import TextSweepConfig, default_targets, run_text_sweep
    from robustjax.run import load_run

    run = load_run(run_dir, split=cache.get("split"))
    cache.setdefault("split", run.split)
    targets = default_targets(run.split.num_items, seed=0, count=cfg.num_targets)
    out = {"spec": spec, "attacks": {}}
    for kind in ATTACKS:
        sweep = run_text_sweep(
            run,
            TextSweepConfig(
                kind=kind,
                levels=tuple(float(b) for b in cfg.budgets),
                seeds=tuple(range(cfg.attack_seeds if kind.endswith("random") else 1)),
                targets=targets,
                k=cfg.k,
                ndcg_k=cfg.k,
                rescore=cfg.rescore,
            ),
            progress=False,
        )
        out["attacks"][kind] = {
            "metrics": {m: _mean_rows(v) for m, v in sweep["metrics"].items()},
            "examples": _examples(sweep, cfg.budgets),
        }
    write_json(path, out)
    return out


def _mean_rows(rows: list[list[float]]) -> list[float]:
    """Per-level mean over the (target, seed) rows."""
    return [sum(r[i] for r in rows) / len(rows) for i in range(len(rows[0]))]


def _examples(sweep: dict, budgets, limit: int = 3) -> list[dict]:
    """The first ``limit`` targets' texts before and after each budget's rewrite (seed 0)."""
    out = []
    for token, entry in list(sweep["targets"].items())[:limit]:
        levels = entry["levels"][0]
        out.append(
            {
                "target": token,
                "text": entry["text"],
                "rewrites": {str(b): lv["text"] for b, lv in zip(budgets, levels, strict=True)},
            }
        )
    return out


def _attacked(kind: str, metric: str, level: int):
    """A figure: the run's ``metric`` under text attack ``kind`` at level index ``level``."""
    return lambda r: r["attacks"]["attacks"][kind]["metrics"][metric][level]


def _figures(cfg: TextTowersConfig, text: bool) -> dict:
    k = cfg.k
    figs = {
        f"clean/ndcg@{k}": lambda r: r["metrics"][f"test/ndcg@{k}"],
        f"clean/recall@{k}": lambda r: r["metrics"][f"test/recall@{k}"],
        f"cold/ndcg@{k}": lambda r: r["metrics"][f"test_cold/ndcg@{k}"],
        f"cold/recall@{k}": lambda r: r["metrics"][f"test_cold/recall@{k}"],
    }
    if text:
        last = len(cfg.budgets) - 1
        for kind in ATTACKS:
            short = kind.removeprefix("text_substitute_")
            for i, b in enumerate(cfg.budgets):
                figs[f"{short}@{b}/target_hr@{k}"] = _attacked(kind, f"target_hr@{k}", i)
            top = f"{short}@{cfg.budgets[-1]}"
            figs[f"{top}/target_mean_rank"] = _attacked(kind, "target_mean_rank", last)
            figs[f"{top}/ndcg@{k}"] = _attacked(kind, f"ndcg@{k}", last)
    figs["train_seconds"] = lambda r: r["metrics"]["train_seconds"]
    return figs


def summarise(cfg: TextTowersConfig, runs: dict, seeds: list[int]) -> dict:
    """``study.json``: per-method means with 95% intervals, paired differences against
    text-MF on the figures both methods have, target-HR curves with bands, examples."""
    methods, paired = {}, {}
    for m in cfg.methods:
        rows = [runs[m, s] for s in seeds]
        figs = _figures(cfg, m in TEXT_METHODS)
        methods[m] = {fig: mean_ci([f(r) for r in rows]) for fig, f in figs.items()}
        if m in TEXT_METHODS:
            methods[m]["curves"] = {
                kind: band(
                    list(cfg.budgets),
                    [r["attacks"]["attacks"][kind]["metrics"][f"target_hr@{cfg.k}"] for r in rows],
                )
                for kind in ATTACKS
            }
            methods[m]["examples"] = rows[0]["attacks"]["attacks"][ATTACKS[0]]["examples"]
    base = methods[BASELINE]
    for m, figs in methods.items():
        if m == BASELINE:
            continue
        paired[m] = {
            f: paired_diff(e["values"], base[f]["values"])
            for f, e in figs.items()
            if f in base and isinstance(e, dict) and "values" in e and f != "train_seconds"
        }
    return {
        "n": len(seeds),
        "seeds": seeds,
        "baseline": BASELINE,
        "data": cfg.data_path,
        "epochs": cfg.epochs,
        "attack": {
            **_attack_spec(cfg),
            "objective": "promote each target to the users who never interacted with it in "
            "training (label-free: no test rows are seen)",
        },
        "methods": methods,
        "paired": paired,
    }


def markdown(study: dict) -> str:
    """``study.md``: the methods table, the paired table and example rewrites."""
    figs = [f for f in study["methods"][BASELINE] if f not in ("curves", "examples")]
    a = study["attack"]
    lines = [
        (
            f"# Text item towers: {study['data']}, n = {study['n']} training seeds "
            f"({', '.join(map(str, study['seeds']))})"
        ),
        "",
        (
            f"Every method trains {study['epochs']} epochs on the same cold-item split. "
            "clean = test rows of warm items; cold = held-out items ranked among the cold "
            f"items. Text attacks rewrite up to b tokens of each of {a['num_targets']} target "
            "items' texts (gradient-guided substitution with exact re-scoring of the top "
            f"{a['rescore']} candidates per edit, and random substitution over "
            f"{a['attack_seeds']} draws), promoting the target to users who never interacted "
            "with it (training data only). Cells: mean [95% CI] over the n seeds; a method "
            "without a figure has no text to attack."
        ),
        "",
        "| figure | " + " | ".join(study["methods"]) + " |",
        "|---" * (len(study["methods"]) + 1) + "|",
    ]
    for f in figs:
        cells = [fmt_ci(e[f]) if f in e else "n/a" for e in study["methods"].values()]
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"## Paired differences against {study['baseline']} (same seeds; * = 95% CI excludes 0)",
        "",
    ]
    for m, e in study["paired"].items():
        lines += [f"### {m}", "", "| figure | Δ |", "|---|---|"]
        for f, d in e.items():
            lines.append(f"| {f} | {fmt_ci(d, signed=True)}{' *' if excludes_zero(d) else ''} |")
        lines.append("")
    lines += ["A difference whose interval includes 0 is not a ranking.", ""]
    examples = study["methods"][BASELINE].get("examples", [])
    if examples:
        lines += [
            f"## Example rewrites ({BASELINE}, first seed, gradient substitution)",
            "",
            "| target | budget | text |",
            "|---|---|---|",
        ]
        for ex in examples:
            for b, text in ex["rewrites"].items():
                lines.append(f"| {ex['target']} | {b} | {text} |")
        lines.append("")
    return "\n".join(lines)


def _plots(study: dict, out_dir: str) -> None:
    from robustjax.report.plots import plot_bands

    k = study["attack"]["k"]
    for kind in ATTACKS:
        plot_bands(
            {m: e["curves"][kind] for m, e in study["methods"].items() if "curves" in e},
            os.path.join(out_dir, f"target_hr_{kind}.png"),
            xlabel="tokens rewritten per target text",
            ylabel=f"target HR@{k} (users who never interacted with it)",
            title=f"{kind}: mean, 95% CI (n={study['n']})",
        )


def run_text_towers(
    cfg: TextTowersConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Trains and attacks every method on every seed; writes the study's files and returns
    its flat metrics (``methods/<name>/<figure>/mean``)."""
    return run_comparison(
        cfg,
        out_dir,
        resume=resume,
        progress=progress,
        method_config=method_config,
        attack=_attack,
        summarise=summarise,
        markdown=markdown,
        plots=_plots,
    )
