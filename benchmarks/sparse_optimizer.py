"""Dense Adam against row-sparse (lazy) Adam: BPR-MF training epochs side by side.

Times, in one process, the fused training epoch (``robustjax.train.make_train_epoch``)
with dense ``optax.adam`` and with the row-sparse lazy Adam of
``robustjax.train.sparse_step`` (gathered-row view, ``SparseRows`` updates), epochs
alternating between the two so drift hits both alike:

  * ``ml100k``: ml-100k-split's training part (943 users x 1,682 items, 80k pairs);
  * ``midsize``: a synthetic catalogue of 29,858 users x 40,981 items with 810,128 training
    pairs (Gowalla's size; users uniform, items Zipf-popular, no outside data), and cornac's
    BPR on the same pairs when cornac is installed (``--skip-cornac``);
  * ``crossover``: per-step time of both at growing catalogues (40-step epochs), the
    measurement behind ``sparse_step.AUTO_ROWS_PER_LOOKUP``.

Compile time is reported apart; epoch times are medians. Usage:
python -m benchmarks.sparse_optimizer [--epochs 10] [--json OUT]
"""

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import environment, mf_shapes, timed, training_parser, write_record
from benchmarks.train_throughput import bench_cornac
from robustjax.data import DataConfig, prepare
from robustjax.losses import Term, clean_term, combine
from robustjax.models import ModelConfig, build_model
from robustjax.train import build_train_arrays, epoch_permutation, init_state, make_optimizer
from robustjax.train.sparse_step import auto_min_rows, row_sparse_optimizer
from robustjax.train.step import make_train_epoch

MIDSIZE = (29_858, 40_981, 810_128)  # users, items, training pairs


