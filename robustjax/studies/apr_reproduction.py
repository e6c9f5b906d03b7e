"""APR reproduction: BPR, APR and its successors, clean and under embedding attacks.

Trains every method on each data set (the ``apr-mf`` experiment's protocol, the method's
adversarial term swapped in), then evaluates each trained model clean and under FGSM and
PGD-10 attacks on the embedding tables at several eps; writes ``results.json``,
``results.md`` and ``metrics.json`` (plus each run's own outputs). The protocol and
runtimes are in ``experiments/apr_reproduction/config.py``.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp

from robustjax._config_checks import check_int_fields, check_name_fields
from robustjax.attacks import AttackConfig
from robustjax.eval import make_table_attack
from robustjax.experiments import get_config
from robustjax.objectives import AdvConfig
from robustjax.run import Evaluator, load_run, run_experiment
from robustjax.studies._common import StudyConfig, check_no_resume, write_json, write_text
from robustjax.train import build_train_arrays

METHODS = {
    "bpr": AdvConfig(method="none"),
    "apr": AdvConfig(method="apr", eps=0.5, weight=1.0),
    "pgd-at": AdvConfig(method="pgd", eps=0.5, weight=1.0, num_steps=5),
    "vat": AdvConfig(method="vat", eps=0.5, weight=1.0),
    "trades": AdvConfig(method="trades", eps=0.5, weight=1.0, num_steps=5),
    "free-at": AdvConfig(method="free", eps=0.5, replays=4),
}
EPS = (0.1, 0.25, 0.5, 1.0)
DATASETS = ("ml-100k-split", "ml-1m", "synthetic")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AprReproductionConfig(StudyConfig):
    """The data sets and methods of the comparison. ``--set key=value`` sets any field."""

    name: str = "apr-reproduction"
    data_path: str | None = None  # the folder holding ml-100k-split/ and ml-1m/
    datasets: tuple[str, ...] = ("ml-100k-split", "ml-1m")
    methods: tuple[str, ...] = tuple(METHODS)
    ml1m_epochs: int = 20  # warm-start (and adversarial) epochs on ml-1m
    tiny: bool = False

    def __post_init__(self):
        check_name_fields(self, (("datasets", DATASETS), ("methods", tuple(METHODS))))
        check_int_fields(self, ("ml1m_epochs",))

    def headline(self, metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if "/clean/" in k}

    def validate(self):
        if self.data_path is None and set(self.datasets) - {"synthetic"}:
            raise ValueError(
                f"AprReproductionConfig.data_path is None but datasets={self.datasets!r} "
                "need it; pass --data with the folder holding ml-100k-split/ and ml-1m/."
            )
        return self


def dataset(cfg: AprReproductionConfig, name: str) -> tuple:
    """``(data path, split, warm epochs)`` of data set ``name`` (None: the config's own)."""
    if name == "synthetic":
        return None, None, None
    if name == "ml-1m":
        return os.path.join(cfg.data_path, "ml-1m"), "random", cfg.ml1m_epochs
    return os.path.join(cfg.data_path, name), None, None


def method_config(name, adv, data_path, epochs, *, split=None, tiny=False):
    """The ``apr-mf`` config with ``adv`` as its adversarial term (none: BPR only); every
    method trains ``2 * warm`` epochs (BPR too: equal budgets)."""
    cfg = get_config("apr-mf", tiny=tiny)
    warm = cfg.train.epochs // 2 if epochs is None else epochs
    data = dataclasses.replace(cfg.data, path=data_path)
    if split:
        data = dataclasses.replace(data, split=split)
    train = dataclasses.replace(cfg.train, epochs=2 * warm)  # equal epochs for every method
    return dataclasses.replace(
        cfg,
        name=f"apr-reproduction/{name}",
        data=data,
        train=train,
        adv=dataclasses.replace(adv, warm_epochs=0 if adv.method == "none" else warm),
    )


def evaluate_attacks(cfg, run_dir, eps_grid, *, ks=(20,)):
    """Test metrics of the run in ``run_dir``: clean, and under FGSM/PGD-10 at each eps."""
    run = load_run(run_dir)
    split, fns, params = run.split, run.fns, run.params
    data = build_train_arrays(split.train.user, split.train.item, split.num_users, split.num_items)
    evaluator = Evaluator(fns, split, ks, cfg.eval.batch_size)
    out = {"clean": evaluator(params, "test")}
    for kind in ("fgsm", "pgd"):
        attack = make_table_attack(fns, AttackConfig(kind=kind, eps=0.5, num_steps=10))
        for eps in eps_grid:
            attacked = attack(params, data, jax.random.key(cfg.train.seed), jnp.float32(eps))
            out[f"{kind}@{eps}"] = evaluator(attacked, "test")
    return out


def run_apr_reproduction(
    cfg: AprReproductionConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Trains and attacks every method on every data set; returns the table's metric per
    cell (``test/<data set>/<method>/<clean|attack@eps>/ndcg@K``)."""
    check_no_resume(cfg.name, resume)
    cfg.validate()
    k = 10 if cfg.tiny else 20
    results = {}
    previous = os.path.join(out_dir, "results.json")
    if os.path.exists(previous):  # keep data sets run earlier into the same folder
        with open(previous) as f:
            results = {d: v for d, v in json.load(f).items() if d not in cfg.datasets}
    for ds in cfg.datasets:
        path, split, epochs = dataset(cfg, ds)
        for name in cfg.methods:
            mcfg = method_config(name, METHODS[name], path, epochs, split=split, tiny=cfg.tiny)
            run_dir = os.path.join(out_dir, ds, name)
            if progress:
                print(f"== {ds} / {name}: {mcfg.train.epochs} epochs", flush=True)
            metrics = run_experiment(mcfg, run_dir, progress=progress)
            row = evaluate_attacks(mcfg, run_dir, EPS, ks=(k,))
            row["train_seconds"] = metrics["train_seconds"]
            results.setdefault(ds, {})[name] = row
            write(out_dir, results, f"ndcg@{k}")
    flat = {
        f"test/{ds}/{name}/{col}/ndcg@{k}": cell[f"ndcg@{k}"]
        for ds in cfg.datasets
        for name, row in results[ds].items()
        for col, cell in row.items()
        if col != "train_seconds"
    }
    write_json(os.path.join(out_dir, "metrics.json"), flat, sort_keys=True)
    return flat


def write(out, results, metric):
    """``results.json`` and the ``results.md`` table (relative drops from clean)."""
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "results.json"), results, sort_keys=True)
    cols = ["clean"] + [f"{k}@{e}" for k in ("fgsm", "pgd") for e in EPS]
    lines = [f"# APR reproduction: test {metric} (relative drop from clean)", ""]
    for ds, rows in results.items():
        lines += [
            f"## {ds}",
            "",
            "| method | " + " | ".join(cols) + " | train s |",
            "|---" * (len(cols) + 2) + "|",
        ]
        for name, row in rows.items():
            clean = row["clean"][metric]
            cells = [f"{clean:.4f}"] + [
                f"{row[c][metric]:.4f} ({(row[c][metric] - clean) / max(clean, 1e-12):+.1%})"
                for c in cols[1:]
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['train_seconds']:.0f} |")
        lines.append("")
    write_text(os.path.join(out, "results.md"), "\n".join(lines))
