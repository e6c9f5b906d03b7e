"""The ``eval_1m`` piece of :mod:`benchmarks.scale`: full-ranking evaluation at a 1M x 1M
catalogue (random factors), its compiled step's peak memory and a slice's wall time."""

import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._scale_timing import device_peak_bytes, peak_rss_bytes
from robustjax.eval import evaluate_full, full_batch_spec
from robustjax.eval.full import SLOT_WIDTH, eval_full_step

KS = (10, 20, 50)


def _score(p, users):
    return p["user"][users] @ p["item"].T


def _random_factors(num_users: int, num_items: int) -> dict:
    """d64 user and item tables, normal with scale 0.1 (key 0)."""
    key_u, key_i = jax.random.split(jax.random.key(0))
    return {
        "user": jax.random.normal(key_u, (num_users, 64), jnp.float32) * 0.1,
        "item": jax.random.normal(key_i, (num_items, 64), jnp.float32) * 0.1,
    }


def _step_memory(params, num_items: int, *, batch_size, targets, excluded):
    """XLA's memory analysis of one compiled evaluation batch (the shapes ``evaluate_full``
    uses; None where the backend gives none)."""
    batch = full_batch_spec(
        batch_size,
        target_entries=batch_size * targets,
        exclude_entries=batch_size * excluded,
        slot_rows=batch_size * -(-targets // SLOT_WIDTH),
    )
    compiled = eval_full_step.lower(
        params, batch, score_users_fn=_score, num_items=num_items, ks=KS, auc=True
    ).compile()
    return compiled.memory_analysis()


def bench_eval_1m(sizes, *, batch_size=256, targets=8, excluded=32) -> tuple[dict, dict]:
    """Memory and wall time of full-ranking evaluation at ``big_users x big_items``."""
    nu, ni, n_slice = sizes["big_users"], sizes["big_items"], sizes["big_slice"]
    params = _random_factors(nu, ni)
    rng = np.random.default_rng(0)

    def csr(per_user):
        indptr = np.arange(nu + 1, dtype=np.int64) * per_user
        return indptr, rng.integers(0, ni, nu * per_user).astype(np.int32)

    target, exclude = csr(targets), csr(excluded)
    users = np.arange(n_slice)
    mem = _step_memory(params, ni, batch_size=batch_size, targets=targets, excluded=excluded)
    peak = None
    if mem is not None:
        peak = int(mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes)
    t = time.perf_counter()
    metrics = evaluate_full(
        _score, params, target_csr=target, exclude_csrs=[exclude], num_items=ni,
        ks=KS, batch_size=batch_size, users=users, auc=True,
    )  # fmt: skip
    wall = time.perf_counter() - t
    out = {
        "users": nu,
        "items": ni,
        "slice_users": n_slice,
        "batch_size": batch_size,
        "peak_bytes": peak,
        "temp_bytes": None if mem is None else int(mem.temp_size_in_bytes),
        "slice_seconds": wall,
        "process_peak_rss_bytes": peak_rss_bytes(),
        "device_peak_bytes": device_peak_bytes(),
        "num_users_evaluated": metrics["num_users"],
    }
    flat = {
        "eval_1m/peak_bytes": peak,
        "eval_1m/slice_s": wall,
        "eval_1m/process_peak_rss_bytes": out["process_peak_rss_bytes"],
    }
    return out, flat
