"""Scale: training, evaluation and sweeps from ml-100k to a mid-size and a 1M x 1M catalogue.

Side by side in one run (ratios, not seconds, are what to compare across machines):

* ``ml100k``: BPR-MF (d64, batch 2048) fused epoch with dense Adam and with the row-sparse
  optimizer, cornac's BPR on the same training pairs; clean full-ranking evaluation with and
  without AUC against the bare score product ``U @ I^T``.
* ``midsize``: a synthetic catalogue of Gowalla's size (29,858 users, 40,981 items, about
  810k training pairs; generated here, no outside data): the same epochs and cornac, then
  dense and row-sparse runs for ``--epochs`` epochs with validation Recall@20 every
  ``--eval-every`` epochs (the Recall@20 each reaches at the end, and the time to reach a fixed
  Recall@20), full-ranking evaluation, and a 16-level PGD sweep (its process peak memory).
* ``eval_1m``: 1M users x 1M items x d64 (random factors): peak memory of one compiled
  evaluation batch from XLA's memory analysis, and the wall time of a 10k-user slice.
* ``lightgcn``: LightGCN's training epoch on the mid-size catalogue with the default
  propagation for the backend (``--lightgcn-steps`` steps scaled to the epoch).
* ``devices``: the 4-forced-CPU-device checks of ``tests/sharding`` (results equal to one
  device), if that package is present.

``--tiny`` shrinks every size (seconds; used by the tests and by ``gpu_check.sh --tiny``).
The record holds flat keys such as ``midsize/epoch_ratio_vs_cornac`` and
``ml100k/eval_ratio_to_product``, beside per-piece figures and the environment.

Usage: python -m benchmarks.scale --json OUT [--tiny] [--skip midsize,eval_1m]
"""

import argparse
import os
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import SHARED, environment, write_record
from benchmarks._scale_eval_1m import bench_eval_1m
from benchmarks._scale_timing import (
    RssWindow,
    bpr_trainer,
    device_peak_bytes,
    eval_planned_seconds,
    eval_seconds,
    eval_step_seconds,
    interleaved_epochs,
    peak_rss_bytes,
    product_seconds,
)
from robustjax.data import DataConfig, prepare, user_item_csr
from robustjax.data.splits import split_random
from robustjax.data.table import InteractionTable
from robustjax.eval import evaluate_planned, plan_full
from robustjax.eval.sweep import SweepConfig, run_sweep
from robustjax.models import ModelConfig, build_model
from robustjax.train import (
    build_train_arrays,
    init_state,
)

SIZES = {
    "full": {
        "mid_users": 29858,
        "mid_items": 40981,
        "mid_per_user": 34,  # 80% train: about 810k training pairs
        "big_users": 1_000_000,
        "big_items": 1_000_000,
        "big_slice": 10_000,
        "sweep_users": 2048,
    },
    "tiny": {
        "mid_users": 600,
        "mid_items": 900,
        "mid_per_user": 20,
        "big_users": 20_000,
        "big_items": 30_000,
        "big_slice": 512,
        "sweep_users": 128,
    },
}


