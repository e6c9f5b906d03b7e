"""``robustjax sweep --attack text_*``: text attacks on text-aware user-item runs.

Two commands make gradient and random substitution comparable (same targets, budgets and
report format)::

    robustjax sweep --checkpoint runs/text_mf --attack text_substitute_gradient \\
        --eps 0,1,2,4,8 --objective targeted --target-items 1,50,100 --out runs/text_sweep
    robustjax sweep --checkpoint runs/text_mf --attack text_substitute_random \\
        --eps 0,1,2,4,8 --objective targeted --target-items 1,50,100 --seeds 0,1,2 \\
        --out runs/text_sweep_random

``--eps`` are token budgets (integers) for the substitution kinds and radii for
``text_fgsm``/``text_pgd`` (with ``--norm``, ``--scope``, ``--budget``, ``--steps``).
Without ``--target-items`` the targets are ``DEFAULT_NUM_TARGETS`` items drawn with
``numpy.random.default_rng(0)`` (:func:`robustjax.eval.text_sweep.default_targets`). The
target HR@K uses K = max(``--ks``); the clean-metric change is test NDCG@K at the same K.
"""


def _config(args):
    """The sweep's TextSweepConfig from the arguments (levels checked before any load)."""
    from robustjax.eval.sweep_engine import parse_eps
    from robustjax.eval.text_sweep import TextSweepConfig
    from robustjax.runs import is_sequence_run

    if args.objective not in (None, "targeted"):
        raise ValueError(
            f"--attack {args.attack} promotes items: --objective must be 'targeted' (or left "
            f"out), got --objective {args.objective}."
        )
    seq = [p for p in args.checkpoint if is_sequence_run(p)]
    if seq:
        raise ValueError(
            f"--attack {args.attack}: {seq} are sequential runs; text attacks are implemented "
            "for text-aware user-item runs (text-mf) only."
        )
    ks = [int(x) for x in args.ks.split(",") if x.strip()]
    return TextSweepConfig(
        kind=args.attack,
        levels=parse_eps(args.eps),
        seeds=tuple(int(s) for s in args.seeds.split(",") if s.strip()),
        k=max(ks),
        ndcg_k=max(ks),
        rescore=args.rescore,
        norm=args.norm,
        scope=args.scope,
        budget=args.budget,
        num_steps=args.steps,
    )


def _target_ids(split, target_items: str) -> tuple[int, ...]:
    """Dense ids of the comma-separated original item tokens ``target_items``."""
    tokens = {str(t): i for i, t in enumerate(split.train.item_tokens)}
    wanted = [t.strip() for t in target_items.split(",") if t.strip()]
    missing = [t for t in wanted if t not in tokens]
    if missing:
        raise ValueError(
            f"--target-items {missing} are not item ids of {split.name} (e.g. {list(tokens)[:5]})."
        )
    return tuple(tokens[t] for t in wanted)


def _header(cfg, split) -> dict:
    """``sweep.json`` without its checkpoints: the attack, levels, seeds and data."""
    from robustjax.attacks.registry import TEXT_ATTACKS

    discrete = TEXT_ATTACKS[cfg.kind].discrete
    attack = {
        "kind": cfg.kind,
        "discrete": discrete,
        "level": "budget (tokens edited)" if discrete else "eps",
        "objective": f"targeted: {cfg.objective} surrogate of target HR@{cfg.k} over "
        "users without a training interaction with the target (label-free)",
        "k": cfg.k,
        "temperature": cfg.temperature,
    }
    if discrete:
        attack["rescore"] = cfg.rescore
    else:
        attack |= {"norm": cfg.norm, "scope": cfg.scope, "budget": cfg.budget,
                   "num_steps": cfg.num_steps}  # fmt: skip
    return {
        "attack": attack,
        "eps": [int(x) if discrete else float(x) for x in cfg.levels],
        "seeds": list(cfg.seeds),
        "data": split.name,
        "checkpoints": {},
    }


def run_text(args) -> int:
    """Runs a text-attack sweep from parsed ``robustjax sweep`` arguments (already checked
    by ``check_args``); writes the report to ``args.out``."""
    import dataclasses

    import numpy as np
    from tqdm.auto import tqdm

    from robustjax.eval.text_sweep import run_text_sweep
    from robustjax.report.text_report import write_text_report
    from robustjax.run import load_run

    cfg = _config(args)
    first = load_run(args.checkpoint[0])
    split = first.split
    cfg = dataclasses.replace(cfg, targets=_target_ids(split, args.target_items))
    rest = args.checkpoint[1:]
    runs = [first] + [load_run(p, split=split, data_from=args.checkpoint[0]) for p in rest]
    sweep = _header(cfg, split)
    for loaded in tqdm(runs, desc="checkpoints", unit="run", disable=args.no_progress):
        sweep["checkpoints"][loaded.path] = run_text_sweep(
            loaded, cfg, progress=not args.no_progress
        )
    written = write_text_report(sweep, args.out, k=cfg.k, ndcg_k=cfg.ndcg_k)
    hr = f"target_hr@{cfg.k}"
    for path, ck in sweep["checkpoints"].items():
        mean = np.mean(ck["metrics"][hr], axis=0)
        print(f"{path}: {hr} " + ", ".join(f"{x}: {v:.4f}" for x, v in zip(sweep["eps"], mean)))
    print("wrote " + ", ".join(sorted(written.values())))
    return 0


__all__ = ["run_text"]
