"""``robustjax sweep``: robustness curves of one or more trained runs in one report.

One engine for every model family (``robustjax.eval.sweep_engine``): the command parses the
grid, checks the attack against the kinds the family offers (the registries of
``robustjax.attacks``), evaluates each checkpoint and writes one report. A family
(``_ITEMS``, ``_SEQUENCE``) only says how its runs are loaded, how its config is built
and which metrics its report shows.
"""

import itertools
from collections.abc import Callable
from typing import NamedTuple

from robustjax.attacks.budget import BUDGETS
from robustjax.eval.sweep_engine import (
    OBJECTIVES,
    ORACLE_LABEL,
    all_sweep_kinds,
    parse_eps,
    sweep_kinds,
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
    _add_attack_args(s)
    _add_eval_args(s)


def _add_attack_args(s) -> None:
    """What is evaluated under which perturbation: runs, kind, grid, seeds, objective."""
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
        choices=all_sweep_kinds(),
        help="perturbation kind; embedding kinds for every run: "
        + ", ".join(sweep_kinds("items"))
        + "; for sequential runs (sasrec-*, bert4rec-*) also the history attacks: "
        + ", ".join(k for k in sweep_kinds("sequence") if k not in sweep_kinds("items"))
        + "; for text-aware runs (text-mf) the text attacks: "
        + ", ".join(k for k in all_sweep_kinds() if k not in sweep_kinds("sequence"))
        + " (robustjax.cli.text_sweep)",
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
    _add_objective_args(s)


def _add_objective_args(s) -> None:
    """What the attack maximises and its PGD/ball settings."""
    s.add_argument(
        "--objective",
        default=None,
        choices=OBJECTIVES,
        help="label-free: train (default for user-item runs; max BPR over training "
        "triples, the APR study), prediction (default for sequential runs; max "
        "cross-entropy of the model's own clean top item); oracle, an upper bound that "
        "knows the test items (user-item: max BPR of the test positives; sequential: "
        "the target's cross-entropy among its candidates), labelled so in every output; "
        "targeted: promote --target-items",
    )
    s.add_argument(
        "--target-items",
        default="",
        metavar="I,I,..",
        help="item tokens (original ids) to promote with --objective targeted",
    )
    s.add_argument("--steps", type=int, default=10, help="PGD steps (default 10)")
    s.add_argument(
        "--rescore",
        type=int,
        default=64,
        metavar="C",
        help="text_substitute_gradient: candidates scored exactly per edit (default 64; "
        "0: first-order only)",
    )
    s.add_argument("--norm", default="l2", choices=("l2", "linf"))
    s.add_argument(
        "--budget",
        default="relative",
        choices=BUDGETS,
        help="absolute: ||delta|| <= eps; relative: ||delta|| <= eps * ||x|| per scope unit "
        "(the size of the perturbed embedding rows; invariant to rescalings that leave the "
        "scores unchanged, e.g. MF users x a, items x 1/a). Default relative; absolute eps are "
        "only comparable between models of equal row norms (sweep.json records them)",
    )
    s.add_argument(
        "--scope",
        default="row",
        choices=("row", "example", "batch"),
        help="the eps ball: per embedding row (row); per example, i.e. jointly over "
        "everything perturbed at one leading index, such as a user's whole history "
        "(example; table attacks need tables of equal size for it); or one ball over "
        "everything perturbed (batch)",
    )
    s.add_argument(
        "--targets",
        default="user,item",
        metavar="T,T",
        help="embedding tables to perturb: user, item or both (default)",
    )


def _add_eval_args(s) -> None:
    """What is measured and where it goes: cutoffs, batching, output."""
    s.add_argument("--ks", default="10,20", help="ranking cutoffs (default 10,20)")
    s.add_argument("--stability-k", type=int, default=20, help="K of Jaccard@K and RBO@K")
    s.add_argument("--auc", action="store_true", help="also compute AUC at every level")
    s.add_argument("--user-batch", type=int, default=256, help="users per compiled step")
    s.add_argument(
        "--level-chunk",
        type=int,
        default=8,
        help="levels attacked and scored together (user-item sweeps); lower it to bound memory",
    )
    s.add_argument(
        "--memory-mb",
        type=int,
        default=1024,
        help="user-item sweeps: bound on each step's score tensor and on the attack's pair "
        "embeddings, which are then processed in chunks (default 1024)",
    )
    s.add_argument("--out", required=True, metavar="DIR", help="output folder")
    s.add_argument(
        "--mesh",
        default="data=1,model=1",
        metavar="data=D,model=M",
        help="device mesh (robustjax.sharding): tables row-sharded over M devices, users "
        "split over D (on CPU set ROBUSTJAX_CPU_DEVICES=D*M); default one device",
    )
    s.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _attack_fields(args) -> dict:
    """The fields both sweep configs take from the same flags: the attack, its seeds,
    steps, norm, scope and budget, and the cut-offs ``ks``."""
    return {
        "kind": args.attack,
        "seeds": _ints(args.seeds, "--seeds"),
        "num_steps": args.steps,
        "norm": args.norm,
        "scope": args.scope,
        "budget": args.budget,
        "ks": _ints(args.ks),
    }


def _ints(text, option: str = "--ks", minimum: int | None = None):
    """Comma-separated integers of ``option`` (each >= ``minimum`` when given)."""
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(
            f"{option} {text!r}: expected comma-separated integers (e.g. {option} 0,1,2)."
        ) from None
    if not values:
        raise ValueError(f"{option} {text!r}: expected at least one integer.")
    if minimum is not None and min(values) < minimum:
        raise ValueError(f"{option} {text!r}: every value must be >= {minimum}.")
    return values


def check_args(args) -> None:
    """Checks every argument before anything is loaded, computed or created: the grid
    (finite, >= 0, strictly ascending), seeds, cutoffs, batch sizes, that every
    checkpoint is a run folder and that ``--out`` can be created."""
    import math
    import os

    eps = parse_eps(args.eps)
    if not eps:
        raise ValueError(f"--eps {args.eps!r}: expected at least one level.")
    bad = [e for e in eps if not (math.isfinite(e) and e >= 0)]
    if bad:
        raise ValueError(
            f"--eps {args.eps!r}: eps must be finite and >= 0, got {bad}; use e.g. --eps 0:1:32."
        )
    if any(b <= a for a, b in itertools.pairwise(eps)):
        raise ValueError(f"--eps {args.eps!r}: levels must be strictly ascending, got {list(eps)}.")
    _ints(args.seeds, "--seeds", minimum=0)
    _ints(args.ks, "--ks", minimum=1)
    sizes = (
        ("--stability-k", args.stability_k),
        ("--user-batch", args.user_batch),
        ("--level-chunk", args.level_chunk),
        ("--memory-mb", args.memory_mb),
    )
    for option, value in sizes:
        if value < 1:
            raise ValueError(f"{option} {value}: expected an integer >= 1.")
    if args.steps < 0:
        raise ValueError(f"--steps {args.steps}: expected an integer >= 0.")
    for path in args.checkpoint:
        if not os.path.isdir(path):
            raise FileNotFoundError(
                f"--checkpoint {path!r}: no such folder; expected the --out folder of a "
                "`robustjax train` run."
            )
        params = os.path.join(path, "checkpoint", "params.npz")
        if not os.path.exists(params):
            raise FileNotFoundError(
                f"--checkpoint {path!r}: no {params}; expected the --out folder of a "
                "finished `robustjax train` run."
            )
    _check_out(args.out)


def _check_out(out: str) -> None:
    """``out`` is a folder, or can be made one (its nearest existing parent is a writable
    folder)."""
    import os

    if os.path.exists(out):
        if not os.path.isdir(out):
            raise NotADirectoryError(f"--out {out!r} exists and is not a folder.")
        if not os.access(out, os.W_OK):
            raise PermissionError(f"--out {out!r}: the folder is not writable.")
        return
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(f"--out {out!r} cannot be created: {parent!r} is not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out!r} cannot be created: {parent!r} is not writable.")


class _Family(NamedTuple):
    """What differs between model families; the rest of ``run`` is shared."""

    name: str  # "items" or "sequence" (``robustjax.eval.sweep_engine.sweep_kinds``)
    level: str  # what the printed summary calls a level
    load: Callable  # (paths) -> (runs, context)
    config: Callable  # (args, context) -> config
    header: Callable  # (config, context) -> the report's attack/eps/seeds/data entries
    evaluate: Callable  # (run, config, context, progress) -> checkpoint entry
    report: Callable  # (config) -> (metrics, stability, extra markdown fn or None)


def run(args) -> int:
    from tqdm.auto import tqdm

    from robustjax.report import summarise, write_report
    from robustjax.runs import is_sequence_run

    check_args(args)  # before loading or computing anything; --out is made at the end
    if args.attack not in sweep_kinds("sequence"):  # text attacks: their own driver
        from robustjax.cli.text_sweep import run_text

        return run_text(args)
    seq = [is_sequence_run(p) for p in args.checkpoint]
    if any(seq) and not all(seq):
        raise ValueError(
            "robustjax sweep: mix of sequential and user-item checkpoints "
            f"{args.checkpoint}; compare runs of one kind per report."
        )
    family = _SEQUENCE if all(seq) else _ITEMS
    kinds = sweep_kinds(family.name)
    if args.attack not in kinds:
        raise ValueError(
            f"--attack {args.attack} is a history attack for sequential runs; "
            f"user-item runs take one of {kinds}."
        )
    # load (and check) every checkpoint before the long part starts
    from robustjax.sharding import mesh_from_string

    mesh = mesh_from_string(args.mesh, key="--mesh")
    runs, context = family.load(args.checkpoint)
    context = {**context, "mesh": mesh}
    cfg = family.config(args, context)
    sweep = {**family.header(cfg, context), "checkpoints": {}}
    for loaded in tqdm(runs, desc="checkpoints", unit="run", disable=args.no_progress):
        sweep["checkpoints"][loaded.path] = family.evaluate(
            loaded, cfg, context, not args.no_progress
        )
    metrics, stability, extra = family.report(cfg)
    written = write_report(sweep, args.out, metrics=metrics, stability=stability)
    if extra is not None:
        with open(written["markdown"], "a") as f:
            f.write("\n" + extra(sweep))
    for path, ck in summarise(sweep, metrics)["checkpoints"].items():
        s = ck["summary"][metrics[0]]
        print(
            f"{path}: clean {metrics[0]} {s['clean']:.4f}, area under curve {s['auc']:.4f}, "
            f"{family.level} at half {s['eps_half']}"
        )
    print("wrote " + ", ".join(sorted(written.values())))
    return 0


# ------------------------------------------------------------------------ user-item runs
def _items_load(paths):
    from robustjax.data import user_item_csr
    from robustjax.run import load_run
    from robustjax.train import build_train_arrays

    first = load_run(paths[0])
    split = first.split
    runs = [first] + [load_run(path, split=split, data_from=paths[0]) for path in paths[1:]]
    data = build_train_arrays(  # negatives among warm items, as in training (cold_items)
        split.train.user, split.train.item, split.num_users, split.num_warm_items
    )
    csr = lambda t: user_item_csr(t, split.num_users)
    context = {
        "split": split,
        "data": data,
        "target": csr(split.test),
        "exclude": [csr(split.train), csr(split.valid)],
    }
    return runs, context


def _items_config(args, context):
    from robustjax.eval.sweep import SweepConfig

    tokens = {t: i for i, t in enumerate(context["split"].train.item_tokens)}
    wanted = [t for t in args.target_items.split(",") if t.strip()]
    missing = [t for t in wanted if t not in tokens]
    if missing:
        raise ValueError(f"--target-items {missing} are not item ids of this data set.")
    return SweepConfig(
        eps=parse_eps(args.eps),
        **_attack_fields(args),
        targets=tuple(t for t in args.targets.split(",") if t),
        objective=args.objective or "train",
        target_items=tuple(tokens[t] for t in wanted),
        stability_k=args.stability_k,
        auc=args.auc,
        user_batch=args.user_batch,
        level_chunk=args.level_chunk,
        memory_mb=args.memory_mb,
    )


def _items_header(cfg, context):
    from robustjax.eval.sweep import attack_header

    return {
        "attack": attack_header(cfg),
        "eps": list(cfg.eps),
        "seeds": list(cfg.seeds),
        "data": context["split"].name,
    }


def _items_evaluate(loaded, cfg, context, progress):
    import dataclasses

    from robustjax.eval.sweep import run_sweep
    from robustjax.sharding import shard_params, shard_scores

    mesh = context["mesh"]  # scores split users x items, tables row-sharded
    fns = dataclasses.replace(loaded.fns, score_all=shard_scores(loaded.fns.score_all, mesh))
    return run_sweep(
        loaded.fns if fns.score_all is loaded.fns.score_all else fns,
        shard_params(loaded.params, mesh),
        data=context["data"],
        target_csr=context["target"],
        exclude_csrs=context["exclude"],
        num_items=context["split"].num_items,
        cfg=cfg,
        progress=progress,
    )


def _items_report(cfg):
    from robustjax.report import shift_table

    k = max(cfg.ks)
    metric = f"ndcg@{k}"
    stability = (f"jaccard@{cfg.stability_k}", f"rbo@{cfg.stability_k}")
    return (metric, f"recall@{k}"), stability, lambda sweep: shift_table(sweep, metric)


_ITEMS = _Family(
    "items", "eps", _items_load, _items_config, _items_header, _items_evaluate, _items_report
)


# ------------------------------------------------------------------------ sequential runs
def _seq_load(paths):
    from robustjax.runs import load_sequence_run

    first = load_sequence_run(paths[0])
    runs = [first] + [
        load_sequence_run(p, data=first.data, fingerprint=first.fingerprint, data_from=paths[0])
        for p in paths[1:]
    ]
    return runs, {"data": first.meta["data"]}


def _seq_config(args, context):
    from robustjax.eval.seq_sweep import SeqSweepConfig

    return SeqSweepConfig(
        levels=parse_eps(args.eps),
        **_attack_fields(args),
        user_batch=args.user_batch,
        objective=args.objective or "prediction",
    )


def _seq_header(cfg, context):
    attack = {
        "kind": cfg.kind,
        "norm": cfg.norm,
        "scope": cfg.scope,
        "budget": cfg.budget,
        "num_steps": cfg.num_steps,
        "targets": ["seq"],
        "objective": (
            f"oracle: the target among its sampled candidates, {ORACLE_LABEL}"
            if cfg.objective == "oracle"
            else "prediction: the model's own clean top item over the catalogue (label-free)"
        ),
        "level": "budget (items)" if cfg.discrete else "eps",
    }
    return {
        "attack": attack,
        "eps": list(cfg.levels),
        "seeds": list(cfg.seeds),
        "data": context["data"],
    }


def _seq_evaluate(loaded, cfg, context, progress):
    from robustjax.eval.seq_sweep import run_seq_sweep
    from robustjax.sharding import shard_params

    return run_seq_sweep(
        loaded.graphdef,
        shard_params(loaded.params, context["mesh"]),  # tables row-sharded
        loaded.data.test_input,
        loaded.data.test_cands,
        num_items=loaded.data.num_items,
        cfg=cfg,
        progress=progress,
    )


def _seq_report(cfg):
    return tuple(f"{m}@{k}" for k in cfg.ks for m in ("sampled_hr", "sampled_ndcg")), (), None


_SEQUENCE = _Family(
    "sequence", "level", _seq_load, _seq_config, _seq_header, _seq_evaluate, _seq_report
)


__all__ = ["add_parser", "run"]
