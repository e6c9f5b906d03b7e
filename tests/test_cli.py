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
    for option in (
        "--experiment",
        "--data",
        "--out",
        "--set",
        "--format",
        "--resume",
        "--tiny",
        "--no-progress",
    ):
        assert option in out
    assert main([]) == 0


def test_tiny_train_writes_every_output(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--tiny", "--out", out, "--no-progress"]) == 0
    for name in (
        "metrics.json",
        "config.json",
        "history.jsonl",
        "data.json",
        "recommendations.tsv",
        "checkpoint/state.npz",
        "checkpoint/params.npz",
    ):
        assert os.path.exists(os.path.join(out, name)), name
    metrics = json.loads(_read(os.path.join(out, "metrics.json")))
    for key in ("test/ndcg@10", "test/recall@10", "valid/recall@10", "test/auc"):
        assert 0.0 <= metrics[key] <= 1.0
    rows = list(
        csv.reader(_read(os.path.join(out, "recommendations.tsv")).splitlines(), delimiter="\t")
    )
    assert rows[0] == ["user", "item", "rank", "score"]
    assert rows[1][2] == "1"
    history = [json.loads(line) for line in _read(os.path.join(out, "history.jsonl")).splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]


def test_train_on_real_split_tiny(tmp_path, shared_data):
    out = str(tmp_path / "run")
    path = os.path.join(shared_data, "ml-100k-split")
    assert (
        main(
            [
                "train",
                "--experiment",
                "bpr-mf",
                "--data",
                path,
                "--out",
                out,
                "--set",
                "train.epochs=1",
                "--set",
                "model.dim=8",
                "--no-progress",
            ]
        )
        == 0
    )
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


def test_sweep_compares_checkpoints_in_one_report(tmp_path, capsys):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["train", "--tiny", "--out", a, "--no-progress"]) == 0
    assert main(["train", "--tiny", "--out", b, "--no-progress", "--set", "train.seed=3"]) == 0
    out = str(tmp_path / "sweep")
    assert (
        main(
            [
                "sweep",
                "--checkpoint",
                a,
                "--checkpoint",
                b,
                "--attack",
                "pgd",
                "--eps",
                "0:1:4",
                "--seeds",
                "0,1",
                "--ks",
                "5,10",
                "--stability-k",
                "5",
                "--steps",
                "3",
                "--out",
                out,
                "--no-progress",
            ]
        )
        == 0
    )
    sweep = json.loads(_read(os.path.join(out, "sweep.json")))
    assert set(sweep["checkpoints"]) == {a, b}
    assert len(sweep["checkpoints"][a]["metrics"]["ndcg@10"]) == 2  # seeds
    assert len(sweep["checkpoints"][a]["metrics"]["ndcg@10"][0]) == 4  # eps levels
    with open(os.path.join(out, "ndcg_at_10.png"), "rb") as f:
        assert f.read(4) == b"\x89PNG"
    assert "shifted test data" in _read(os.path.join(out, "sweep.md"))


def test_sweep_rejects_checkpoints_of_another_data_set(tmp_path, capsys):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["train", "--tiny", "--out", a, "--no-progress"]) == 0
    assert (
        main(["train", "--tiny", "--out", b, "--no-progress", "--set", "data.synthetic_items=70"])
        == 0
    )
    assert (
        main(
            [
                "sweep",
                "--checkpoint",
                a,
                "--checkpoint",
                b,
                "--eps",
                "0,0.5",
                "--ks",
                "5",
                "--stability-k",
                "5",
                "--out",
                str(tmp_path / "s"),
            ]
        )
        == 2
    )
    assert "was trained on 40 users x" in capsys.readouterr().err
    assert main(["sweep", "--checkpoint", a, "--eps", "0,-1", "--out", str(tmp_path / "s")]) == 2
    assert "eps must be finite and >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides",
    [
        ["train.loss=softmax", "train.num_negatives=4"],
        ["train.loss=bce", "train.sampler=popularity"],
        ["train.optimizer=adagrad", "train.l2=1e-4", "model.use_bias=true"],
        ["train.optimizer=sgd", "train.learning_rate=0.05", "train.weight_decay=1e-4"],
    ],
)
def test_loss_sampler_and_optimizer_options_train(tmp_path, overrides):
    args = ["train", "--tiny", "--out", str(tmp_path / "o"), "--no-progress"]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 0
    history = [json.loads(x) for x in _read(str(tmp_path / "o" / "history.jsonl")).splitlines()]
    assert all(abs(h["loss"]) < 1e6 for h in history)


@pytest.mark.parametrize(
    "experiment",
    ["neumf", "lightgcn", "apr-mf", pytest.param("sasrec-ml1m", marks=pytest.mark.slow)],
)  # run_sasrec itself: tests/models/test_sasrec.py
def test_named_experiments_run_tiny(tmp_path, experiment):
    out = str(tmp_path / experiment)
    assert main(["train", "--experiment", experiment, "--tiny", "--out", out, "--no-progress"]) == 0
    metrics = json.loads(_read(os.path.join(out, "metrics.json")))
    assert any(k.startswith("test/") for k in metrics)
