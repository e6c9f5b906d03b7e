"""Training throughput of BPR-MF on ml-100k-split (the reference protocol's shapes).

Measures, side by side in one process:
  * ``fused``: robustjax's training epoch (one compiled ``lax.scan`` per epoch, negatives
    sampled on device, host shuffle overlapped with device work);
  * ``per_step``: a straightforward loop with one jitted call per batch and host-side
    (NumPy) shuffling and rejection-sampled negatives;
  * ``cornac``: cornac's compiled BPR on the same split, if cornac is installed.
Compile time is reported apart. Epoch times are medians over ``--epochs`` epochs.

Usage: python -m benchmarks.train_throughput [--data PATH] [--epochs 30]
or: robustjax bench train_throughput [the same arguments]
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks._common import (
    environment,
    first_and_median_seconds,
    mf_shapes,
    training_parser,
    write_record,
)
from robustjax.data import DataConfig, prepare
from robustjax.losses import Term, clean_term, combine
from robustjax.models import ModelConfig, build_model
from robustjax.train import (
    apply_gradients,
    build_train_arrays,
    epoch_permutation,
    init_state,
    make_optimizer,
    make_train_epoch,
)


def bench_fused(fns, params, data, *, epochs, batch_size, seed):
    tx = make_optimizer("adam", 1e-3)
    train_epoch = make_train_epoch(combine(bpr=Term(clean_term(fns))), tx)
    state = init_state(jax.tree.map(jnp.copy, params), tx)  # the epoch donates its state
    root = jax.random.key(seed)
    t = time.perf_counter()
    perm = epoch_permutation(data.num_interactions, batch_size, seed=seed, epoch=0)
    state, m = train_epoch(state, perm, data, jax.random.fold_in(root, 0))
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t
    times = []
    for e in range(1, epochs + 1):  # synchronous: each epoch timed on its own
        t = time.perf_counter()
        perm = epoch_permutation(data.num_interactions, batch_size, seed=seed, epoch=e)
        state, m = train_epoch(state, perm, data, jax.random.fold_in(root, e))
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    # pipelined: the host shuffles epoch e+1 while the device runs epoch e (as fit() does)
    t = time.perf_counter()
    perm = epoch_permutation(data.num_interactions, batch_size, seed=seed, epoch=epochs + 1)
    for e in range(epochs + 1, 2 * epochs + 1):
        state, m = train_epoch(state, perm, data, jax.random.fold_in(root, e))
        perm = epoch_permutation(data.num_interactions, batch_size, seed=seed, epoch=e + 1)
    jax.block_until_ready(m)
    pipelined = (time.perf_counter() - t) / epochs
    return {
        "compile_s": compile_s,
        "epoch_s_median": float(np.median(times)),
        "epoch_s_min": float(np.min(times)),
        "epoch_s_pipelined": pipelined,
        "final_loss": float(m["loss"]),
    }


def bench_ablation(fns, params, data, *, epochs, batch_size, seed):
    """Where an epoch goes: the fused epoch with one piece replaced at a time."""
    from robustjax.train import step as step_mod

    def run(tx, sampler_off):
        original = step_mod.sample_uniform
        if sampler_off:  # plain uniform ids, positives not excluded
            step_mod.sample_uniform = lambda d, u, r: jnp.floor(r * d.num_items).astype(jnp.int32)
        try:
            fn = make_train_epoch(combine(bpr=Term(clean_term(fns))), tx)
            state = init_state(jax.tree.map(jnp.copy, params), tx)
            perm = epoch_permutation(data.num_interactions, batch_size, seed=seed, epoch=0)
            state, m = fn(state, perm, data, jax.random.key(seed))
            jax.block_until_ready(m)
            times = []
            for e in range(1, epochs + 1):
                t = time.perf_counter()
                state, m = fn(state, perm, data, jax.random.key(e))
                jax.block_until_ready(m)
                times.append(time.perf_counter() - t)
            return float(np.median(times))
        finally:
            step_mod.sample_uniform = original

    adam, sgd = optax.adam(1e-3), optax.sgd(0.05)
    out = {
        "full": run(adam, False),
        "without_sampler": run(adam, True),
        "sgd_instead_of_adam": run(sgd, False),
        "sgd_without_sampler": run(sgd, True),
    }
    out["sampler_share"] = 1 - out["without_sampler"] / out["full"]
    out["adam_share"] = 1 - out["sgd_instead_of_adam"] / out["full"]
    out["gather_grad_scatter_share"] = out["sgd_without_sampler"] / out["full"]
    return out


def bench_floor(params, data, *, epochs, batch_size, seed):
    """The fixed pieces of every epoch, each alone in a 40-step ``lax.scan`` (indices given):
    the three row gathers, the three row scatter-adds, and the dense Adam update of both
    tables. Their sum is a lower bound for any epoch of this protocol on XLA."""
    tables = (params["users"]["embedding"][...], params["items"]["embedding"][...])
    perm = epoch_permutation(data.num_interactions, batch_size, seed=seed, epoch=0)
    rows = jnp.asarray(np.minimum(perm, data.num_interactions - 1))
    u, i = data.user[rows], data.item[rows]
    j = jnp.asarray(np.random.default_rng(seed).integers(0, data.num_items, perm.shape), jnp.int32)
    g = jnp.full((batch_size, tables[0].shape[1]), 1e-3, jnp.float32)
    tx = optax.adam(1e-3)

    @jax.jit
    def gathers(t, u, i, j):
        def body(c, x):
            rows = t[0][x[0]] + t[1][x[1]] + t[1][x[2]]  # every gathered entry is read
            return c + jnp.sum(rows, axis=1), None

        return jax.lax.scan(body, jnp.zeros(batch_size), (u, i, j))[0]

    @jax.jit
    def scatters(t, u, i, j):
        def body(c, x):  # data-dependent updates, so nothing is hoisted out of the loop
            du = c[0].at[x[0]].add(g * c[0][0, 0])
            return (du, c[1].at[x[1]].add(g).at[x[2]].add(-g)), None

        return jax.lax.scan(body, t, (u, i, j))[0]

    @jax.jit
    def adam(t, u):
        def body(state, _):
            return apply_gradients(state, state.params, tx), None

        return jax.lax.scan(body, init_state(t, tx), u)[0]

    def med(fn, *a):  # after a warm-up call that compiles
        return first_and_median_seconds(fn, *a, repeats=epochs)[1]

    out = {
        "gathers_s": med(gathers, tables, u, i, j),
        "scatters_s": med(scatters, tables, u, i, j),
        "dense_adam_s": med(adam, tables, u),
    }
    out["sum_s"] = out["gathers_s"] + out["scatters_s"] + out["dense_adam_s"]
    return out


def bench_per_step(fns, params, user, item, num_items, *, epochs, batch_size, seed):
    """One jitted step per batch; shuffling and negative sampling on the host (NumPy)."""
    tx = optax.adam(1e-3)
    loss_on = clean_term(fns)

    @jax.jit
    def step(state, u, i, j):
        batch = {"user": u, "pos": i, "neg": j}
        loss, g = jax.value_and_grad(lambda p: jnp.mean(loss_on(p, batch, key=None)))(state.params)
        return apply_gradients(state, g, tx), loss

    positives = set((user.astype(np.int64) * num_items + item).tolist())
    rng = np.random.default_rng(seed)
    n = user.size

    def sample(u):
        j = rng.integers(0, num_items, u.size)
        bad = np.array([a * num_items + b in positives for a, b in zip(u, j)])
        while bad.any():
            j[bad] = rng.integers(0, num_items, bad.sum())
            bad[bad] = np.array([a * num_items + b in positives for a, b in zip(u[bad], j[bad])])
        return j

    def epoch(state):
        perm = rng.permutation(n)
        for s in range(0, n, batch_size):
            rows = perm[s : s + batch_size]
            u, i = user[rows], item[rows]
            state, loss = step(state, u, i, sample(u))
        return state, loss

    state = init_state(params, tx)
    t = time.perf_counter()
    state, loss = epoch(state)
    jax.block_until_ready(loss)
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        state, loss = epoch(state)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - t)
    return {
        "compile_s": compile_s,
        "epoch_s_median": float(np.median(times)),
        "epoch_s_min": float(np.min(times)),
        "final_loss": float(loss),
    }


class CornacEpochs:
    """cornac's BPR (k=64, learning rate 0.01) on the given pairs: ``time(n)`` fits ``n``
    epochs from scratch and returns seconds per epoch. Raises ImportError without cornac."""

    def __init__(self, user, item, *, seed):
        import cornac

        self._cornac, self._seed = cornac, seed
        data = [(str(u), str(i), 1.0) for u, i in zip(user, item, strict=True)]
        self._train = cornac.data.Dataset.from_uir(data, seed=seed)
        self.version = cornac.__version__

    def time(self, n: int) -> float:
        model = self._cornac.models.BPR(
            k=64, max_iter=n, learning_rate=0.01, lambda_reg=0.0, seed=self._seed, verbose=False
        )
        t = time.perf_counter()
        model.fit(self._train)
        return (time.perf_counter() - t) / n


def bench_cornac(user, item, num_users, num_items, *, epochs, seed):
    """Median seconds per epoch of three cornac fits of ``epochs`` epochs (None without
    cornac); ``num_users``/``num_items`` are unused (kept for the callers)."""
    try:
        timer = CornacEpochs(user, item, seed=seed)
    except ImportError:
        return None
    times = [timer.time(epochs) for _ in range(3)]
    return {"epoch_s_median": float(np.median(times)), "version": timer.version}


def main(argv=None):
    p = training_parser(__doc__, epochs=30)
    p.add_argument("--skip-per-step", action="store_true")
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also time the epoch without the sampler / with SGD (cost breakdown)",
    )
    p.add_argument(
        "--floor",
        action="store_true",
        help="also time the fixed pieces (gathers, scatter-adds, dense Adam) alone",
    )
    p.add_argument("--out", default=None, help="JSON record path (default benchmarks/results/)")
    args = p.parse_args(argv)
    split = prepare(DataConfig(path=args.data))
    u, i = split.train.user, split.train.item
    fns, params = build_model(
        ModelConfig(dim=args.dim), split.num_users, split.num_items, seed=args.seed
    )
    data = build_train_arrays(u, i, split.num_users, split.num_items)
    kw = {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed}
    fused = bench_fused(fns, params, data, **kw)
    shapes = mf_shapes(
        split.num_users, split.num_items, int(u.size), dim=args.dim, batch_size=args.batch_size
    )
    record = {
        "benchmark": "train_throughput",
        **environment(),
        "data": os.path.basename(os.path.normpath(args.data)),
        "shapes": shapes,
        "epochs_timed": args.epochs,
        "fused": fused,
        "epoch_s_median": fused["epoch_s_median"],
        "compile_s": fused["compile_s"],
    }
    if not args.skip_per_step:
        per_step_kw = {**kw, "epochs": max(5, args.epochs // 3)}
        per_step = bench_per_step(fns, params, u, i, split.num_items, **per_step_kw)
        record["per_step"] = per_step
        record["speedup_vs_per_step"] = per_step["epoch_s_median"] / fused["epoch_s_median"]
    if args.ablation:
        record["ablation"] = bench_ablation(fns, params, data, **kw)
    if args.floor:
        record["floor"] = bench_floor(params, data, **kw)
    cornac = bench_cornac(
        u, i, split.num_users, split.num_items, epochs=args.epochs, seed=args.seed
    )
    if cornac is not None:
        record["cornac"] = cornac
        record["ratio_vs_cornac"] = fused["epoch_s_median"] / cornac["epoch_s_median"]
    write_record("train_throughput", record, args.out)


if __name__ == "__main__":
    main()