def midsize_table(num_users, num_items, per_user, *, seed=0, dim=16, chunk=512):
    """Planted low-rank preferences with Zipf popularity (as ``robustjax.data.synthetic``),
    sampled in user chunks so the ``[U, I]`` logits never exist whole."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((num_items, dim), dtype=np.float32)
    log_pop = -np.log(rng.permutation(num_items) + 1.0).astype(np.float32)
    items = []
    for lo in range(0, num_users, chunk):
        p = rng.standard_normal((min(chunk, num_users - lo), dim), dtype=np.float32)
        logits = (3.0 / np.sqrt(dim)) * (p @ q.T) + log_pop
        logits += rng.gumbel(size=logits.shape).astype(np.float32)
        items.append(np.argpartition(-logits, per_user - 1, axis=1)[:, :per_user])
    item = np.concatenate(items).reshape(-1).astype(np.int32)
    user = np.repeat(np.arange(num_users, dtype=np.int32), per_user)
    n = user.size
    return InteractionTable(
        user=user,
        item=item,
        rating=np.ones(n, np.float32),
        timestamp=np.arange(n, dtype=np.float64),
        user_tokens=np.arange(num_users).astype(str),
        item_tokens=np.arange(num_items).astype(str),
    )


def bench_ml100k(args, optimizers) -> dict:
    split = prepare(DataConfig(path=os.path.join(SHARED, "ml-100k-split")))
    fns, params = build_model(ModelConfig(dim=64), split.num_users, split.num_items, seed=0)
    tr = split.train
    data = build_train_arrays(tr.user, tr.item, split.num_users, split.num_items)
    out = interleaved_epochs(
        fns, params, data, (tr.user, tr.item), optimizers, epochs=args.epochs_timed,
        rounds=args.rounds,
    )  # fmt: skip
    bare = product_seconds(fns, params, split.num_users)
    with_auc, _ = eval_seconds(fns, params, split, auc=True)
    without, _ = eval_seconds(fns, params, split, auc=False)
    planned_auc = eval_planned_seconds(fns, params, split, auc=True)
    step_auc = eval_step_seconds(fns, params, split, auc=True)
    step_no_auc = eval_step_seconds(fns, params, split, auc=False)
    out["eval"] = {
        "product_s": bare,
        "with_auc_s": with_auc,
        "without_auc_s": without,
        # the same with the host packing done once (plan_full), as validation does
        "planned_with_auc_s": planned_auc,
        # the compiled step alone (one batch of every test user): the rest is host work
        "step_with_auc_s": step_auc,
        "step_without_auc_s": step_no_auc,
        "host_share_with_auc": 1.0 - step_auc / with_auc,
    }
    flat = {
        "ml100k/epoch_s": out["adam"]["epoch_s"],
        "ml100k/eval_ratio_to_product": with_auc / bare,
        "ml100k/eval_no_auc_ratio_to_product": without / bare,
        "ml100k/eval_planned_ratio_to_product": planned_auc / bare,
    }
    for opt in optimizers[1:]:
        flat[f"ml100k/{opt}_epoch_s"] = out[opt]["epoch_s"]
    flat.update(_cornac_keys("ml100k", out, optimizers))
    return out, flat


def _cornac_keys(prefix: str, out: dict, optimizers) -> dict:
    """The flat cornac figures of ``interleaved_epochs``' record (none without cornac):
    the best optimizer's and dense Adam's median per-round ratio."""
    if "cornac" not in out:
        return {}
    ratios = out["ratio_vs_cornac"]
    return {
        f"{prefix}/cornac_epoch_s": out["cornac"]["epoch_s"],
        f"{prefix}/epoch_ratio_vs_cornac": min(ratios.values()),
        f"{prefix}/dense_epoch_ratio_vs_cornac": ratios["adam"],
    }


def _recall_run(fns, params, split, data, optimizer, *, epochs, eval_every):
    """Trains ``epochs`` epochs with validation Recall@20 every ``eval_every``; returns the
    curve and the final Recall@20."""
    tx, run_epoch = bpr_trainer(fns, data, optimizer, batch_size=2048, seed=0)
    state = init_state(jax.tree.map(jnp.copy, params), tx)
    csr = lambda t: user_item_csr(t, split.num_users)
    plan = plan_full(  # validation as a run does it: packed once
        target_csr=csr(split.valid), exclude_csrs=[csr(split.train)], num_items=split.num_items,
        batch_size=1024,
    )  # fmt: skip
    curve, train_s = [], 0.0
    for e in range(epochs):
        t = time.perf_counter()
        state, m = run_epoch(state, e)
        jax.block_until_ready(m)
        train_s += time.perf_counter() - t
        if (e + 1) % eval_every == 0 or e + 1 == epochs:
            r = evaluate_planned(fns.score_all, state.params, plan, ks=(20,), auc=False)
            r = r["recall@20"]
            curve.append({"epoch": e + 1, "train_s": train_s, "valid_recall@20": r})
    return {"curve": curve, "final_recall@20": curve[-1]["valid_recall@20"]}, state.params


def time_to_target(curve, target):
    """Training seconds at the first evaluation reaching ``target`` (None if never)."""
    return next((c["train_s"] for c in curve if c["valid_recall@20"] >= target), None)


def bench_midsize(args, sizes, optimizers) -> tuple[dict, dict]:
    table = midsize_table(sizes["mid_users"], sizes["mid_items"], sizes["mid_per_user"])
    split = split_random(table, (0.8, 0.1, 0.1), seed=0, name="midsize")
    tr = split.train
    data = build_train_arrays(tr.user, tr.item, split.num_users, split.num_items)
    fns, params = build_model(ModelConfig(dim=64), split.num_users, split.num_items, seed=0)
    out = interleaved_epochs(
        fns, params, data, (tr.user, tr.item), optimizers, epochs=args.epochs_timed,
        rounds=args.rounds,
    )  # fmt: skip
    out["shape"] = {"users": split.num_users, "items": split.num_items, "train_pairs": len(tr)}
    flat = {"midsize/epoch_s": min(out[o]["epoch_s"] for o in optimizers)}
    flat["midsize/dense_epoch_s"] = out["adam"]["epoch_s"]
    flat.update(_cornac_keys("midsize", out, optimizers))
    # quality per optimizer at equal epochs, and time to a fixed validation Recall@20
    runs, trained = {}, None
    for opt in optimizers:
        runs[opt], p = _recall_run(
            fns, params, split, data, opt, epochs=args.epochs, eval_every=args.eval_every
        )
        trained = trained or p
        flat[f"midsize/{opt}_valid_recall@{args.epochs}ep"] = runs[opt]["final_recall@20"]
    target = args.target_recall or 0.9 * runs[optimizers[0]]["final_recall@20"]
    flat["midsize/target_valid_recall@20"] = target
    for opt in optimizers:
        flat[f"midsize/{opt}_time_to_target_s"] = time_to_target(runs[opt]["curve"], target)
    out["runs"] = runs
    eval_s, _ = eval_seconds(fns, trained, split, repeats=2, auc=True)
    planned_s = eval_planned_seconds(fns, trained, split, repeats=2, auc=True)
    product_s = product_seconds(fns, trained, split.num_users, repeats=3)
    flat["midsize/eval_s"] = eval_s
    flat["midsize/eval_ratio_to_product"] = eval_s / product_s
    flat["midsize/eval_planned_s"] = planned_s
    flat["midsize/eval_planned_ratio_to_product"] = planned_s / product_s
    out["sweep"] = bench_sweep(fns, trained, split, data, sizes["sweep_users"])
    flat["midsize/sweep16_s"] = out["sweep"]["seconds"]
    flat["midsize/sweep16_peak_rss_bytes"] = out["sweep"]["peak_rss_bytes"]
    return out, flat


def bench_lightgcn(args, sizes) -> tuple[dict, dict]:
    """LightGCN (3 layers, dim 64, BPR + L2, Adam) on the mid-size catalogue's training
    pairs, with the default propagation (``"auto"``: CSR on CPU, the edge list elsewhere):
    the epoch time, from ``--lightgcn-steps`` steps scaled to the epoch where that is
    fewer (``benchmarks/lightgcn_epoch.py`` compares the two formulations)."""
    from types import SimpleNamespace

    from benchmarks.lightgcn_epoch import _Run
    from robustjax.models.graph import resolve_propagation

    table = midsize_table(sizes["mid_users"], sizes["mid_items"], sizes["mid_per_user"])
    split = split_random(table, (0.8, 0.1, 0.1), seed=0, name="midsize")
    opts = SimpleNamespace(dim=64, layers=3, seed=0, batch_size=2048,
                           auto_steps=args.lightgcn_steps)  # fmt: skip
    run = _Run("auto", split.train.user, split.train.item, split.num_users, split.num_items,
               args=opts)  # fmt: skip
    for _ in range(2):  # a warm-up round, then the timed one
        run.time_once()
    out = run.record() | {"propagation": resolve_propagation("auto")}
    flat = {"lightgcn/epoch_s": out["epoch_s"], "lightgcn/propagation": out["propagation"]}
    return out, flat


def bench_sweep(fns, params, split, data, num_users):
    """A 16-level PGD sweep over the test targets of the first ``num_users`` users."""
    csr = lambda t: user_item_csr(t, split.num_users)
    indptr, indices = csr(split.test)
    keep = np.zeros(split.num_users, bool)
    keep[:num_users] = True
    counts = np.where(keep, np.diff(indptr), 0)
    sub = (np.concatenate([[0], np.cumsum(counts)]), indices[np.repeat(keep, np.diff(indptr))])
    cfg = SweepConfig(kind="pgd", eps=tuple(np.linspace(0, 1, 16).tolist()), ks=(20,))
    t = time.perf_counter()
    with RssWindow() as rss:  # the sweep's own peak, not the process's so far
        run_sweep(
            fns, params, data=data, target_csr=sub,
            exclude_csrs=[csr(split.train), csr(split.valid)], num_items=split.num_items,
            cfg=cfg, progress=False,
        )  # fmt: skip
    return {"seconds": time.perf_counter() - t, "users": num_users, "levels": 16,
            "peak_rss_bytes": rss.peak_bytes, "rss_before_bytes": rss.start_bytes,
            "process_peak_rss_bytes": peak_rss_bytes(),
            # the allocator's peak over the process so far (no reset exists)
            "device_peak_bytes": device_peak_bytes()}  # fmt: skip


def bench_devices() -> dict:
    """1 vs 4 forced CPU devices, correctness only: runs ``tests/sharding`` (training,
    evaluation and sweeps on a mesh equal to one device; 2 processes equal one) in a
    subprocess and records its outcome."""
    import subprocess
    import sys

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    t = time.perf_counter()
    # on CPU whatever the machine has: the checks need 4 forced CPU devices (on a GPU
    # machine jax would otherwise see one GPU and skip them). pytest-benchmark, where
    # installed, warns under xdist, which the suite's filterwarnings turns into an error.
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    flags = ["-rs", "-p", "no:cacheprovider", "-p", "no:benchmark"]  # -q: pyproject
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *flags, "tests/sharding"],
        cwd=root, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    tail = proc.stdout.strip().splitlines()[-1:] or [""]
    return {"passed": proc.returncode == 0, "summary": tail[0], "seconds": time.perf_counter() - t}


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=None, help="record path (default benchmarks/results/)")
    p.add_argument("--tiny", action="store_true", help="small sizes: seconds, for tests")
    p.add_argument(
        "--skip", default="", help="comma list of ml100k,midsize,eval_1m,lightgcn,devices"
    )
    p.add_argument("--epochs", type=int, default=100, help="midsize quality runs' epochs")
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--epochs-timed", type=int, default=5, help="epochs timed per round")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of the optimizers and cornac, timed in turn")  # fmt: skip
    p.add_argument("--target-recall", type=float, default=None,
                   help="fixed validation Recall@20 for time-to-target (default: 90%% of the "
                   "dense run's final value, recorded)")  # fmt: skip
    p.add_argument("--optimizers", default="adam,lazy_adam")
    p.add_argument("--lightgcn-steps", type=int, default=40,
                   help="LightGCN steps timed, scaled to the epoch (0: a whole epoch)")  # fmt: skip
    args = p.parse_args(argv)
    if args.tiny:
        args.epochs, args.eval_every, args.epochs_timed, args.rounds = 4, 2, 2, 2
    return args


def _available(optimizers: list[str]) -> list[str]:
    """The ``optimizers`` this robustjax has (``lazy_X``: row-sparse X), the others skipped."""
    from robustjax.train import OPTIMIZERS

    missing = [o for o in optimizers if o.removeprefix("lazy_") not in OPTIMIZERS]
    if missing:
        print(f"scale: optimizers {missing} are not available here; skipped", flush=True)
    return [o for o in optimizers if o not in missing]


def _run_pieces(pieces: dict, record: dict, flat: dict, json_path) -> list[str]:
    """Runs every piece (``name -> () -> (out, flat)``) into ``record[name]`` and ``flat``,
    one failing keeping the others' figures; returns the failed names. With ``json_path``,
    a partial record is written after each piece (it survives a run cut short)."""
    failed = []
    for name, fn in pieces.items():
        t = time.perf_counter()
        try:
            out, f = fn()
        except Exception as exc:  # noqa: BLE001 -- one piece failing keeps the others' figures
            traceback.print_exc()
            failed.append(name)
            out, f = {"error": f"{type(exc).__name__}: {exc}"}, {}
        record[name] = out | {"bench_seconds": time.perf_counter() - t}
        flat.update(f)
        print(f"{name}: {f}", flush=True)
        if json_path:
            write_record("scale", record | flat | {"partial": True}, json_path, echo=False)
    return failed


def main(argv=None):
    args = _parse(argv)
    sizes = SIZES["tiny" if args.tiny else "full"]
    skip = {s for s in args.skip.split(",") if s}
    optimizers = _available([o for o in args.optimizers.split(",") if o])
    record = {"benchmark": "scale", **environment(), "tiny": args.tiny, "sizes": sizes}
    flat = {}
    pieces = {
        "ml100k": lambda: bench_ml100k(args, optimizers),
        "midsize": lambda: bench_midsize(args, sizes, optimizers),
        "eval_1m": lambda: bench_eval_1m(sizes),
        "lightgcn": lambda: bench_lightgcn(args, sizes),
    }
    pieces = {name: fn for name, fn in pieces.items() if name not in skip}
    failed = _run_pieces(pieces, record, flat, args.json)
    if "devices" not in skip:
        record["devices"] = bench_devices()
        flat["devices/sharding_tests_passed"] = record["devices"]["passed"]
    record.update(flat)
    record["failed"] = failed
    write_record("scale", record, args.json)
    if failed:
        raise SystemExit(f"scale: {failed} failed (tracebacks above; the record says which)")
    return record


if __name__ == "__main__":
    main()
