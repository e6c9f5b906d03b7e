"""Shared helpers for benchmark scripts: options, timing and JSON records."""

import argparse
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


def training_parser(
    doc: str, *, epochs: int, epochs_help: str | None = None
) -> argparse.ArgumentParser:
    """The argument parser of a BPR-MF training benchmark, described by the first line of
    ``doc``, with the options they share: ``--data`` (default ml-100k-split), ``--epochs``
    (default ``epochs``), ``--batch-size`` 2048, ``--dim`` 64 and ``--seed`` 2024."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--data", default=os.path.join(SHARED, "ml-100k-split"))
    p.add_argument("--epochs", type=int, default=epochs, help=epochs_help)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=2024)
    return p


def mf_shapes(num_users: int, num_items: int, num_train: int, *, dim: int, batch_size: int) -> dict:
    """The ``shapes`` entry of a BPR-MF training benchmark's record."""
    return {
        "num_users": num_users,
        "num_items": num_items,
        "num_train": num_train,
        "dim": dim,
        "batch_size": batch_size,
        "steps_per_epoch": -(-num_train // batch_size),
    }


def timed(fn, *args):
    """Runs ``fn(*args)``, blocks on the result, returns ``(result, seconds)``."""
    t = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t


def median_seconds(fn, *args, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn(*args)`` (compiled already), each
    waited on."""
    return float(np.median([timed(fn, *args)[1] for _ in range(repeats)]))


def first_and_median_seconds(fn, *args, repeats: int) -> tuple[float, float]:
    """Seconds of a first call of ``fn(*args)`` (compilation included) and the median of
    ``repeats`` more calls, each waited on."""
    _, first = timed(fn, *args)
    return first, median_seconds(fn, *args, repeats=repeats)


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
