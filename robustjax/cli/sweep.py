"""``robustjax sweep``: robustness curves of one or more trained runs in one report.

One engine for every model family (``robustjax.eval.sweep_engine``): the command parses the
grid (its options and checks: :mod:`robustjax.cli.sweep_args`), checks the attack against
the kinds the family offers (the registries of
``robustjax.attacks``), evaluates each checkpoint and writes one report. A family
(``_ITEMS``, ``_SEQUENCE``) only says how its runs are loaded, how its config is built
and which metrics its report shows.
"""

from collections.abc import Callable
from typing import NamedTuple

from robustjax.cli.sweep_args import add_parser, attack_fields, check_args
from robustjax.eval.sweep_engine import ORACLE_LABEL, parse_eps, sweep_kinds


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
        **attack_fields(args),
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
        **attack_fields(args),
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


__all__ = ["add_parser", "check_args", "run"]
