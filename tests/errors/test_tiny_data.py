"""``--tiny --data`` trains on the first users of a real data set, in seconds."""

import json
import os

import numpy as np
import pytest

from robustjax.cli.main import TINY_USERS, main
from robustjax.data import DataConfig, prepare
from robustjax.data.preprocess import first_users

DATA = "../shared/data"


def test_first_users_keeps_the_rows_of_the_first_ids():
    table = prepare(DataConfig(synthetic_users=30, synthetic_items=40, synthetic_per_user=8)).train
    sub = first_users(table, 5)
    assert set(np.unique(sub.user)) <= set(range(5)) and len(sub) == int((table.user < 5).sum())
    assert first_users(table, 0) is table and first_users(table, 10**6) is table
    with pytest.raises(ValueError, match="max_users"):
        DataConfig(max_users=-1)


@pytest.mark.parametrize(
    "experiment, data",
    [("bpr-mf", "ml-100k-split")]  # ml-1m cases (3-4 s each) run with -m slow
    + [pytest.param(e, "ml-1m", marks=pytest.mark.slow) for e in ("bpr-mf", "sasrec-ml1m")],
)
def test_tiny_with_real_data_subsamples_users(tmp_path, experiment, data):
    path = os.path.join(os.path.dirname(__file__), "..", "..", DATA, data)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not here")
    out = tmp_path / "run"
    argv = ["train", "--tiny", "--experiment", experiment, "--data", path, "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    summary = json.loads((out / "data.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["max_users"] == TINY_USERS
    users = summary.get("train_users", summary["num_users"])
    assert users <= TINY_USERS
