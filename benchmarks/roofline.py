"""Each hot kernel's time against its roofline on the current device.

For every kernel, XLA's cost analysis of the compiled program gives the flops and the bytes
it moves; the measured time then gives achieved flop/s and byte/s, and the ratio of the
time to the roofline bound ``max(flops / peak_flops, bytes / bandwidth)`` (1.0 is the
roofline; 5.0 means five times slower than the bound). Peaks come from the device's
specification where it is known (H100/H200 SXM) and are also measured here (a large
matmul and a large copy), so the ratios are meaningful on any device, CPU included.

Kernels: the MF score product, full-ranking evaluation of one batch (ranks and AUC by
counting), one fused BPR training epoch (dense Adam), one APR epoch, and a PGD-10 attack on
the embedding tables.

Usage: python -m benchmarks.roofline --json OUT [--tiny]
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._common import environment, first_and_median_seconds, write_record

# (dense fp32-via-TF32 / bf16 tensor flop/s, HBM bytes/s): vendor specifications, SXM parts
SPECS = {
    "H100": {"flops_tf32": 494e12, "flops_bf16": 989e12, "hbm_bytes_s": 3.35e12},
    "H200": {"flops_tf32": 494e12, "flops_bf16": 989e12, "hbm_bytes_s": 4.8e12},
}


def _time(fn, *args, repeats=10):
    """Median seconds of ``repeats`` calls of ``fn(*args)`` after a warm-up call."""
    return first_and_median_seconds(fn, *args, repeats=repeats)[1]


def _cost(fn, *args) -> tuple[float, float]:
    """(flops, bytes accessed) of ``fn`` compiled for ``args``, from XLA's cost analysis."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, list):  # older jax returns one dict per computation
        cost = cost[0] if cost else {}
    cost = cost or {}
    return float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))


def measured_peaks(n: int) -> dict:
    """Achieved matmul flop/s (fp32, n x n) and copy bandwidth (bytes/s) on this device."""
    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    t = _time(mm, a)
    big = jnp.ones((64 * n * n // 16,), jnp.float32)
    cp = jax.jit(lambda x: x * 1.0001)
    tc = _time(cp, big)
    return {"flops": 2 * n**3 / t, "bytes_s": 2 * big.size * 4 / tc}


def kernels(tiny: bool) -> dict:
    """``name -> (fn, args, loop trips)`` of the hot kernels at benchmark sizes."""
    from robustjax.eval import TargetSlots
    from robustjax.eval.ranks import slot_metrics

    users, items, dim = (512, 2048, 64) if tiny else (8192, 1 << 20, 64)
    key = jax.random.key(0)
    ku, ki = jax.random.split(key)
    u = jax.random.normal(ku, (users, dim), jnp.float32)
    v = jax.random.normal(ki, (items, dim), jnp.float32)
    out = {"score_product": (lambda a, b: a @ b.T, (u, v), 1)}
    b = 256 if tiny else 1024
    rows, width = b * 2, 8
    rng = np.random.default_rng(0)
    exclude = jnp.asarray(rng.random((b, items)) < 0.01)
    target = jnp.asarray(rng.random((b, items)) < 0.001)
    slots = TargetSlots(
        jnp.asarray(np.repeat(np.arange(b), 2), jnp.int32),
        jnp.asarray(rng.integers(0, items, (rows, width)), jnp.int32),
        jnp.ones((rows, width), bool),
    )

    def eval_batch(a, bt, ex, tg, sl):
        return slot_metrics(a[:b] @ bt.T, ex, tg, sl, ks=(10, 20, 50), auc=True)

    out["eval_rank_counts"] = (eval_batch, (u, v, exclude, target, slots), 1)
    out.update(_train_kernels(tiny))
    return out


def _train_kernels(tiny: bool) -> dict:
    """One fused BPR epoch and one APR epoch (dense Adam) on a synthetic catalogue."""
    from robustjax.losses import Term, clean_term, combine
    from robustjax.models import ModelConfig, build_model
    from robustjax.objectives import AdvConfig, build_phases
    from robustjax.train import (
        build_train_arrays,
        epoch_permutation,
        init_state,
        make_optimizer,
        make_train_epoch,
    )

    nu, ni, n = (2000, 3000, 40_000) if tiny else (29858, 40981, 810_000)
    rng = np.random.default_rng(0)
    user = rng.integers(0, nu, n).astype(np.int32)
    item = rng.integers(0, ni, n).astype(np.int32)
    data = build_train_arrays(user, item, nu, ni)
    fns, params = build_model(ModelConfig(dim=64), nu, ni, seed=0)
    tx = make_optimizer("adam", 1e-3)
    perm = jnp.asarray(epoch_permutation(n, 2048, seed=0, epoch=0))
    out = {}
    apr = build_phases(
        fns, loss="bpr", l2=0.0, adv=AdvConfig(method="apr", eps=0.5, warm_epochs=0), epochs=1
    )[-1].objective
    objectives = {"bpr_epoch": combine(bpr=Term(clean_term(fns))), "apr_epoch": apr}
    for name, objective in objectives.items():
        epoch = make_train_epoch(objective, tx)
        state = init_state(params, tx)

        def run(state, perm, key, epoch=epoch):
            return epoch(jax.tree.map(jnp.copy, state), perm, data, key)

        out[name] = (run, (state, perm, jax.random.key(1)), perm.shape[0])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=None)
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args(argv)
    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", "")
    spec = next((v for k, v in SPECS.items() if k in kind), None)
    peaks = measured_peaks(256 if args.tiny else 8192)
    record = {"benchmark": "roofline", **environment(), "tiny": args.tiny,
              "spec": spec, "measured_peaks": peaks, "kernels": {}}  # fmt: skip
    for name, (fn, fargs, steps) in kernels(args.tiny).items():
        flops, nbytes = _cost(fn, *fargs)
        # XLA's cost analysis counts a loop body once: an epoch's lax.scan runs it `steps` times
        flops, nbytes = flops * steps, nbytes * steps
        seconds = _time(jax.jit(fn), *fargs, repeats=3 if "epoch" in name else 10)
        row = {"seconds": seconds, "flops": flops, "bytes": nbytes}
        for label, peak in (("measured", peaks), ("spec", spec)):
            if not peak:
                continue
            pf = peak.get("flops") or peak.get("flops_tf32")
            pb = peak.get("bytes_s") or peak.get("hbm_bytes_s")
            bound = max(flops / pf, nbytes / pb)
            row[f"ratio_to_roofline_{label}"] = seconds / bound if bound > 0 else None
        record["kernels"][name] = row
        record[f"{name}/ratio_to_roofline"] = row.get(
            "ratio_to_roofline_spec", row.get("ratio_to_roofline_measured")
        )
        print(f"{name}: {row}", flush=True)
    write_record("roofline", record, args.json)
    return record


if __name__ == "__main__":
    main()
