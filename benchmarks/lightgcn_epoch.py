"""LightGCN training epoch: CSR propagation against the edge-list (segment_sum) one.

Side by side in one process, for each size (``ml100k``: ml-100k-split; ``midsize``: a
synthetic catalogue of Gowalla's size, 29,858 users x 40,981 items x 810,128 training
pairs with power-law item popularity and user activity, no outside data):

  * ``epoch``: the fused training epoch of the ``lightgcn`` experiment (BPR + batch L2
    1e-4, one uniform negative, Adam 1e-3, dim 64, 3 layers, batch 2048) as
    :func:`robustjax.train.make_train_epoch` runs it; compile time apart. An epoch of
    ``steps_per_epoch`` steps is timed when it fits ``--max-steps``; otherwise a run of
    ``--max-steps`` steps is timed and scaled (``scaled_from_steps`` says so);
  * ``propagate_s``: one propagation (forward) of the whole graph, jitted;
  * ``grad_s``: one gradient of the step's objective on one batch (propagation forward and
    backward, gathers, BPR, L2), jitted; ``step_s - grad_s`` is the optimizer and sampler.

Both formulations give the same scores (equal forward values; gradients to float
rounding); ``max_abs_diff`` records it for the propagated tables.

Usage: python -m benchmarks.lightgcn_epoch [--json OUT] [--sizes ml100k,midsize]
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks._common import SHARED, environment, write_record
from robustjax.data import DataConfig, prepare
from robustjax.models.lightgcn import PROPAGATIONS, LightGCN, build_graph, lightgcn_fns
from robustjax.objectives import AdvConfig, build_phases
from robustjax.train import (
    build_train_arrays,
    epoch_permutation,
    init_state,
    make_optimizer,
    make_train_epoch,
)

MIDSIZE = (29_858, 40_981, 810_128)  # users, items, training pairs (Gowalla's sizes)


def midsize_pairs(num_users: int, num_items: int, num_pairs: int, *, seed: int):
    """``num_pairs`` distinct random (user, item) pairs, Zipf-like on both sides
    (item popularity ``rank^-0.8``, user activity ``rank^-0.5``)."""
    rng = np.random.default_rng(seed)
    pop = (rng.permutation(num_items) + 1.0) ** -0.8
    act = (rng.permutation(num_users) + 1.0) ** -0.5
    draws = int(num_pairs * 1.2)  # enough that num_pairs distinct pairs remain
    u = rng.choice(num_users, size=draws, p=act / act.sum())
    i = rng.choice(num_items, size=draws, p=pop / pop.sum())
    keys = np.unique(u.astype(np.int64) * num_items + i)
    if keys.size < num_pairs:
        raise ValueError(f"midsize_pairs: only {keys.size} distinct pairs of {num_pairs}.")
    keys = rng.permutation(keys)[:num_pairs]
    return (keys // num_items).astype(np.int32), (keys % num_items).astype(np.int32)


def _median_time(fn, *args, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench_one(method, user, item, num_users, num_items, *, args):
    graph = build_graph(user, item, num_users, num_items)
    model = LightGCN(
        num_users,
        num_items,
        args.dim,
        num_layers=args.layers,
        propagation=method,
        rngs=nnx.Rngs(params=args.seed),
    )
    fns, params = lightgcn_fns(model, graph)
    objective = build_phases(fns, loss="bpr", l2=1e-4, adv=AdvConfig(), epochs=1)[0].objective
    tx = make_optimizer("adam", 1e-3)
    data = build_train_arrays(user, item, num_users, num_items)
    perm_full = epoch_permutation(user.size, args.batch_size, seed=args.seed, epoch=0)
    steps_per_epoch = perm_full.shape[0]
    steps = min(steps_per_epoch, args.max_steps)
    perm = perm_full[:steps]
    key = jax.random.key(args.seed)
    batch = {
        "user": jnp.asarray(user[perm[0]]),
        "pos": jnp.asarray(item[perm[0]]),
        "neg": jax.random.randint(key, (args.batch_size,), 0, num_items),
    }

    propagate = jax.jit(lambda p: fns.embed(p, {"user": jnp.arange(num_users)})["user"])
    grad = jax.jit(jax.grad(lambda p: objective(p, batch, key=key)[0]))
    out = {"propagate_compile_s": _median_time(propagate, params, repeats=1)}
    out["propagate_s"] = _median_time(propagate, params, repeats=args.repeats)
    out["grad_compile_s"] = _median_time(grad, params, repeats=1)
    out["grad_s"] = _median_time(grad, params, repeats=args.repeats)

    train_epoch = make_train_epoch(objective, tx)
    state = init_state(jax.tree.map(jnp.copy, params), tx)  # the epoch donates its state
    t = time.perf_counter()
    state, m = train_epoch(state, perm, data, jax.random.fold_in(key, 0))
    jax.block_until_ready(m)
    out["epoch_compile_s"] = time.perf_counter() - t  # compile + one run
    times = []
    for e in range(1, args.repeats + 1):
        t = time.perf_counter()
        state, m = train_epoch(state, perm, data, jax.random.fold_in(key, e))
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    run_s = float(np.median(times))
    out.update(
        steps_timed=steps,
        step_s=run_s / steps,
        epoch_s=run_s * steps_per_epoch / steps,
        final_loss=float(m["loss"]),
    )
    if steps < steps_per_epoch:
        out["scaled_from_steps"] = steps
    final = propagate(params)
    return out, final, steps_per_epoch


def bench_size(name, user, item, num_users, num_items, *, args):
    record = {
        "shapes": {
            "num_users": num_users,
            "num_items": num_items,
            "num_train": int(user.size),
            "num_edges": build_graph(user, item, num_users, num_items).num_edges,
            "dim": args.dim,
            "num_layers": args.layers,
            "batch_size": args.batch_size,
        }
    }
    finals = {}
    for method in PROPAGATIONS:
        print(f"[{name}] {method} ...", flush=True)
        record[method], finals[method], steps_per_epoch = bench_one(
            method, user, item, num_users, num_items, args=args
        )
    record["shapes"]["steps_per_epoch"] = steps_per_epoch
    record["max_abs_diff"] = float(jnp.max(jnp.abs(finals["csr"] - finals["segment_sum"])))
    old, new = record["segment_sum"], record["csr"]
    for piece in ("epoch_s", "propagate_s", "grad_s"):
        record[f"speedup_{piece}"] = old[piece] / new[piece]
    return record


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.path.join(SHARED, "ml-100k-split"))
    p.add_argument("--sizes", default="ml100k,midsize")
    p.add_argument("--max-steps", type=int, default=40, help="steps timed per epoch call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--json", default=None, help="JSON record path (default benchmarks/results/)")
    args = p.parse_args(argv)
    sizes = args.sizes.split(",")
    unknown = sorted(set(sizes) - {"ml100k", "midsize"})
    if unknown:
        p.error(f"--sizes: unknown {unknown}; expected a comma list of ml100k, midsize.")
    record = {
        "benchmark": "lightgcn_epoch",
        **environment(),
        "max_steps": args.max_steps,
        "repeats": args.repeats,
    }
    if "ml100k" in sizes:
        split = prepare(DataConfig(path=args.data))
        record["ml100k"] = bench_size(
            "ml100k",
            np.asarray(split.train.user),
            np.asarray(split.train.item),
            split.num_users,
            split.num_items,
            args=args,
        )
    if "midsize" in sizes:
        num_users, num_items, num_pairs = MIDSIZE
        user, item = midsize_pairs(num_users, num_items, num_pairs, seed=args.seed)
        record["midsize"] = bench_size("midsize", user, item, num_users, num_items, args=args)
    for size in sizes:  # flat headline keys
        for method in PROPAGATIONS:
            record[f"{size}/{method}/epoch_s"] = record[size][method]["epoch_s"]
        record[f"{size}/speedup_epoch"] = record[size]["speedup_epoch_s"]
    write_record("lightgcn_epoch", record, args.json)


if __name__ == "__main__":
    main()
