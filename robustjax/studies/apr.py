"""The APR study: adversarial training methods against tuned baselines, over seeds.

Every method trains for the same number of epochs on every training seed; each trained
model is then attacked (PGD-10 on the embedding tables, the training-triple objective, over
several attack seeds) under the relative budget (``||delta|| <= eps * ||row||``, invariant
to rescalings that leave the scores unchanged) and the absolute one (``||delta|| <= eps``).
Every figure is reported as the mean with its 95% Student-t interval over the training
seeds, and every method as its per-seed (paired) difference from the tuned BPR baseline.

Outputs in ``out_dir``: ``study.json`` (``methods.<name>.<figure>`` and
``paired.<name>.<figure>``, each ``{"mean", "ci95", "values", "n"}``, plus row norms and
curves), ``study.md``, ``curves_relative.png`` / ``curves_absolute.png`` (mean curves with
95% bands), ``metrics.json`` and one folder per run (``runs/<method>/seed<k>/``, each a
full run folder plus its ``attacks.json``). The study resumes (``--resume``): finished
runs and attacks are read back, an interrupted run continues from its checkpoint.
"""

import dataclasses

import numpy as np

from robustjax.experiments import get_config
from robustjax.objectives import AdvConfig
from robustjax.report.intervals import excludes_zero, fmt_ci, mean_ci
from robustjax.report.summary import curve_summary
from robustjax.studies._common import write_json
from robustjax.studies._seeds import (
    ComparisonConfig,
    band,
    cached_attacks,
    check_comparison,
    comparison_study,
    plot_curves,
    run_comparison,
)

# name -> (experiment, adversarial term replacing the experiment's own; None: keep it)
METHODS = {
    "bpr": ("bpr-mf", None),
    "bpr-tuned": ("bpr-mf-tuned", None),
    "apr": ("apr-mf-tuned", None),
    "pgd-at": ("apr-mf-tuned", AdvConfig(method="pgd", num_steps=5)),
    "vat": ("apr-mf-tuned", AdvConfig(method="vat")),
    "trades": ("apr-mf-tuned", AdvConfig(method="trades", num_steps=5)),
    "free-at": ("apr-mf-tuned", AdvConfig(method="free", replays=4)),
}
BASELINE = "bpr-tuned"
BUDGET_KINDS = ("relative", "absolute")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AprStudyConfig(ComparisonConfig):
    """Methods, seeds, equal training budget and the attack (``data_path``: a data file or
    split folder). ``--set key=value`` sets any field; ``--seeds N`` sets ``seeds``."""

    name: str = "apr"
    methods: tuple[str, ...] = tuple(METHODS)
    epochs: int = 200  # every method's total epochs
    warm_epochs: int = 100  # adversarial methods: clean BPR epochs before the adversarial term
    attack: str = "pgd"
    attack_steps: int = 10
    attack_seeds: int = 3  # negatives of the attack objective are sampled: >= 3 seeds
    relative_eps: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 4).tolist())
    absolute_eps: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 4).tolist())
    k: int = 20
    tiny: bool = False

    def __post_init__(self):
        check_comparison(
            self,
            methods=tuple(METHODS),
            ints=("seeds", "epochs", "attack_steps", "attack_seeds", "k"),
            baseline=BASELINE,
            grids=("relative_eps", "absolute_eps"),
        )

    def headline(self, metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if f"/clean/ndcg@{self.k}/" in k}


def method_config(cfg: AprStudyConfig, name: str, seed: int):
    """The training config of ``name`` on training seed ``seed``: its experiment (tuned
    settings), ``cfg.epochs`` in total, the adversarial term from ``cfg.warm_epochs`` on."""
    experiment, adv = METHODS[name]
    base = get_config(experiment, tiny=cfg.tiny)
    if cfg.data_path is not None:
        base = base.with_data(cfg.data_path, None)
    epochs, warm = cfg.epochs, cfg.warm_epochs
    if base.adv.method != "none" or adv is not None:
        tuned = base.adv
        adv = tuned if adv is None else dataclasses.replace(adv, eps=tuned.eps, weight=tuned.weight)
        if adv.method == "free":
            adv = dataclasses.replace(adv, weight=AdvConfig().weight)  # free AT has no weight
        adv = dataclasses.replace(adv, warm_epochs=warm)
    else:
        adv = base.adv
    train = dataclasses.replace(base.train, epochs=epochs, seed=seed)  # the data stay fixed
    return dataclasses.replace(base, name=f"{cfg.name}/{name}", train=train, adv=adv).validate()


