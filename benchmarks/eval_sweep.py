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

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import SHARED, environment, first_and_median_seconds, write_record
from robustjax.data import DataConfig, prepare, user_item_csr
from robustjax.eval import evaluate_full
from robustjax.eval.sweep import SweepConfig, run_sweep
from robustjax.models import ModelConfig, build_model
from robustjax.train import build_train_arrays


def full_eval(fns, params, split, *, part="test", auc=True):
    """A call of the clean full-ranking evaluation (``evaluate_full``: NDCG/Recall@10,20,50,
    batches of 1024 users) of ``split``'s ``part``, the training (and for test the
    validation) items excluded."""
    csr = lambda t: user_item_csr(t, split.num_users)
    target = csr(getattr(split, part))
    excl = [csr(split.train)] + ([csr(split.valid)] if part == "test" else [])

    def run():
        return evaluate_full(
            fns.score_all,
            params,
            target_csr=target,
            exclude_csrs=excl,
            num_items=split.num_items,
            ks=(10, 20, 50),
            batch_size=1024,
            auc=auc,
        )

    return run


def _model(args):
    """``(split, fns, params)``: the ``--checkpoint`` run's, else a fresh MF model on
    ``--data``."""
    if args.checkpoint:
        from robustjax.run import load_run

        run = load_run(args.checkpoint)
        return run.split, run.fns, run.params
    split = prepare(DataConfig(path=args.data))
    fns, params = build_model(ModelConfig(dim=64), split.num_users, split.num_items, seed=0)
    return split, fns, params


def _sweeps(sweep, levels, repeats: int) -> dict:
    """Per number of levels: first call, steady (median) and per-level seconds."""
    out = {}
    for n in levels:
        first, steady = first_and_median_seconds(sweep(np.linspace(0, 1, n)), repeats=repeats)
        out[str(n)] = {
            "first_call_s": first,
            "steady_s": steady,
            "compile_s": max(first - steady, 0.0),
            "per_level_s": steady / n,
        }
        print(f"{n} levels: {steady:.3f} s (first call {first:.2f} s)", flush=True)
    return out


def _loop32(sweep, sweeps: dict, repeats: int) -> dict:
    """32 single-level sweeps (one compiled evaluator) against one 32-level sweep."""
    grid = np.linspace(0, 1, 32)
    one = [sweep([e]) for e in grid]
    one[0]()  # compile the single-level evaluator once

    def loop():
        for f in one:
            f()

    _, looped = first_and_median_seconds(loop, repeats=max(1, repeats - 1))
    vmapped = (
        sweeps.get("32", {}).get("steady_s") or first_and_median_seconds(sweep(grid), repeats=1)[1]
    )
    print(
        f"32 levels: vmapped {vmapped:.3f} s vs loop {looped:.3f} s (ratio {vmapped / looped:.2f})",
        flush=True,
    )
    return {"steady_s": looped, "vmapped_s": vmapped, "ratio_vmapped_over_loop": vmapped / looped}


def _full_evals(fns, params, split) -> dict:
    """Clean full-ranking evaluation with and without AUC against the bare score product,
    and the selection floor."""
    users = jnp.arange(split.num_users, dtype=jnp.int32)
    product = jax.jit(lambda p, u: fns.score_all(p, u))
    _, bare = first_and_median_seconds(product, params, users, repeats=20)
    out = {}
    for name, auc in (("full_eval", True), ("full_eval_no_auc", False)):
        first, steady = first_and_median_seconds(full_eval(fns, params, split, auc=auc), repeats=5)
        out[name] = {
            "steady_s": steady,
            "compile_s": max(first - steady, 0.0),
            "ratio_to_score_product": steady / bare,
        }
    out["score_product_s"] = bare
    scores = jax.block_until_ready(product(params, users))
    out["selection_floor"] = _selection_floor(fns, params, scores, bare)
    return out


def _selection_floor(fns, params, scores, bare: float) -> dict:
    """The floor of any exact top-K evaluation: selecting the top 50 of every row alone
    (``lax.top_k`` on device, ``argpartition`` on the host against NumPy's product)."""
    top = jax.jit(lambda s: jax.lax.top_k(s, 50))
    _, top_s = first_and_median_seconds(top, scores, repeats=20)
    host = np.asarray(scores)
    tables = jax.device_get(fns.get_tables(params)) if fns.get_tables else None
    _, part_s = first_and_median_seconds(lambda: np.argpartition(-host, 50, axis=1), repeats=20)
    out = {
        "lax_top_k50_s": top_s,
        "ratio_top_k_to_product": top_s / bare,
        "numpy_argpartition50_s": part_s,
    }
    if tables is not None:
        un, it = np.asarray(tables["user"]), np.asarray(tables["item"])
        _, np_prod = first_and_median_seconds(lambda: un @ it.T, repeats=20)
        out.update(
            {"numpy_product_s": np_prod, "ratio_argpartition_to_numpy_product": part_s / np_prod}
        )
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.path.join(SHARED, "ml-100k-split"))
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--kind", default="pgd")
    p.add_argument("--levels", default="1,8,32,128")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    split, fns, params = _model(args)
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

    sweeps = _sweeps(sweep, [int(x) for x in args.levels.split(",")], args.repeats)
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
        "sweep": sweeps,
        "loop32": _loop32(sweep, sweeps, args.repeats),
        **_full_evals(fns, params, split),
    }
    _print_full_evals(record)
    write_record("eval_sweep", record, args.out)


def _print_full_evals(record: dict) -> None:
    bare, full, no_auc = record["score_product_s"], record["full_eval"], record["full_eval_no_auc"]
    floor = record["selection_floor"]
    print(
        f"score product {bare * 1e3:.2f} ms; full eval {full['steady_s'] * 1e3:.1f}"
        f" ms ({full['ratio_to_score_product']:.1f}x), without AUC "
        f"{no_auc['steady_s'] * 1e3:.1f} ms ({no_auc['ratio_to_score_product']:.1f}x); "
        f"lax.top_k(50) alone {floor['lax_top_k50_s'] * 1e3:.1f} ms "
        f"({floor['ratio_top_k_to_product']:.1f}x), numpy argpartition "
        f"{floor['numpy_argpartition50_s'] * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
