"""A run that crashes at any point of a checkpoint write, then resumes, ends with bit-exactly
the parameters of an uninterrupted run, and ``history.jsonl`` holds each epoch once.

The crash is injected into :mod:`robustjax.train.checkpoint`'s file operations: before and
after each rename into place and after each fsync (the steps of a write), numbered over the
whole run.
"""

import json
import os

import numpy as np
import pytest

from robustjax.config import apply_overrides
from robustjax.experiments import get_config
from robustjax.run import run_experiment
from robustjax.train import checkpoint

EPOCHS = 3


class _Crash(BaseException):
    """Stands for a kill: not an ``Exception``, so nothing handles it."""


class _FaultyOs:
    """``os`` with ``replace`` and ``fsync`` counted as steps; step ``crash_at`` crashes."""

    def __init__(self, crash_at=None):
        self.steps, self.crash_at = 0, crash_at

    def __getattr__(self, name):
        return getattr(os, name)

    def _step(self):
        self.steps += 1
        if self.steps == self.crash_at:
            raise _Crash(self.steps)

    def replace(self, src, dst):
        self._step()  # killed before the rename: the old file stays
        os.replace(src, dst)
        self._step()  # killed right after it

    def fsync(self, fd):
        os.fsync(fd)
        self._step()


def _cfg():
    return apply_overrides(
        get_config("bpr-mf", tiny=True),
        [f"train.epochs={EPOCHS}", "train.checkpoint_every=1", "train.eval_every=1"],
    )


def _run(out, monkeypatch, crash_at=None, resume=False):
    faulty = _FaultyOs(crash_at)
    monkeypatch.setattr(checkpoint, "os", faulty)
    try:
        run_experiment(_cfg(), str(out), resume=resume, progress=False)
    finally:
        monkeypatch.setattr(checkpoint, "os", os)
    return faulty.steps


def _params(out):
    with np.load(os.path.join(out, "checkpoint", "params.npz")) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


def _crash_and_resume(tmp_path, monkeypatch, full, k):
    out = tmp_path / f"crash{k}"
    with pytest.raises(_Crash):
        _run(out, monkeypatch, crash_at=k)
    resume = os.path.exists(out / "checkpoint" / "state.npz")
    _run(out, monkeypatch, resume=resume)
    with open(out / "history.jsonl") as f:
        epochs = [json.loads(line)["epoch"] for line in f]
    assert epochs == list(range(1, EPOCHS + 1)), (k, epochs)
    got = _params(out)
    assert got.keys() == full.keys()
    for name in full:
        np.testing.assert_array_equal(got[name], full[name], err_msg=f"crash at step {k}: {name}")


def _steps(tmp_path, monkeypatch):
    total = _run(tmp_path / "full", monkeypatch)
    return total, _params(tmp_path / "full")


@pytest.mark.slow
def test_crash_inside_a_middle_checkpoint_resumes_bit_exactly(tmp_path, monkeypatch):
    """The steps of the epoch-2 writes (best model, then state), a few runs."""
    total, full = _steps(tmp_path, monkeypatch)
    per_epoch = total // (EPOCHS + 1)  # roughly: the last part is params.npz (+ json)
    for k in range(per_epoch + 1, 2 * per_epoch + 1):
        _crash_and_resume(tmp_path, monkeypatch, full, k)


@pytest.mark.slow  # two tiny runs per step of the whole run (about 20 steps)
def test_crash_at_every_checkpoint_step_resumes_bit_exactly(tmp_path, monkeypatch):
    total, full = _steps(tmp_path, monkeypatch)
    for k in range(1, total + 1):
        _crash_and_resume(tmp_path, monkeypatch, full, k)


def test_a_write_removes_the_temporary_file_a_killed_write_left(tmp_path):
    # a SIGKILL between the temporary file's creation and its rename leaves it behind; the
    # next write of the same file removes it, and leaves other files' temporaries alone
    path = str(tmp_path / "params.npz")
    stale = tmp_path / ".tmp-params.npz.abc123"
    other = tmp_path / ".tmp-best_params.npz.abc123"
    stale.write_bytes(b"PK truncated")
    other.write_bytes(b"PK truncated")
    checkpoint.save_pytree(path, {"w": np.arange(3, dtype=np.float32)}, meta={"epoch": 1})
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")) == [other.name]
    np.testing.assert_array_equal(
        checkpoint.load_pytree(path, {"w": np.zeros(3, np.float32)})["w"], np.arange(3.0)
    )
