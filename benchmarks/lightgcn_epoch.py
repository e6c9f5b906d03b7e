"""LightGCN training epoch: CSR propagation against the edge-list (segment_sum) one.

Side by side in one process, for each size (``ml100k``: ml-100k-split; ``midsize``: a
synthetic catalogue of Gowalla's size, 29,858 users x 40,981 items x 810,128 training
pairs with power-law item popularity and user activity, no outside data):

  * ``epoch``: the fused training epoch of the ``lightgcn`` experiment (BPR + batch L2
    1e-4, one uniform negative, Adam 1e-3, dim 64, 3 layers, batch 2048) as
    :func:`robustjax.train.make_train_epoch` runs it; compile time apart. An epoch of
    ``steps_per_epoch`` steps is timed, or, where ``--csr-steps``/``--segment-sum-steps``
    is smaller, a run of that many steps scaled to the epoch (``scaled_from_steps`` says
    so; by default the whole epoch for CSR and 40 steps for segment_sum, which takes
    minutes per epoch at mid-size);
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

from benchmarks._common import SHARED, environment, timed, write_record
from robustjax.data import DataConfig, prepare
from robustjax.models.lightgcn import LightGCN, build_graph, lightgcn_fns
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


def _compiled(fn, *args):
    """``(executable, seconds to lower and compile)``."""
    t = time.perf_counter()
    executable = fn.lower(*args).compile()
    return executable, time.perf_counter() - t


class _Run:
    """One formulation at one size: its compiled pieces and epoch, timed on demand."""

    def __init__(self, method, user, item, num_users, num_items, *, args):
        graph = build_graph(user, item, num_users, num_items)
        model = LightGCN(
            num_users,
            num_items,
            args.dim,
            num_layers=args.layers,
            propagation=method,
            rngs=nnx.Rngs(params=args.seed),
        )
        fns, self.params = lightgcn_fns(model, graph)
        objective = build_phases(fns, loss="bpr", l2=1e-4, adv=AdvConfig(), epochs=1)[0].objective
        tx = make_optimizer("adam", 1e-3)
        self.data = build_train_arrays(user, item, num_users, num_items)
        perm = epoch_permutation(user.size, args.batch_size, seed=args.seed, epoch=0)
        self.steps_per_epoch = perm.shape[0]
        max_steps = getattr(args, f"{method}_steps")
        self.steps = min(self.steps_per_epoch, max_steps) if max_steps > 0 else perm.shape[0]
        self.perm = perm[: self.steps]
        self.key = key = jax.random.key(args.seed)
        batch = {
            "user": jnp.asarray(user[perm[0]]),
            "pos": jnp.asarray(item[perm[0]]),
            "neg": jax.random.randint(key, (args.batch_size,), 0, num_items),
        }
        all_users = {"user": jnp.arange(num_users)}
        self.out = {}
        self.propagate, self.out["propagate_compile_s"] = _compiled(
            jax.jit(lambda p: fns.embed(p, all_users)["user"]), self.params
        )
        self.grad, self.out["grad_compile_s"] = _compiled(
            jax.jit(jax.grad(lambda p: objective(p, batch, key=key)[0])), self.params
        )
        self.state = init_state(jax.tree.map(jnp.copy, self.params), tx)  # donated
        self.epoch, self.out["epoch_compile_s"] = _compiled(
            make_train_epoch(objective, tx), self.state, self.perm, self.data, key
        )
        self.times = {"propagate_s": [], "grad_s": [], "run_s": []}
        self.calls = 0

    def time_once(self):
        self.times["propagate_s"].append(timed(self.propagate, self.params)[1])
        self.times["grad_s"].append(timed(self.grad, self.params)[1])
        self.calls += 1
        t = time.perf_counter()
        self.state, m = self.epoch(
            self.state, self.perm, self.data, jax.random.fold_in(self.key, self.calls)
        )
        self.loss = float(m["loss"])  # blocks
        self.times["run_s"].append(time.perf_counter() - t)

    def record(self):
        med = {k: float(np.median(v[1:])) for k, v in self.times.items()}  # 1st: warm-up
        out = {**self.out, "propagate_s": med["propagate_s"], "grad_s": med["grad_s"]}
        out.update(
            steps_timed=self.steps,
            step_s=med["run_s"] / self.steps,
            epoch_s=med["run_s"] * self.steps_per_epoch / self.steps,
            epoch_s_all=[t * self.steps_per_epoch / self.steps for t in self.times["run_s"][1:]],
            warmup_epoch_s=self.times["run_s"][0] * self.steps_per_epoch / self.steps,
            final_loss=self.loss,
        )
        if self.steps < self.steps_per_epoch:
            out["scaled_from_steps"] = self.steps
        return out


def bench_size(name, user, item, num_users, num_items, *, args):
    """Both formulations at one size, timed in alternation (the machine is shared)."""
    runs = {}
    for method in ("csr", "segment_sum"):
        print(f"[{name}] compiling {method} ...", flush=True)
        runs[method] = _Run(method, user, item, num_users, num_items, args=args)
    for r in range(args.repeats + 1):  # the first round warms up
        for method, run in runs.items():
            print(f"[{name}] round {r}: {method} ...", flush=True)
            run.time_once()
    record = {method: run.record() for method, run in runs.items()}
    csr, seg = runs["csr"], runs["segment_sum"]
    record["shapes"] = {
        "num_users": num_users,
        "num_items": num_items,
        "num_train": int(user.size),
        "num_edges": build_graph(user, item, num_users, num_items).num_edges,
        "dim": args.dim,
        "num_layers": args.layers,
        "batch_size": args.batch_size,
        "steps_per_epoch": csr.steps_per_epoch,
    }
    # same initial parameters: the propagated tables of both formulations
    diff = jnp.abs(csr.propagate(csr.params) - seg.propagate(seg.params))
    record["max_abs_diff"] = float(jnp.max(diff))
    old, new = record["segment_sum"], record["csr"]
    for piece in ("epoch_s", "propagate_s", "grad_s"):
        record[f"speedup_{piece}"] = old[piece] / new[piece]
    return record


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=os.path.join(SHARED, "ml-100k-split"))
    p.add_argument("--sizes", default="ml100k,midsize")
    p.add_argument("--csr-steps", type=int, default=0, help="steps timed (0: an epoch)")
    p.add_argument("--segment-sum-steps", type=int, default=40, help="steps timed (0: an epoch)")
    p.add_argument("--repeats", type=int, default=2, help="timed rounds after a warm-up")
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
        "csr_steps": args.csr_steps,
        "segment_sum_steps": args.segment_sum_steps,
        "repeats": args.repeats,
        "loadavg_start": os.getloadavg(),  # the machine is shared: other jobs slow both
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
        for method in ("csr", "segment_sum"):
            record[f"{size}/{method}/epoch_s"] = record[size][method]["epoch_s"]
        record[f"{size}/speedup_epoch"] = record[size]["speedup_epoch_s"]
    record["loadavg_end"] = os.getloadavg()
    write_record("lightgcn_epoch", record, args.json)


if __name__ == "__main__":
    main()
