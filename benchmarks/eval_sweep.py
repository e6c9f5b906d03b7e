"""Speed of robustness sweeps and of clean full-ranking evaluation (ml-100k-split, MF).

Side by side in one process, compile time apart:
  * a sweep of L levels (L in 1, 8, 32, 128) in one compiled call (``run_sweep``);
  * the same 32 levels as a Python loop of single-level evaluations (``run_sweep`` with
    one level, compiled once, called 32 times): the ratio ``vmapped / looped``;
  * one clean full-ranking evaluation (``evaluate_full``, with and without AUC) against
    the bare score matrix product ``U @ I^T`` of the same model.

Usage: python -m benchmarks.eval_sweep [--checkpoint runs/bpr] [--kind pgd]
or: robustjax bench eval_sweep [the same arguments]
Without a checkpoint, a freshly initialised MF model on ml-100k-split is used (timings do
not depend on the weights).
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import SHARED, environment, write_record
from robustjax.data import DataConfig, prepare, user_item_csr
from robustjax.eval import evaluate_full
from robustjax.eval.sweep import SweepConfig, run_sweep
from robustjax.models import ModelConfig, build_model
from robustjax.train import build_train_arrays


def timed(fn, repeats):
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return first, float(np.median(times))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.path.join(SHARED, "ml-100k-split"))
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--kind", default="pgd")
    p.add_argument("--levels", default="1,8,32,128")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.checkpoint:
        from robustjax.run import load_run

        run = load_run(args.checkpoint)
        split, fns, params = run.split, run.fns, run.params
    else:
        split = prepare(DataConfig(path=args.data))
        fns, params = build_model(ModelConfig(dim=64), split.num_users, split.num_items, seed=0)
    data = build_train_arrays(split.train.user, split.train.item, split.num_users, split.num_items)
    csr = lambda t: user_item_csr(t, split.num_users)
    kw = {
        "data": data,
        "target_csr": csr(split.test),
        "exclude_csrs": [csr(split.train), csr(split.valid)],
        "num_items": split.num_items,
        "progress": False,
    }

    def sweep(eps):
        cfg = SweepConfig(kind=args.kind, eps=tuple(eps), ks=(10, 20))
        return lambda: run_sweep(fns, params, cfg=cfg, **kw)

    record = {
        "benchmark": "eval_sweep",
        **environment(),
        "kind": args.kind,
        "shapes": {
            "num_users": split.num_users,
            "num_items": split.num_items,
            "dim": 64,
            "test_users": int(np.count_nonzero(np.diff(csr(split.test)[0]))),
        },
        "sweep": {},
    }
    for n in (int(x) for x in args.levels.split(",")):
        first, steady = timed(sweep(np.linspace(0, 1, n)), args.repeats)
        record["sweep"][str(n)] = {
            "first_call_s": first,
            "steady_s": steady,
            "compile_s": max(first - steady, 0.0),
            "per_level_s": steady / n,
        }
        print(f"{n} levels: {steady:.3f} s (first call {first:.2f} s)", flush=True)
    grid = np.linspace(0, 1, 32)
    one = [sweep([e]) for e in grid]
    one[0]()  # compile the single-level evaluator once

    def loop():
        for f in one:
            f()

    _, looped = timed(loop, max(1, args.repeats - 1))
    vmapped = record["sweep"].get("32", {}).get("steady_s") or timed(sweep(grid), 1)[1]
    record["loop32"] = {
        "steady_s": looped,
        "vmapped_s": vmapped,
        "ratio_vmapped_over_loop": vmapped / looped,
    }
    print(
        f"32 levels: vmapped {vmapped:.3f} s vs loop {looped:.3f} s (ratio {vmapped / looped:.2f})",
        flush=True,
    )

    users = jnp.arange(split.num_users, dtype=jnp.int32)
    product = jax.jit(lambda p, u: fns.score_all(p, u))
    _, bare = timed(lambda: jax.block_until_ready(product(params, users)), 20)
    for name, auc in (("full_eval", True), ("full_eval_no_auc", False)):

        def ev(auc=auc):
            return evaluate_full(
                fns.score_all,
                params,
                target_csr=kw["target_csr"],
                exclude_csrs=kw["exclude_csrs"],
                num_items=split.num_items,
                ks=(10, 20, 50),
                batch_size=1024,
                auc=auc,
            )

        first, steady = timed(ev, 5)
        record[name] = {
            "steady_s": steady,
            "compile_s": max(first - steady, 0.0),
            "ratio_to_score_product": steady / bare,
        }
    record["score_product_s"] = bare
    # the floor of any exact top-K evaluation: selecting the top 50 of every row alone
    scores = jax.block_until_ready(product(params, users))
    top = jax.jit(lambda s: jax.lax.top_k(s, 50))
    _, top_s = timed(lambda: jax.block_until_ready(top(scores)), 20)
    host = np.asarray(scores)
    tables = jax.device_get(fns.get_tables(params)) if fns.get_tables else None
    _, part_s = timed(lambda: np.argpartition(-host, 50, axis=1), 20)
    record["selection_floor"] = {
        "lax_top_k50_s": top_s,
        "ratio_top_k_to_product": top_s / bare,
        "numpy_argpartition50_s": part_s,
    }
    if tables is not None:
        un, it = np.asarray(tables["user"]), np.asarray(tables["item"])
        _, np_prod = timed(lambda: un @ it.T, 20)
        record["selection_floor"].update(
            {"numpy_product_s": np_prod, "ratio_argpartition_to_numpy_product": part_s / np_prod}
        )
    print(
        f"score product {bare * 1e3:.2f} ms; full eval {record['full_eval']['steady_s'] * 1e3:.1f}"
        f" ms ({record['full_eval']['ratio_to_score_product']:.1f}x), without AUC "
        f"{record['full_eval_no_auc']['steady_s'] * 1e3:.1f} ms "
        f"({record['full_eval_no_auc']['ratio_to_score_product']:.1f}x); lax.top_k(50) alone "
        f"{top_s * 1e3:.1f} ms ({top_s / bare:.1f}x), numpy argpartition "
        f"{part_s * 1e3:.1f} ms"
    )
    write_record("eval_sweep", record, args.out)


if __name__ == "__main__":
    main()
