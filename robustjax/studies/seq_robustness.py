"""The sequential robustness study: SASRec clean against adversarially trained, over seeds.

Each method trains for the same number of epochs on every training seed (the adversarial
one: clean epochs, then its term on the input sequence embeddings). Every trained model is
attacked on its test histories with the label-free default objective (the model's own
clean top item; the attacker never sees the test item or its candidates): gradient item
substitution at a budget of items, and PGD on the input embeddings under the relative
budget. Figures are means with 95% Student-t intervals over the training seeds, and the
adversarial method's per-seed (paired) differences from plain SASRec.

Outputs in ``out_dir``: ``study.json`` (``methods.<name>.<figure>`` and
``paired.<name>.<figure>``, each ``{"mean", "ci95", "values", "n"}``, plus input row
norms), ``study.md``, ``curves_substitution.png`` / ``curves_pgd.png`` (mean curves with
95% bands), ``metrics.json`` and one run folder per method and seed (with its
``attacks.json``). ``--resume`` reads finished runs back and continues an interrupted one.
"""

import dataclasses

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

# name -> (experiment, adversarial term; None: clean training)
METHODS = {
    "sasrec": ("sasrec-ml1m", None),
    "sasrec-apr": ("sasrec-ml1m", AdvConfig(method="apr", eps=1.0, weight=1.0, targets=("seq",))),
    "sasrec-pgd": ("sasrec-ml1m", AdvConfig(method="pgd", eps=1.0, weight=1.0, targets=("seq",))),
}
BASELINE = "sasrec"
# attack name -> (sweep kind, levels field of the config, budget kind)
ATTACKS = {"substitution": "substitute_gradient", "pgd": "pgd"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeqRobustnessConfig(ComparisonConfig):
    """Methods, seeds, equal training budget and the attacks (``data_path``: an
    interaction file with timestamps). ``--set key=value`` sets any field; ``--seeds N``
    sets ``seeds``."""

    name: str = "seq-robustness"
    methods: tuple[str, ...] = ("sasrec", "sasrec-apr")
    first_seed: int = 0
    epochs: int = 100  # every method's total epochs
    warm_epochs: int = 50  # adversarial methods: clean epochs before the adversarial term
    max_len: int = 50  # histories truncated to the most recent items
    substitution_budgets: tuple[int, ...] = (0, 1, 2, 4)  # items substituted per history
    pgd_eps: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)  # relative to each input row's norm
    pgd_steps: int = 5
    k: int = 10
    tiny: bool = False

    def __post_init__(self):
        ints = ("seeds", "epochs", "pgd_steps", "k", "max_len")
        grids = ("substitution_budgets", "pgd_eps")
        check_comparison(self, methods=tuple(METHODS), ints=ints, baseline=BASELINE, grids=grids)

    def headline(self, metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if f"/clean/sampled_hr@{self.k}/" in k}


def method_config(cfg: SeqRobustnessConfig, name: str, seed: int):
    """The training config of ``name`` on training seed ``seed`` (the data stay fixed)."""
    experiment, adv = METHODS[name]
    base = get_config(experiment, tiny=cfg.tiny)
    if cfg.data_path is not None:
        base = base.with_data(cfg.data_path, None)
    model = dataclasses.replace(base.model, max_len=min(base.model.max_len, cfg.max_len))
    train = dataclasses.replace(base.train, epochs=cfg.epochs, seed=seed, buckets=1)
    if adv is not None:
        adv = dataclasses.replace(adv, warm_epochs=cfg.warm_epochs)
    else:
        adv = base.adv
    return dataclasses.replace(
        base, name=f"{cfg.name}/{name}", model=model, train=train, adv=adv
    ).validate()


def _attack(cfg: SeqRobustnessConfig, run_dir: str, cache: dict) -> dict:
    """Sampled HR/NDCG@k curves of the run under both attacks (label-free objective) and
    the input row norms; cached in ``run_dir/attacks.json``."""
    spec = _attack_spec(cfg)
    path, saved = cached_attacks(run_dir, spec)
    if saved is not None:
        return saved
    from robustjax.eval.seq_sweep import SeqSweepConfig, run_seq_sweep
    from robustjax.runs import load_sequence_run

    del cache  # each run rebuilds its own data: the sampled candidates depend on its seed
    run = load_sequence_run(run_dir)
    out = {"spec": spec, "attacks": {}}
    levels = {"substitution": cfg.substitution_budgets, "pgd": cfg.pgd_eps}
    for name, kind in ATTACKS.items():
        sweep = run_seq_sweep(
            run.graphdef,
            run.params,
            run.data.test_input,
            run.data.test_cands,
            num_items=run.data.num_items,
            cfg=SeqSweepConfig(
                kind=kind,
                levels=tuple(float(v) for v in levels[name]),
                num_steps=cfg.pgd_steps,
                budget="relative",
                ks=(cfg.k,),
                objective="prediction",
            ),
            progress=False,
        )
        out["attacks"][name] = {
            "levels": [float(v) for v in levels[name]],
            **{m: sweep["metrics"][f"{m}@{cfg.k}"][0] for m in ("sampled_hr", "sampled_ndcg")},
        }
        out["norms"] = sweep["norms"]
    write_json(path, out)
    return out


