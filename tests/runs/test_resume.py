"""Every model family resumes bit-exactly: a run stopped after its epoch-2 checkpoint and
resumed to epoch 4 ends with the parameters of an uninterrupted 4-epoch run."""

import json

import jax
import numpy as np
import pytest

from robustjax.losses.sequence import SeqAdvConfig
from robustjax.runs import run_bert4rec, run_sasrec

SYNTHETIC = {"num_users": 24, "num_items": 150, "interactions_per_user": 10, "seed": 3}
SMALL = {"max_len": 8, "dim": 8, "num_blocks": 1, "batch_size": 8, "eval_every": 1, "seed": 0}


def _same_tree(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _interrupted_equals_uninterrupted(run, tmp_path, **kw):
    full = run(out_dir=str(tmp_path / "full"), epochs=4, **kw)
    part = tmp_path / "part"
    run(out_dir=str(part), epochs=2, **kw)  # "killed" right after the epoch-2 checkpoint
    first_two = (part / "history.jsonl").read_text().splitlines()
    resumed = run(out_dir=str(part), epochs=4, resume=True, **kw)
    for key in (
        "valid/sampled_ndcg@10",
        "test/ndcg@10",
        "test/sampled_hr@10",
        "best_epoch",
        "epochs_run",
    ):
        assert resumed[key] == full[key], key
    a = np.load(tmp_path / "full" / "checkpoint" / "state.npz")
    b = np.load(part / "checkpoint" / "state.npz")
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        if name != "__meta__":  # the progress metadata holds timings
            np.testing.assert_array_equal(a[name], b[name])
    lines = (part / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    assert lines[:2] == first_two  # epochs 1-2 were not trained again (their timings stay)


@pytest.mark.parametrize(
    "adv",
    [
        # -m slow runs both; by default test_bert4rec_resume_is_bit_exact covers the
        # sequence loop's resume and tests/runs/test_kill_resume.py the CLI's
        pytest.param(None, marks=pytest.mark.slow),
        pytest.param(SeqAdvConfig(method="apr", eps=0.5, start_epoch=2), marks=pytest.mark.slow),
    ],
    ids=["clean", "apr"],
)
def test_sasrec_resume_is_bit_exact(tmp_path, adv):
    _interrupted_equals_uninterrupted(
        run_sasrec,
        tmp_path,
        data_path=None,
        synthetic=SYNTHETIC,
        adv=adv,
        buckets=2,
        progress=False,
        **SMALL,
    )


@pytest.mark.slow
def test_bert4rec_resume_is_bit_exact(tmp_path):
    _interrupted_equals_uninterrupted(
        run_bert4rec,
        tmp_path,
        data_path=None,
        synthetic=SYNTHETIC,
        num_heads=1,
        progress=False,
        **SMALL,
    )


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="state.npz"):
        run_sasrec(
            out_dir=str(tmp_path),
            data_path=None,
            synthetic=SYNTHETIC,
            epochs=2,
            resume=True,
            progress=False,
            **SMALL,
        )
