"""``robustjax sweep``: robustness curves of one or more trained runs in one report."""

import dataclasses
import os

from robustjax.eval.sweep import KINDS, OBJECTIVES, SweepConfig, parse_eps

HISTORY_KINDS = (
    "substitute_random",
    "substitute_gradient",
    "insert_random",
    "insert_gradient",
    "delete_random",
    "delete_gradient",
    "truncate",
)


def add_parser(sub) -> None:
    s = sub.add_parser(
        "sweep",
        help="evaluate trained runs under a grid of perturbations (one report)",
        description="Evaluate each --checkpoint under KIND at every eps (x seeds), all levels "
        "vmapped in one compiled call. Writes OUT/sweep.json (every metric at every level, per "
        "checkpoint, per user-activity group, head/tail items), OUT/sweep.md, and PNG plots "
        "of metric-vs-eps and stability-vs-eps (needs matplotlib: pip install "
        "'robustjax[plot]'; the JSON never does).",
    )
    s.add_argument(
        "--checkpoint",
        action="append",
        required=True,
        metavar="RUN_DIR",
        help="the --out folder of a `robustjax train` run (repeat to compare)",
    )
    s.add_argument(
        "--attack",
        default="pgd",
        choices=KINDS + HISTORY_KINDS,
        help="perturbation kind; for sequential runs (sasrec-*, bert4rec-*) also "
        "the history attacks substitute_*, insert_*, delete_*, truncate",
    )
    s.add_argument(
        "--eps",
        default="0:1:32",
        metavar="GRID",
        help="START:STOP:COUNT (evenly spaced) or a list a,b,c (default 0:1:32); "
        "for history attacks the budgets (items per sequence), e.g. 0,1,2,4",
    )
    s.add_argument(
        "--seeds",
        default="0",
        metavar="S,S,..",
        help="attack seeds (negatives, random starts, noise); spread is plotted",
    )
    s.add_argument(
        "--objective",
        default="train",
        choices=OBJECTIVES,
        help="train: max BPR over training triples (APR study); heldout: max BPR "
        "of the test positives; targeted: promote --target-items",
    )
    s.add_argument(
        "--target-items",
        default="",
        metavar="I,I,..",
        help="item tokens (original ids) to promote with --objective targeted",
    )
    s.add_argument("--steps", type=int, default=10, help="PGD steps (default 10)")
    s.add_argument("--norm", default="l2", choices=("l2", "linf"))
    s.add_argument(
        "--scope",
        default="row",
        choices=("row", "example", "batch"),
        help="ball per embedding row, per table, or over all tables jointly",
    )
    s.add_argument(
        "--targets",
        default="user,item",
        metavar="T,T",
        help="embedding tables to perturb: user, item or both (default)",
    )
    s.add_argument("--ks", default="10,20", help="ranking cutoffs (default 10,20)")
    s.add_argument("--stability-k", type=int, default=20, help="K of Jaccard@K and RBO@K")
    s.add_argument("--auc", action="store_true", help="also compute AUC at every level")
    s.add_argument("--user-batch", type=int, default=256, help="users per compiled step")
    s.add_argument("--out", required=True, metavar="DIR", help="output folder")
    s.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _ints(text):
    return tuple(int(x) for x in text.split(",") if x.strip())