def _attack_spec(cfg: SeqRobustnessConfig) -> dict:
    return {
        "substitution_budgets": list(cfg.substitution_budgets),
        "pgd_eps": list(cfg.pgd_eps),
        "pgd_steps": cfg.pgd_steps,
        "k": cfg.k,
        "objective": "prediction",
    }


def run_seq_robustness(
    cfg: SeqRobustnessConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Trains SASRec clean and adversarially on every seed, attacks every model (item
    substitution, PGD) and writes the study's files; returns its flat metrics."""
    hooks = (method_config, _attack, summarise, markdown, _plots)
    return run_comparison(cfg, out_dir, *hooks, resume=resume, progress=progress)


def _figures(cfg: SeqRobustnessConfig) -> dict:
    k = cfg.k
    hr = lambda attack, i: lambda r: r["attacks"]["attacks"][attack]["sampled_hr"][i]
    figs = {
        f"clean/sampled_hr@{k}": lambda r: r["metrics"][f"test/sampled_hr@{k}"],
        f"clean/sampled_ndcg@{k}": lambda r: r["metrics"][f"test/sampled_ndcg@{k}"],
        f"clean/hr@{k}": lambda r: r["metrics"][f"test/hr@{k}"],
    }
    for i, b in enumerate(cfg.substitution_budgets[1:], start=1):
        figs[f"substitution@{b}/sampled_hr@{k}"] = hr("substitution", i)
    figs["auc/pgd_relative"] = lambda r: curve_summary(
        cfg.pgd_eps, r["attacks"]["attacks"]["pgd"]["sampled_hr"]
    )["auc"]
    figs["train_seconds"] = lambda r: r["metrics"]["train_seconds"]
    return figs


def summarise(cfg: SeqRobustnessConfig, runs: dict, seeds: list[int]) -> dict:
    """``study.json``: per-method means with 95% intervals, paired differences against
    plain SASRec, input row norms and mean curves with bands."""
    figures = _figures(cfg)

    def extra(rows):
        return {
            "norms": {
                stat: mean_ci([r["attacks"]["norms"]["seq"][stat] for r in rows])
                for stat in ("mean", "median")
            },
            "curves": {a: _band(rows, a) for a in ATTACKS},
        }

    attack = {
        **_attack_spec(cfg),
        "objective": "prediction: the model's own clean top item (label-free)",
        "pgd_budget": "relative",
    }
    return comparison_study(cfg, runs, seeds, figures, extra, baseline=BASELINE, attack=attack)


def _band(rows: list, attack: str) -> dict:
    curves = [r["attacks"]["attacks"][attack]["sampled_hr"] for r in rows]
    return band(rows[0]["attacks"]["attacks"][attack]["levels"], curves)


def markdown(study: dict) -> str:
    """``study.md``: the methods table and the paired table."""
    first = next(iter(study["methods"].values()))
    figs = [f for f in first if f not in ("norms", "curves", "train_seconds")]
    a = study["attack"]
    lines = [
        (
            f"# Sequential robustness: {study['data']}, n = {study['n']} training seeds "
            f"({', '.join(map(str, study['seeds']))})"
        ),
        "",
        (
            f"Every method trains {study['epochs']} epochs (adversarial methods: their term "
            f"from epoch {study['warm_epochs']}). Attacks on the test histories with the "
            "label-free objective (the model's own clean top item; the attacker never sees "
            f"the test item or its candidates): gradient substitution of "
            f"{a['substitution_budgets'][1:]} items, and PGD-{a['pgd_steps']} on the input "
            f"embeddings, relative budget eps {a['pgd_eps']} (area under the curve = its "
            "mean height). Metrics rank the test item among 100 sampled candidates. Cells: "
            "mean [95% CI] over the n seeds."
        ),
        "",
        "| method | n | " + " | ".join(figs) + " | input row norm |",
        "|---" * (len(figs) + 3) + "|",
    ]
    for m, e in study["methods"].items():
        cells = [fmt_ci(e[f]) for f in figs] + [fmt_ci(e["norms"]["mean"], 2)]
        lines.append(f"| {m} | {e[figs[0]]['n']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"## Paired differences against {study['baseline']} (same seeds; * = 95% CI excludes 0)",
        "",
        "| method | n | " + " | ".join(f"Δ {f}" for f in figs) + " |",
        "|---" * (len(figs) + 2) + "|",
    ]
    for m, e in study["paired"].items():
        cells = [fmt_ci(e[f], signed=True) + (" *" if excludes_zero(e[f]) else "") for f in figs]
        lines.append(f"| {m} | {e[figs[0]]['n']} | " + " | ".join(cells) + " |")
    lines += ["", "A difference whose interval includes 0 is not a ranking.", ""]
    return "\n".join(lines)


def _plots(study: dict, out_dir: str) -> None:
    ylabel = f"test sampled HR@{study['attack']['k']}"
    for attack, xlabel in (
        ("substitution", "items substituted per history (gradient, label-free)"),
        ("pgd", "eps (relative budget, fraction of each input row's norm)"),
    ):
        plot_curves(study, attack, out_dir, xlabel=xlabel, ylabel=ylabel, title=attack)