def synthetic_pairs(num_users: int, num_items: int, num_pairs: int, *, seed: int):
    """``num_pairs`` distinct (user, item) pairs: users uniform, items Zipf(1) popular."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / (rng.permutation(num_items) + 1.0)
    pop /= pop.sum()
    keys = np.zeros(0, np.int64)
    while keys.size < num_pairs:
        n = num_pairs - keys.size
        u = rng.integers(0, num_users, 2 * n)
        i = rng.choice(num_items, 2 * n, p=pop)
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * num_items + i]))
    keys = rng.permutation(keys)[:num_pairs]
    return (keys // num_items).astype(np.int32), (keys % num_items).astype(np.int32)


def compare(user, item, num_users, num_items, *, epochs, batch_size, dim, seed) -> dict:
    """Dense and lazy Adam epochs of BPR-MF on the same pairs, alternating."""
    fns, params = build_model(ModelConfig(dim=dim), num_users, num_items, seed=seed)
    data = build_train_arrays(user, item, num_users, num_items)
    objective = combine(bpr=Term(clean_term(fns)))
    txs = {
        "dense": make_optimizer("adam", 1e-3),
        "lazy": row_sparse_optimizer(fns, "adam", 1e-3),
    }
    fn = {k: make_train_epoch(objective, tx) for k, tx in txs.items()}
    state = {k: init_state(jax.tree.map(jnp.copy, params), tx) for k, tx in txs.items()}
    root = jax.random.key(seed)
    out = {k: {"times": []} for k in txs}
    for e in range(epochs + 1):
        perm = epoch_permutation(data.num_interactions, batch_size, seed=seed, epoch=e)
        for k in txs:
            (state[k], m), s = timed(fn[k], state[k], perm, data, jax.random.fold_in(root, e))
            if e == 0:
                out[k]["compile_s"] = s
            else:
                out[k]["times"].append(s)
            out[k]["final_loss"] = float(m["loss"])
    for k in txs:
        times = out[k].pop("times")
        out[k]["epoch_s_median"] = float(np.median(times))
        out[k]["epoch_s_min"] = float(np.min(times))
    shapes = mf_shapes(num_users, num_items, int(user.size), dim=dim, batch_size=batch_size)
    steps = shapes["steps_per_epoch"]
    return {
        "shapes": shapes,
        **out,
        "lazy_over_dense": out["lazy"]["epoch_s_median"] / out["dense"]["epoch_s_median"],
        "dense_step_ms": 1e3 * out["dense"]["epoch_s_median"] / steps,
        "lazy_step_ms": 1e3 * out["lazy"]["epoch_s_median"] / steps,
    }


def crossover(*, epochs, batch_size, dim, seed, sizes) -> dict:
    """Per-step dense and lazy times at catalogues of ``sizes`` total rows (users:items
    3:4, 40 steps per epoch)."""
    rows = {}
    for total in sizes:
        nu, ni = max(total * 3 // 7, 8), max(total * 4 // 7, 8)
        pairs = min(40 * batch_size, nu * ni // 2)
        u, i = synthetic_pairs(nu, ni, pairs, seed=seed)
        r = compare(u, i, nu, ni, epochs=epochs, batch_size=batch_size, dim=dim, seed=seed)
        rows[str(nu + ni)] = {
            "dense_step_ms": r["dense_step_ms"],
            "lazy_step_ms": r["lazy_step_ms"],
            "lazy_over_dense": r["lazy_over_dense"],
        }
    faster = [int(n) for n, r in rows.items() if r["lazy_over_dense"] < 1.0]
    return {"by_total_rows": rows, "lazy_faster_from_rows": min(faster) if faster else None}


def main(argv=None):
    p = training_parser(__doc__, epochs=10, epochs_help="timed epochs per optimizer and size")
    p.add_argument(
        "--crossover-rows",
        default="2625,10000,20000,30000,40000,60000",
        help="total table rows of the crossover catalogues (comma-separated; empty: skip)",
    )
    p.add_argument("--skip-midsize", action="store_true")
    p.add_argument("--skip-cornac", action="store_true", help="no cornac BPR at midsize")
    p.add_argument("--json", default=None, help="JSON record path (default benchmarks/results/)")
    args = p.parse_args(argv)
    kw = {"epochs": args.epochs, "batch_size": args.batch_size, "dim": args.dim, "seed": args.seed}
    split = prepare(DataConfig(path=args.data))
    record = {
        "benchmark": "sparse_optimizer",
        **environment(),
        "auto_min_rows": auto_min_rows(args.batch_size),
    }
    record["ml100k"] = compare(
        split.train.user, split.train.item, split.num_users, split.num_items, **kw
    )
    if not args.skip_midsize:
        u, i = synthetic_pairs(*MIDSIZE, seed=args.seed)
        record["midsize"] = compare(u, i, MIDSIZE[0], MIDSIZE[1], **kw)
        cornac = None if args.skip_cornac else bench_cornac(u, i, *MIDSIZE[:2], epochs=3, seed=0)
        if cornac is not None:  # cornac's compiled BPR on the same pairs (if installed)
            record["midsize"]["cornac"] = cornac
            record["midsize/cornac_epoch_s"] = cornac["epoch_s_median"]
            record["midsize/lazy_over_cornac"] = (
                record["midsize"]["lazy"]["epoch_s_median"] / cornac["epoch_s_median"]
            )
    sizes = [int(s) for s in args.crossover_rows.split(",") if s.strip()]
    if sizes:
        record["crossover"] = crossover(sizes=sizes, **{**kw, "epochs": max(3, args.epochs // 2)})
    for name in ("ml100k", "midsize"):
        if name in record:
            r = record[name]
            record[f"{name}/dense_epoch_s"] = r["dense"]["epoch_s_median"]
            record[f"{name}/lazy_epoch_s"] = r["lazy"]["epoch_s_median"]
            record[f"{name}/lazy_over_dense"] = r["lazy_over_dense"]
    write_record("sparse_optimizer", record, args.json)


if __name__ == "__main__":
    main()
