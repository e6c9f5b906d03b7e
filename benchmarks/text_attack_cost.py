"""Cost of text attacks per target item: greedy HotFlip substitution (exact re-scoring of
the top C candidates, and first-order only) against random substitution.

For each target (a seeded draw, ``robustjax.eval.text_sweep.default_targets``) the attack
runs once at budget k on a trained text-mf run; the first target is a warm-up that
compiles (its time is recorded apart), the others are timed (median over targets). Encoder
work is counted in passes: texts run forward and gradient (backward) passes, per target and
per token changed (greedy can stop early, or re-edit a position when not re-scoring).
Random substitution spends no encoder pass; its cost is the host draw. The records also
hold the time of one text's forward pass, for scale.

Usage: python -m benchmarks.text_attack_cost [--run runs/text_mf] [--budget 8]
       python -m benchmarks.text_attack_cost --tiny     (tiny checkpoint, tiny run)
or: robustjax bench text_attack_cost [the same arguments]
"""

import argparse
import datetime
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import HERE, environment, write_record

WORDS = ["toy", "story", "star", "wars", "dark", "night", "comedy", "alien", "love", "city"]


def _tiny_run(folder: str) -> str:
    """Trains a tiny text-mf run (tiny checkpoint, 30 users x 24 titled items) in ``folder``."""
    from robustjax.cli.main import main
    from robustjax.text import write_tiny_checkpoint

    rng = np.random.default_rng(0)
    data = os.path.join(folder, "toy")
    os.makedirs(data)
    with open(os.path.join(data, "toy.inter"), "w") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for u in range(30):
            f.writelines(
                f"{u + 1}\t{i + 1}\t4\t{1000 * u + t}\n"
                for t, i in enumerate(rng.choice(24, 8, replace=False))
            )
    with open(os.path.join(data, "toy.item"), "w") as f:
        f.write("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n")
        f.writelines(
            f"{i + 1}\t{' '.join(rng.choice(WORDS, 3))}\t{1950 + i}\tDrama Comedy\n"
            for i in range(24)
        )
    ckpt = write_tiny_checkpoint(os.path.join(folder, "ckpt"), seed=0)
    out = os.path.join(folder, "run")
    args = ["train", "--experiment", "text-mf", "--tiny", "--data", data, "--out", out]
    args += ["--set", f"model.text_encoder={ckpt}", "--set", "model.text_max_len=16"]
    if main(args) != 0:
        raise RuntimeError("text_attack_cost: training the tiny text-mf run failed.")
    return out


def _time_method(name, attack, setups, budget):
    """Runs ``attack(setup)`` on every target; the first call is the compile warm-up."""
    times, passes, edits = [], [], []
    compile_s = None
    for j, setup in enumerate(setups):
        t = time.perf_counter()
        edit = attack(setup)
        jax.block_until_ready(edit.ids)
        dt = time.perf_counter() - t
        if j == 0:
            compile_s = dt
            continue
        times.append(dt)
        passes.append(edit.passes[-1])
        edits.append(int(np.sum(edit.ids != setup["ids"])))
    fwd = float(np.mean([p.forward for p in passes]))
    bwd = float(np.mean([p.backward for p in passes]))
    made = max(float(np.mean(edits)), 1e-9)
    return {
        "method": name,
        "first_target_s (compile + run)": compile_s,
        "seconds_per_target_median": float(np.median(times)),
        "seconds_per_target_mean": float(np.mean(times)),
        "tokens_changed_mean": float(np.mean(edits)),
        "budget": budget,
        "forward_passes_per_target": fwd,
        "backward_passes_per_target": bwd,
        "forward_passes_per_token_changed": fwd / made,
        "backward_passes_per_token_changed": bwd / made,
        "seconds_per_token_changed": float(np.median(times)) / made,
        # greedy steps tried (one gradient pass each; the last may find no improvement)
        "edit_steps_per_target": bwd,
        "seconds_per_edit_step": float(np.median(times)) / bwd if bwd else None,
        "timed_targets": len(times),
    }


