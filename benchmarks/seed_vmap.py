"""Seeds in one compiled program: a vmapped training epoch over S seeds against a loop.

A study trains every method on S seeds with identical shapes. This measures, side by side
in one process on ml-100k-split (the bpr-mf protocol's shapes), the epoch time of

  * ``loop``: S seeds trained one after another (S calls of the fused epoch);
  * ``vmap``: the same S seeds in one call of ``jax.vmap`` over the stacked states,
    permutations and keys (the data shared);

for the clean BPR objective and APR (per-lookup FGSM), timed alternately epoch by epoch,
plus the first epoch of each (compilation included), and checks that the vmapped seeds
reproduce the looped ones. Times are medians over ``--epochs`` epochs; the record is
written to ``benchmarks/results/``.

Usage: python -m benchmarks.seed_vmap [--data PATH] [--seeds 5] [--epochs 5] [--seed 2024]
or: robustjax bench seed_vmap [the same arguments]
"""

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import environment, timed, training_parser, write_record
from robustjax.data import DataConfig, prepare
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import AdvConfig, build_phases
from robustjax.train import (
    build_train_arrays,
    epoch_permutation,
    init_state,
    make_optimizer,
    make_train_epoch,
)


def _objective(fns, method):
    adv = AdvConfig(method=method, eps=0.5, warm_epochs=0) if method != "none" else AdvConfig()
    phases = build_phases(fns, loss="bpr", l2=0.0, adv=adv, epochs=1)
    return phases[-1].objective


def bench(method, split, data, args):
    """Epoch times of the looped and the vmapped seeds (``args.seeds`` of them from
    ``args.seed`` on), measured alternately epoch by epoch over ``args.epochs`` epochs (so
    a busy machine slows both alike), and their largest parameter difference."""
    seeds = list(range(args.seed, args.seed + args.seeds))
    model = ModelConfig(dim=args.dim)
    models = [build_model(model, split.num_users, split.num_items, seed=s)[1] for s in seeds]
    fns = build_model(model, split.num_users, split.num_items, seed=0)[0]
    tx = make_optimizer("adam", 1e-3)
    epoch_fn = make_train_epoch(_objective(fns, method), tx)
    n = data.num_interactions
    perms = lambda e: [epoch_permutation(n, args.batch_size, seed=s, epoch=e) for s in seeds]
    keys = lambda e: [jax.random.fold_in(jax.random.key(s), e) for s in seeds]
    fresh = lambda: [init_state(jax.tree.map(jnp.copy, p), tx) for p in models]
    states, stacked = fresh(), jax.tree.map(lambda *x: jnp.stack(x), *fresh())
    vmapped = jax.jit(jax.vmap(epoch_fn, in_axes=(0, 0, None, 0)), donate_argnums=0)

    def loop(e):
        nonlocal states
        out = [epoch_fn(st, p, data, k) for st, p, k in zip(states, perms(e), keys(e))]
        states = [o[0] for o in out]
        return states

    def batched(e):
        nonlocal stacked
        stacked, _ = vmapped(stacked, jnp.stack(perms(e)), data, jnp.stack(keys(e)))
        return stacked

    first = {"loop": timed(loop, 0)[1], "vmap": timed(batched, 0)[1]}  # compile + one epoch
    times = {"loop": [], "vmap": []}
    for e in range(1, args.epochs + 1):
        times["loop"].append(timed(loop, e)[1])
        times["vmap"].append(timed(batched, e)[1])
    loop_s, vmap_s = (float(np.median(times[k])) for k in ("loop", "vmap"))
    diff = max(
        float(
            jnp.max(
                jnp.abs(s.params["users"]["embedding"] - stacked.params["users"]["embedding"][i])
            )
        )
        for i, s in enumerate(states)
    )
    return {
        "loop_epoch_s": loop_s,
        "vmap_epoch_s": vmap_s,
        "vmap_over_loop": vmap_s / loop_s,
        "loop_first_epoch_s": first["loop"],
        "vmap_first_epoch_s": first["vmap"],
        "max_param_diff": diff,
    }


def main(argv=None):
    p = training_parser(__doc__, epochs=5)  # --seed: the first of the --seeds seeds
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--methods", default="none,apr")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    split = prepare(DataConfig(path=args.data))
    data = build_train_arrays(split.train.user, split.train.item, split.num_users, split.num_items)
    record = {"benchmark": "seed_vmap", "env": environment(), "data": args.data,
              "seeds": args.seeds, "epochs": args.epochs, "methods": {}}  # fmt: skip
    for method in args.methods.split(","):
        record["methods"][method] = bench(method, split, data, args)
    write_record("seed_vmap", record, args.out)


if __name__ == "__main__":
    main()