def _attack(cfg: AprStudyConfig, run_dir: str, cache: dict) -> dict:
    """The run's test NDCG@k curves under both budgets (mean over attack seeds), their
    areas, and the row norms; cached in ``run_dir/attacks.json``."""
    spec = _attack_spec(cfg)
    path, saved = cached_attacks(run_dir, spec)
    if saved is not None:
        return saved
    from robustjax.eval.sweep import SweepConfig, run_sweep
    from robustjax.run import load_run

    run = load_run(run_dir, split=cache.get("split"))
    ctx = _context(run.split, cache)
    metric = f"ndcg@{cfg.k}"
    out = {"spec": spec, "budgets": {}}
    for budget in BUDGET_KINDS:
        eps = getattr(cfg, f"{budget}_eps")
        sweep = run_sweep(
            run.fns,
            run.params,
            data=ctx["data"],
            target_csr=ctx["target"],
            exclude_csrs=ctx["exclude"],
            num_items=run.split.num_items,
            cfg=SweepConfig(
                kind=cfg.attack,
                eps=eps,
                seeds=tuple(range(cfg.attack_seeds)),
                num_steps=cfg.attack_steps,
                budget=budget,
                ks=(cfg.k,),
                user_groups=0,
            ),
            progress=False,
        )
        curve = np.mean(np.asarray(sweep["metrics"][metric], np.float64), axis=0)
        out["budgets"][budget] = {
            "eps": list(eps),
            "curve": curve.tolist(),
            "auc": curve_summary(eps, curve)["auc"],
        }
        out["norms"] = sweep["norms"]
    write_json(path, out)
    return out


def _attack_spec(cfg: AprStudyConfig) -> dict:
    keys = ("attack", "attack_steps", "attack_seeds", "relative_eps", "absolute_eps", "k")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in
            ((k, getattr(cfg, k)) for k in keys)}  # fmt: skip


def _context(split, cache: dict) -> dict:
    """Training arrays and CSRs of the split, built once for every run of the study."""
    if "ctx" not in cache:
        from robustjax.data import user_item_csr
        from robustjax.train import build_train_arrays

        csr = lambda t: user_item_csr(t, split.num_users)
        cache["split"] = split
        cache["ctx"] = {
            "data": build_train_arrays(
                split.train.user, split.train.item, split.num_users, split.num_items
            ),
            "target": csr(split.test),
            "exclude": [csr(split.train), csr(split.valid)],
        }
    return cache["ctx"]


# ---------------------------------------------------------------------------- the study


