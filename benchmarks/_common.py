"""Shared helpers for benchmark scripts: timing and JSON records."""

import datetime
import json
import os
import platform
import time

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# the shared data sets beside the checkout; ROBUSTJAX_SHARED_DATA points elsewhere (a copy
# carried to a machine where ../shared does not exist, e.g. the GPU check's)
SHARED = os.environ.get("ROBUSTJAX_SHARED_DATA") or os.path.normpath(
    os.path.join(HERE, "..", "..", "shared", "data")
)


def environment() -> dict:
    import flax
    import optax

    dev = jax.devices()[0]
    return {
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
        "num_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def timed(fn, *args):
    """Runs ``fn(*args)``, blocks on the result, returns ``(result, seconds)``."""
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t


def write_record(name: str, record: dict, out: str | None = None, *, echo: bool = True) -> str:
    """Writes one JSON record per run under benchmarks/results/ and prints it (``echo``)."""
    path = out or os.path.join(
        HERE, "results", f"{name}-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    if echo:
        print(json.dumps(record, indent=1, sort_keys=True))
        print(f"wrote {path}")
    return path