def run(args) -> int:
    from robustjax.runs import is_sequence_run

    seq = [is_sequence_run(p) for p in args.checkpoint]
    if any(seq):
        if not all(seq):
            raise ValueError(
                "robustjax sweep: mix of sequential and user-item checkpoints "
                f"{args.checkpoint}; compare runs of one kind per report."
            )
        return run_sequential(args)
    if args.attack not in KINDS:
        raise ValueError(
            f"--attack {args.attack} is a history attack for sequential runs; "
            f"user-item runs take one of {KINDS}."
        )
    from tqdm.auto import tqdm

    from robustjax.data import user_item_csr
    from robustjax.report import shift_table, summarise, write_report
    from robustjax.run import load_run
    from robustjax.train import build_train_arrays

    first = load_run(args.checkpoint[0])
    split = first.split
    tokens = {t: i for i, t in enumerate(split.train.item_tokens)}
    wanted = [t for t in args.target_items.split(",") if t.strip()]
    missing = [t for t in wanted if t not in tokens]
    if missing:
        raise ValueError(f"--target-items {missing} are not item ids of this data set.")
    cfg = SweepConfig(
        kind=args.attack,
        eps=parse_eps(args.eps),
        seeds=_ints(args.seeds),
        num_steps=args.steps,
        norm=args.norm,
        scope=args.scope,
        targets=tuple(t for t in args.targets.split(",") if t),
        objective=args.objective,
        target_items=tuple(tokens[t] for t in wanted),
        ks=_ints(args.ks),
        stability_k=args.stability_k,
        auc=args.auc,
        user_batch=args.user_batch,
    )
    data = build_train_arrays(split.train.user, split.train.item, split.num_users, split.num_items)
    csr = lambda t: user_item_csr(t, split.num_users)
    target, exclude = csr(split.test), [csr(split.train), csr(split.valid)]
    sweep = {
        "attack": {
            k: v
            for k, v in dataclasses.asdict(cfg).items()
            if k not in ("eps", "seeds", "user_batch", "memory_mb")
        },
        "eps": list(cfg.eps),
        "seeds": list(cfg.seeds),
        "data": split.name,
        "checkpoints": {},
    }
    # load (and check) every checkpoint before the long part starts
    runs = [first] + [load_run(path, split=split) for path in args.checkpoint[1:]]
    bar = tqdm(runs, desc="checkpoints", unit="run", disable=args.no_progress)
    for loaded in bar:
        path = loaded.path
        result = _sweep_one(
            loaded, data, target, exclude, split.num_items, cfg, not args.no_progress
        )
        sweep["checkpoints"][path] = result
    os.makedirs(args.out, exist_ok=True)
    metric = f"ndcg@{max(cfg.ks)}"
    sweep = summarise(sweep, metrics=(metric, f"recall@{max(cfg.ks)}"))
    k = max(cfg.ks)
    written = write_report(
        sweep,
        args.out,
        metrics=(metric, f"recall@{k}"),
        stability=(f"jaccard@{cfg.stability_k}", f"rbo@{cfg.stability_k}"),
    )
    with open(written["markdown"], "a") as f:
        f.write("\n" + shift_table(sweep, metric))
    for path, ck in sweep["checkpoints"].items():
        s = ck["summary"][metric]
        print(
            f"{path}: clean {metric} {s['clean']:.4f}, area under curve {s['auc']:.4f}, "
            f"eps at half {s['eps_half']}"
        )
    print("wrote " + ", ".join(sorted(written.values())))
    return 0


def run_sequential(args) -> int:
    """Sweep of sequential runs (``robustjax.eval.seq_sweep``) on their test histories."""
    from robustjax.eval.seq_sweep import SeqSweepConfig, run_seq_sweep
    from robustjax.report import summarise, write_report
    from robustjax.runs import load_sequence_run

    first = load_sequence_run(args.checkpoint[0])
    runs = [first] + [load_sequence_run(p, data=first.data) for p in args.checkpoint[1:]]
    cfg = SeqSweepConfig(
        kind=args.attack,
        levels=parse_eps(args.eps),
        seeds=_ints(args.seeds),
        num_steps=args.steps,
        norm=args.norm,
        scope=args.scope,
        ks=_ints(args.ks),
        user_batch=args.user_batch,
    )
    sweep = {
        "attack": {
            "kind": cfg.kind,
            "norm": cfg.norm,
            "scope": cfg.scope,
            "num_steps": cfg.num_steps,
            "targets": ["seq"],
            "objective": "heldout (target among its sampled candidates)",
            "level": "budget (items)" if cfg.discrete else "eps",
        },
        "eps": list(cfg.levels),
        "seeds": list(cfg.seeds),
        "data": first.meta["data"],
        "checkpoints": {},
    }
    for loaded in runs:
        sweep["checkpoints"][loaded.path] = run_seq_sweep(
            loaded.graphdef,
            loaded.params,
            loaded.data.test_input,
            loaded.data.test_cands,
            num_items=loaded.data.num_items,
            cfg=cfg,
            progress=not args.no_progress,
        )
    metrics = tuple(f"{m}@{k}" for k in cfg.ks for m in ("hr", "ndcg"))
    written = write_report(sweep, args.out, metrics=metrics, stability=())
    for path, ck in summarise(sweep, metrics)["checkpoints"].items():
        s = ck["summary"][metrics[0]]
        print(
            f"{path}: clean {metrics[0]} {s['clean']:.4f}, area under curve {s['auc']:.4f}, "
            f"level at half {s['eps_half']}"
        )
    print("wrote " + ", ".join(sorted(written.values())))
    return 0


def _sweep_one(loaded, data, target, exclude, num_items, cfg, progress):
    from robustjax.eval.sweep import run_sweep

    return run_sweep(
        loaded.fns,
        loaded.params,
        data=data,
        target_csr=target,
        exclude_csrs=exclude,
        num_items=num_items,
        cfg=cfg,
        progress=progress,
    )


__all__ = ["add_parser", "run"]
