"""A training run killed mid-way (SIGKILL, as a crash or a pre-empted job) and started
again with ``--resume`` ends bit-identical to an uninterrupted run, for every family."""

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
    meta = os.path.join(out, "checkpoint", "state.json")
    proc = subprocess.Popen(_cli(*args), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 600
    while not os.path.exists(meta) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(os.path.join(out, "history.jsonl")) as f:
        return len(f.readlines())


@pytest.mark.slow  # three CLI runs of each family (about a minute each on 2 cores)
@pytest.mark.parametrize("experiment", ["sasrec-ml1m", "bert4rec-ml1m", "bpr-mf"])
def test_killed_run_resumes_bit_identical(tmp_path, experiment):
    sets = ["--experiment", experiment, "--set", "train.epochs=6", "--set",
            "train.checkpoint_every=1"]  # fmt: skip
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    _run([*sets, "--out", full])
    done = _kill_after_first_checkpoint([*sets, "--out", part], part)
    assert done < 6, "the run finished before it could be killed"
    _run([*sets, "--out", part, "--resume"])
    a = np.load(os.path.join(full, "checkpoint", "params.npz"))
    b = np.load(os.path.join(part, "checkpoint", "params.npz"))
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name])
    with (
        open(os.path.join(full, "metrics.json")) as f,
        open(os.path.join(part, "metrics.json")) as g,
    ):
        import json

        ma, mb = json.load(f), json.load(g)
    for key in ma:
        if key.startswith(("valid/", "test/")) or key in ("best_epoch", "epochs_run"):
            assert ma[key] == mb[key], key
