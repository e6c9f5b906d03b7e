"""A training run killed mid-way (SIGKILL, as a crash or a pre-empted job) and started
again with ``--resume`` ends bit-identical to an uninterrupted run, for every family."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _cli(*args):
    return [sys.executable, "-m", "robustjax.cli.main", "train", "--tiny", "--no-progress", *args]


def _run(args):
    subprocess.run(_cli(*args), check=True, cwd=ROOT, capture_output=True, timeout=600)


def _kill_after_first_checkpoint(args, out):
    """Starts the run, SIGKILLs it once any checkpoint's metadata exists; returns the path
    of that checkpoint (None if the run ended first)."""
    found = None
    proc = subprocess.Popen(_cli(*args), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 600
    while found is None and proc.poll() is None and time.time() < deadline:
        for dirpath, _, files in os.walk(out):
            if "state.json" in files:
                found = os.path.join(dirpath, "state.json")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return found


def _without_timings(x):
    if isinstance(x, dict):
        return {
            k: _without_timings(v)
            for k, v in x.items()
            if "seconds" not in k and k not in ("process_epochs", "resumed_at_epoch")
        }
    return x


def _params_files(root):
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith("params.npz"):
                yield os.path.relpath(os.path.join(dirpath, f), root)


@pytest.mark.slow  # three CLI runs per family (up to a minute each on 2 cores)
@pytest.mark.parametrize("experiment", ["sasrec-ml1m", "bert4rec-ml1m", "bpr-mf", "irgan"])
def test_killed_run_resumes_bit_identical(tmp_path, experiment):
    sets = ["--experiment", experiment]
    if experiment != "irgan":  # irgan's GAN part checkpoints every epoch already
        sets += ["--set", "train.epochs=6", "--set", "train.checkpoint_every=1"]
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    _run([*sets, "--out", full])
    killed_at = _kill_after_first_checkpoint([*sets, "--out", part], part)
    _run([*sets, "--out", part, "--resume"])
    files = sorted(_params_files(full))
    assert files and files == sorted(_params_files(part))
    for name in files:
        a, b = np.load(os.path.join(full, name)), np.load(os.path.join(part, name))
        for key in set(a.files) - {"__meta__"}:  # the metadata holds timings
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
    with (
        open(os.path.join(full, "metrics.json")) as f,
        open(os.path.join(part, "metrics.json")) as g,
    ):
        assert _without_timings(json.load(f)) == _without_timings(json.load(g))
    assert killed_at is not None
