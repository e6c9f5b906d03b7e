import csv
import json
import os

import pytest


def _read(path):
    with open(path) as f:
        return f.read()

from robustjax.cli.main import main


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for option in ("--experiment", "--data", "--out", "--set", "--format", "--resume", "--tiny",
                   "--no-progress"):
        assert option in out
    assert main([]) == 0


def test_tiny_train_writes_every_output(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--tiny", "--out", out, "--no-progress"]) == 0
    for name in ("metrics.json", "config.json", "history.jsonl", "data.json",
                 "recommendations.tsv", "checkpoint/state.npz", "checkpoint/params.npz"):
        assert os.path.exists(os.path.join(out, name)), name
    metrics = json.loads(_read(os.path.join(out, "metrics.json")))
    for key in ("test/ndcg@10", "test/recall@10", "valid/recall@10", "test/auc"):
        assert 0.0 <= metrics[key] <= 1.0
    rows = list(csv.reader(_read(os.path.join(out, "recommendations.tsv")).splitlines(),
                           delimiter="\t"))
    assert rows[0] == ["user", "item", "rank", "score"]
    assert rows[1][2] == "1"
    history = [json.loads(line) for line in _read(os.path.join(out, "history.jsonl")).splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]


def test_train_on_real_split_tiny(tmp_path, shared_data):
    out = str(tmp_path / "run")
    path = os.path.join(shared_data, "ml-100k-split")
    assert main(["train", "--experiment", "bpr-mf", "--data", path, "--out", out,
                 "--set", "train.epochs=1", "--set", "model.dim=8", "--no-progress"]) == 0
    metrics = json.loads(_read(os.path.join(out, "metrics.json")))
    assert metrics["test/num_users"] > 900
    rows = _read(os.path.join(out, "recommendations.tsv")).splitlines()
    assert len(rows) == 1 + 50 * metrics["test/num_users"]


def test_bad_input_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\t2\n3\tx\ty\tz\tw\n")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "o"), "--tiny"]) == 2
    err = capsys.readouterr().err
    assert "robustjax: error:" in err and "bad.tsv" in err
    assert main(["train", "--tiny", "--out", str(tmp_path / "o"), "--set", "nope=1"]) == 2
    assert "Valid keys" in capsys.readouterr().err
