"""Timing pieces of :mod:`benchmarks.scale`: trainers and cornac timed round-robin, the
evaluation against the bare score product, memory peaks."""

import os
import resource
import time

# cornac's OpenMP threads otherwise spin after each fit, taking a core from the next timed
# JAX epochs of the round-robin (set before OpenMP starts, i.e. before cornac is imported)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import first_and_median_seconds, median_seconds
from benchmarks.eval_sweep import full_eval
from benchmarks.train_throughput import CornacEpochs
from robustjax.data import user_item_csr
from robustjax.eval import evaluate_planned, plan_full
from robustjax.eval.full import eval_full_step
from robustjax.losses import Term, clean_term, combine
from robustjax.train import epoch_permutation, init_state, make_optimizer, make_train_epoch
from robustjax.train.sparse_step import row_sparse_optimizer


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RssWindow:
    """The peak resident set size over a window of the process's life (Linux: the peak is
    reset on entry through ``/proc/self/clear_refs``, read from ``VmHWM`` on exit), with
    the resident size at entry. ``peak_bytes`` is None where that is unavailable."""

    def __enter__(self):
        self.start_bytes, self.peak_bytes = _status_bytes("VmRSS"), None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._reset = True
        except OSError:
            self._reset = False
        return self

    def __exit__(self, *exc):
        if self._reset:
            self.peak_bytes = _status_bytes("VmHWM")
        return False


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            line = next((x for x in f if x.startswith(field + ":")), None)
    except OSError:
        return None
    return None if line is None else int(line.split()[1]) * 1024


def device_peak_bytes() -> int | None:
    """The first device's peak allocated bytes so far (GPU/TPU allocators report it; None
    on CPU, where ``peak_rss_bytes`` is the measure)."""
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else int(peak)


def bpr_trainer(fns, data, optimizer, *, batch_size, seed, lr=1e-3):
    """``(state, run_epoch(state, e) -> state)`` for BPR with ``optimizer``."""
    if optimizer.startswith("lazy_"):  # row-sparse: only the rows a batch touches move
        tx = row_sparse_optimizer(fns, optimizer.removeprefix("lazy_"), lr)
    else:
        tx = make_optimizer(optimizer, lr)
    train_epoch = make_train_epoch(combine(bpr=Term(clean_term(fns))), tx)
    root = jax.random.key(seed)

    def run_epoch(state, e):
        perm = epoch_permutation(data.num_interactions, batch_size, seed=seed, epoch=e)
        state, m = train_epoch(state, perm, data, jax.random.fold_in(root, e))
        return state, m

    return tx, run_epoch


class JaxEpochs:
    """One compiled BPR trainer with ``optimizer``: ``time(n)`` runs ``n`` more epochs and
    returns their median seconds (the first call's compile is ``compile_s``)."""

    def __init__(self, fns, params, data, optimizer, *, batch_size, seed):
        tx, self._run_epoch = bpr_trainer(fns, data, optimizer, batch_size=batch_size, seed=seed)
        self._state = init_state(jax.tree.map(jnp.copy, params), tx)
        self._epoch = 0
        self.compile_s = self.time(1)

    def time(self, n: int) -> float:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            self._state, m = self._run_epoch(self._state, self._epoch)
            jax.block_until_ready(m)
            times.append(time.perf_counter() - t)
            self._epoch += 1
        return float(np.median(times))


def interleaved_epochs(
    fns, params, data, pairs, optimizers, *, epochs, rounds, batch_size=2048
) -> dict:
    """Epoch seconds of each optimizer and of cornac (where installed) on the training
    ``pairs = (user, item)`` (``data`` holds them as training arrays), timed round-robin:
    ``rounds`` rounds of ``epochs`` epochs each, so that a slow spell of a shared machine
    falls on all of them. Returns ``{name: {"epoch_s": median over rounds, "rounds": [...]},
    ...}`` and, with cornac, ``ratio_vs_cornac[name]``: the median of the per-round ratios."""
    timers = {o: JaxEpochs(fns, params, data, o, batch_size=batch_size, seed=0) for o in optimizers}
    try:
        timers["cornac"] = CornacEpochs(*pairs, seed=0)
    except ImportError:
        pass
    per_round = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            per_round[name].append(timer.time(epochs))
    out = {name: {"epoch_s": float(np.median(ts)), "rounds": ts} for name, ts in per_round.items()}
    for o in optimizers:
        out[o]["first_epoch_s"] = timers[o].compile_s
    if "cornac" in timers:
        out["cornac"]["version"] = timers["cornac"].version
        out["ratio_vs_cornac"] = {
            o: float(np.median(np.array(per_round[o]) / np.array(per_round["cornac"])))
            for o in optimizers
        }
    return out


def eval_seconds(fns, params, split, *, repeats=20, part="test", auc=True):
    """``(median seconds, metrics)`` of ``full_eval`` after a warm-up call (its metrics)."""
    run = full_eval(fns, params, split, part=part, auc=auc)
    metrics = run()
    return median_seconds(run, repeats=repeats), metrics


def eval_planned_seconds(fns, params, split, *, repeats=20, auc=True):
    """As ``eval_seconds`` on test, with the host packing done once beforehand
    (``plan_full``): what each repeated evaluation of a fixed split costs."""
    csr = lambda t: user_item_csr(t, split.num_users)
    plan = plan_full(
        target_csr=csr(split.test), exclude_csrs=[csr(split.train), csr(split.valid)],
        num_items=split.num_items, batch_size=1024,
    )  # fmt: skip

    def run():
        return evaluate_planned(fns.score_all, params, plan, ks=(10, 20, 50), auc=auc)

    return first_and_median_seconds(run, repeats=repeats)[1]


def eval_step_seconds(fns, params, split, *, auc, repeats=20):
    """The compiled evaluation step alone (``eval_full_step``: scores, masks, rank and AUC
    counts, metric sums) on all test users as one batch of a plan; the difference to
    ``eval_seconds`` is the host's share (CSR checks, COO lists, slot rows, the transfer
    and the float64 sums)."""
    csr = lambda t: user_item_csr(t, split.num_users)
    target = csr(split.test)
    plan = plan_full(
        target_csr=target, exclude_csrs=[csr(split.train), csr(split.valid)],
        num_items=split.num_items, batch_size=max(int(np.count_nonzero(np.diff(target[0]))), 1),
    )  # fmt: skip
    (batch,) = plan.batches  # every test user in one batch

    def run():
        return eval_full_step(
            params, batch, score_users_fn=fns.score_all, num_items=split.num_items,
            ks=(10, 20, 50), auc=auc,
        )  # fmt: skip

    return first_and_median_seconds(run, repeats=repeats)[1]


def product_seconds(fns, params, num_users, repeats=20):
    users = jnp.arange(num_users, dtype=jnp.int32)
    product = jax.jit(lambda p, u: fns.score_all(p, u))
    return first_and_median_seconds(product, params, users, repeats=repeats)[1]
