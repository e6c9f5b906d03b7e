"""APR reproduction: BPR, APR and its successors, clean and under embedding attacks.

One command trains every method on each data set, then evaluates each trained model clean
and under FGSM and PGD-10 attacks on the embedding tables (per-row L2 ball, the APR paper's
threat model: maximise the BPR loss over one sampled epoch of training triples) at several
eps, and writes ``results.json`` and ``results.md`` (plus each run's own outputs)::

    python experiments/apr_reproduction/run.py --out runs/apr_reproduction

Defaults: ml-100k-split (fixed split) with the reference protocol (100 BPR epochs, then 100
adversarial epochs), and ml-1m (per-user random 80/10/10 split, seed 2024) with 20 + 20
epochs to keep the CPU run short (``--ml1m-epochs``). Runtime on a 2-core CPU: about 3
minutes for ml-100k-split, about 25 minutes for ml-1m.
"""

import argparse
import dataclasses
import json
import os
import sys

import jax
import jax.numpy as jnp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..")))

from experiments import get_config
from robustjax.attacks import AttackConfig
from robustjax.eval import make_table_attack
from robustjax.objectives import AdvConfig
from robustjax.run import Evaluator, load_run, run_experiment
from robustjax.train import build_train_arrays

SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data"))

METHODS = {
    "bpr": AdvConfig(method="none"),
    "apr": AdvConfig(method="apr", eps=0.5, weight=1.0),
    "pgd-at": AdvConfig(method="pgd", eps=0.5, weight=1.0, num_steps=5),
    "vat": AdvConfig(method="vat", eps=0.5, weight=1.0),
    "trades": AdvConfig(method="trades", eps=0.5, weight=1.0, num_steps=5),
    "free-at": AdvConfig(method="free", eps=0.5, replays=4),
}
EPS = (0.1, 0.25, 0.5, 1.0)


def method_config(name, adv, data_path, epochs, *, split=None, tiny=False):
    cfg = get_config("apr-mf", tiny=tiny)
    warm = cfg.train.epochs // 2 if epochs is None else epochs
    data = dataclasses.replace(cfg.data, path=data_path)
    if split:
        data = dataclasses.replace(data, split=split)
    train = dataclasses.replace(cfg.train, epochs=warm if adv.method == "none" else 2 * warm)
    return dataclasses.replace(
        cfg,
        name=f"apr-reproduction/{name}",
        data=data,
        train=train,
        adv=dataclasses.replace(adv, warm_epochs=0 if adv.method == "none" else warm),
    )


def evaluate_attacks(cfg, run_dir, eps_grid, *, ks=(20,)):
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/apr_reproduction")
    p.add_argument("--datasets", default="ml-100k-split,ml-1m")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument(
        "--ml1m-epochs", type=int, default=20, help="warm-start (and adversarial) epochs on ml-1m"
    )
    p.add_argument("--tiny", action="store_true", help="smoke test on synthetic data")
    args = p.parse_args(argv)
    datasets = {
        "ml-100k-split": (os.path.join(SHARED, "ml-100k-split"), None, None),
        "ml-1m": (os.path.join(SHARED, "ml-1m"), "random", args.ml1m_epochs),
    }
    if args.tiny:
        datasets = {"synthetic": (None, None, None)}
    chosen = list(datasets) if args.tiny else args.datasets.split(",")
    results = {}
    previous = os.path.join(args.out, "results.json")
    if os.path.exists(previous):  # keep data sets run earlier into the same folder
        with open(previous) as f:
            results = {k: v for k, v in json.load(f).items() if k not in chosen}
    for ds in chosen:
        if ds not in datasets:
            raise SystemExit(f"unknown data set {ds!r}; choose from {sorted(datasets)}")
        path, split, epochs = datasets[ds]
        for name in args.methods.split(","):
            if name not in METHODS:
                raise SystemExit(f"unknown method {name!r}; choose from {sorted(METHODS)}")
            cfg = method_config(name, METHODS[name], path, epochs, split=split, tiny=args.tiny)
            run_dir = os.path.join(args.out, ds, name)
            print(f"== {ds} / {name}: {cfg.train.epochs} epochs", flush=True)
            metrics = run_experiment(cfg, run_dir)
            row = evaluate_attacks(cfg, run_dir, EPS, ks=(20,) if not args.tiny else (10,))
            row["train_seconds"] = metrics["train_seconds"]
            results.setdefault(ds, {})[name] = row
            write(args.out, results, "ndcg@20" if not args.tiny else "ndcg@10")
    return results


def write(out, results, metric):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
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
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