def _time_methods(run, loaded, setups, args) -> list[dict]:
    """Greedy gradient substitution at each ``--rescore`` C and first-order only (C = 0),
    then random substitution, each timed over the targets' ``setups``."""
    from robustjax.text.attacks import substitute_gradient, substitute_random

    def gradient(c):
        return lambda s: substitute_gradient(
            run.model, run.enc_state, loaded.params, s["problem"], s["ids"], s["mask"],
            args.budget, editable=s["editable"], allowed=run.allowed, rescore=c,
        )  # fmt: skip

    def random(s):
        return substitute_random(
            s["ids"], args.budget, editable=s["editable"], allowed=run.allowed,
            key=jax.random.key(0),
        )  # fmt: skip

    methods = [
        _time_method(f"gradient_rescore_{c}", gradient(c), setups, args.budget)
        for c in (int(x) for x in args.rescore.split(",") if x.strip())
    ]
    methods.append(_time_method("gradient_first_order", gradient(0), setups, args.budget))
    methods.append(_time_method("random", random, setups, args.budget))
    return methods


def _forward_seconds(run, loaded, setup, *, reps: int = 20) -> float:
    """Mean seconds of one encoder forward pass of the ``setup``'s text (after a warm-up)."""
    from robustjax.text.attacks import text_objective

    ids, mask = jnp.asarray(setup["ids"][None]), jnp.asarray(setup["mask"][None])
    problem = setup["problem"]
    fwd = lambda i, m: text_objective(run.model, run.enc_state, loaded.params, problem, i, m)
    jax.block_until_ready(fwd(ids, mask))
    t = time.perf_counter()
    for _ in range(reps):
        jax.block_until_ready(fwd(ids, mask))
    return (time.perf_counter() - t) / reps


def _shapes(run, setup) -> dict:
    enc = run.ckpt.config
    return {
        "tokens_T": int(setup["ids"].shape[0]),
        "vocab_V": int(enc.vocab_size),
        "hidden_H": int(enc.hidden),
        "num_layers": int(enc.num_layers),
        "items": int(run.split.num_items),
        "users": int(run.split.num_users),
        "allowed_words": int(run.allowed.sum()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/text_mf", help="a trained text-mf run folder")
    p.add_argument("--tiny", action="store_true", help="tiny checkpoint and run (seconds)")
    p.add_argument("--budget", type=int, default=8, help="k, tokens edited per target")
    p.add_argument("--targets", type=int, default=6, help="targets (the first one warms up)")
    p.add_argument("--rescore", default="64,16", help="C of the re-scoring variants (C,C,..)")
    p.add_argument("--out", default=None, help="JSON record path")
    args = p.parse_args(argv)

    from robustjax.eval.text_sweep import TextRun, TextSweepConfig, default_targets, target_setup
    from robustjax.run import load_run

    tmp = tempfile.TemporaryDirectory() if args.tiny else None
    run_dir = _tiny_run(tmp.name) if args.tiny else args.run
    loaded = load_run(run_dir)
    cfg = TextSweepConfig(
        kind="text_substitute_gradient", levels=(0, args.budget), k=10 if args.tiny else 20
    )
    run = TextRun(loaded, cfg)
    targets = default_targets(run.split.num_items, count=args.targets)
    t = time.perf_counter()
    setups = [target_setup(run, i, cfg) for i in targets]
    setup_s = (time.perf_counter() - t) / len(setups)
    methods = _time_methods(run, loaded, setups, args)
    # one encoder forward pass of one text, for scale
    one_pass = _forward_seconds(run, loaded, setups[0])
    record = {
        "benchmark": "text_attack_cost",
        **environment(),
        "run": "tiny" if args.tiny else run_dir,
        "encoder": loaded.config.model.text_encoder if not args.tiny else "tiny checkpoint",
        "shapes": _shapes(run, setups[0]),
        "targets": [str(run.split.train.item_tokens[i]) for i in targets],
        "target_setup_s_mean (thresholds, tokens)": setup_s,
        "one_text_forward_s": one_pass,
        "methods": methods,
    }
    platform = jax.devices()[0].platform
    name = f"text-attack-cost-{platform}-{datetime.datetime.now():%Y%m%d}"
    name += "-tiny" if args.tiny else ""
    out = args.out or os.path.join(HERE, "results", name + ".json")
    write_record("text_attack_cost", record, out)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