def run_apr_study(
    cfg: AprStudyConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Trains every method on every seed, attacks it under both budgets and writes the
    study's files; returns its flat metrics (``methods/<name>/<figure>/mean``)."""
    hooks = (method_config, _attack, summarise_study, study_markdown, _plots)
    return run_comparison(cfg, out_dir, *hooks, resume=resume, progress=progress)


def summarise_study(cfg: AprStudyConfig, runs: dict, seeds: list[int]) -> dict:
    """``study.json``: per-method means with 95% intervals, paired differences against the
    tuned baseline, row norms and mean curves with bands."""
    k = cfg.k
    figures = {
        f"clean/ndcg@{k}": lambda r: r["metrics"][f"test/ndcg@{k}"],
        f"clean/recall@{k}": lambda r: r["metrics"][f"test/recall@{k}"],
        f"valid/ndcg@{k}": lambda r: r["metrics"][f"valid/ndcg@{k}"],
        **{f"auc/{b}": (lambda r, b=b: r["attacks"]["budgets"][b]["auc"]) for b in BUDGET_KINDS},
        f"drop@{_mid(cfg)}/relative": lambda r: _drop(r, "relative", _mid(cfg)),
        "train_seconds": lambda r: r["metrics"]["train_seconds"],
    }

    def extra(rows):
        return {
            "norms": {
                table: {stat: mean_ci([r["attacks"]["norms"][table][stat] for r in rows])
                        for stat in ("mean", "median")}
                for table in rows[0]["attacks"]["norms"]
            },
            "curves": {b: _band(rows, b) for b in BUDGET_KINDS},
        }  # fmt: skip

    attack = {
        **_attack_spec(cfg),
        "objective": "train (label-free)",
        "norm": "l2",
        "scope": "row",
        "targets": ["user", "item"],
    }
    return comparison_study(cfg, runs, seeds, figures, extra, baseline=BASELINE, attack=attack)


def _mid(cfg: AprStudyConfig) -> float:
    """The relative eps whose drop the tables quote: the middle level of the grid."""
    return cfg.relative_eps[len(cfg.relative_eps) // 2]


def _drop(row: dict, budget: str, eps: float) -> float:
    """Relative change of the curve from its clean level at ``eps`` (-0.2: a 20% drop)."""
    b = row["attacks"]["budgets"][budget]
    curve = b["curve"]
    return (curve[b["eps"].index(eps)] - curve[0]) / curve[0]


def _band(rows: list, budget: str) -> dict:
    """Mean curve and per-level 95% band over the rows' (training seeds') curves."""
    curves = [r["attacks"]["budgets"][budget]["curve"] for r in rows]
    return band(rows[0]["attacks"]["budgets"][budget]["eps"], curves)


def study_markdown(study: dict) -> str:
    """``study.md``: the methods table, the paired table and how to read them."""
    n = study["n"]
    k, recall, drop, eps_mid = _figure_names(study)
    a = study["attack"]
    lines = [
        f"# APR study: {study['data']}, n = {n} training seeds ({', '.join(map(str, study['seeds']))})",
        "",
        (
            f"Every method trains {study['epochs']} epochs (adversarial methods: the adversarial "
            f"term from epoch {study['warm_epochs']}), selected on validation {k[6:]}. Attack: "
            f"{a['attack']}-{a['attack_steps']} on the user and item tables, L2 per row, "
            f"training-triple objective (label-free), {a['attack_seeds']} attack seeds; "
            f"area under the test {k[6:]}-vs-eps curve (its mean height) under the relative "
            f"budget (eps 0..{a['relative_eps'][-1]} of each row's norm) and the absolute one "
            f"(eps 0..{a['absolute_eps'][-1]}). Cells: mean [95% CI] over the n seeds."
        ),
        "",
        *_methods_table(study["methods"], k, recall, drop, eps_mid),
        "",
        f"## Paired differences against {study['baseline']} (same seeds; * = 95% CI excludes 0)",
        "",
        *_paired_table(study["paired"], k, drop, eps_mid),
        "",
        (
            "A difference whose interval includes 0 is not a ranking. The absolute budget "
            "depends on each model's row norms (listed above); the relative one does not."
        ),
        "",
    ]
    return "\n".join(lines)


def _figure_names(study: dict) -> tuple[str, str, str, str]:
    """The clean NDCG and recall figures, the relative-drop figure and its eps."""
    first = next(iter(study["methods"].values()))
    k = next(f for f in first if f.startswith("clean/ndcg"))
    drop = next(f for f in first if f.startswith("drop@"))
    return k, k.replace("ndcg", "recall"), drop, drop[5:].split("/")[0]


def _methods_table(methods: dict, k: str, recall: str, drop: str, eps_mid: str) -> list[str]:
    lines = [
        (
            f"| method | n | test {k[6:]} | test {recall[6:]} | AUC relative "
            f"| change at relative eps {eps_mid} | AUC absolute "
            "| user row norm | item row norm | train s |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, e in methods.items():
        norms = [
            fmt_ci(e["norms"][t]["mean"], 2) if t in e["norms"] else "–" for t in ("user", "item")
        ]
        lines.append(
            f"| {m} | {e[k]['n']} | {fmt_ci(e[k])} | {fmt_ci(e[recall])} "
            f"| {fmt_ci(e['auc/relative'])} | {_pct(e[drop])} | {fmt_ci(e['auc/absolute'])} "
            f"| {norms[0]} | {norms[1]} | {e['train_seconds']['mean']:.0f} |"
        )
    return lines


def _paired_table(paired: dict, k: str, drop: str, eps_mid: str) -> list[str]:
    lines = [
        (
            f"| method | n | Δ test {k[6:]} | Δ AUC relative | Δ change at relative eps "
            f"{eps_mid} (points) | Δ AUC absolute |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for m, e in paired.items():
        cells = [
            (_pct(e[f], signed=True) if f == drop else fmt_ci(e[f], signed=True))
            + (" *" if excludes_zero(e[f]) else "")
            for f in (k, "auc/relative", drop, "auc/absolute")
        ]
        lines.append(f"| {m} | {e[k]['n']} | " + " | ".join(cells) + " |")
    return lines


def _pct(entry: dict, *, signed: bool = False) -> str:
    """A relative change as percent: ``-12.3% [-14.0, -10.6]``."""
    scaled = {**entry, "mean": 100 * entry["mean"],
              "ci95": [None if x is None else 100 * x for x in entry["ci95"]]}  # fmt: skip
    return fmt_ci(scaled, 1, signed=signed).replace(" [", "% [", 1)


def _plots(study: dict, out_dir: str) -> None:
    metric = next(f for f in next(iter(study["methods"].values())) if f.startswith("clean/"))[6:]
    for budget in BUDGET_KINDS:
        xlabel = f"eps ({budget} budget{', fraction of row norm' if budget == 'relative' else ''})"
        title = f"PGD on embeddings, {budget} budget"
        plot_curves(study, budget, out_dir, xlabel=xlabel, ylabel=f"test {metric}", title=title)
