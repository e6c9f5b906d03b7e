import csv
import json
import os

import numpy as np
import pytest

from robustjax.cli.main import main
from robustjax.experiments import get_config


def _read(path):
    with open(path) as f:
        return f.read()


def _config(run_dir):
    return json.loads(_read(os.path.join(run_dir, "config.json")))


def _history(run_dir):
    return [json.loads(x) for x in _read(os.path.join(run_dir, "history.jsonl")).splitlines()]


def _params(run_dir):
    """The selected model's parameter leaves of checkpoint/params.npz, by tree path."""
    with np.load(os.path.join(run_dir, "checkpoint", "params.npz")) as z:
        return [z[k] for k in sorted(z.files) if k != "__meta__"]


def _same_params(a, b):
    pa, pb = _params(a), _params(b)
    return len(pa) == len(pb) and all(
        x.shape == y.shape and np.array_equal(x, y) for x, y in zip(pa, pb)
    )


@pytest.fixture(scope="module")
def train_tiny(tmp_path_factory):
    """`robustjax train --tiny` with --set overrides; each distinct run happens once per module
    (the runs are deterministic and the tests only read their folders)."""
    runs = {}

    def run(*overrides):
        if overrides not in runs:
            out = str(tmp_path_factory.mktemp("run") / "out")
            args = ["train", "--tiny", "--out", out, "--no-progress"]
            for item in overrides:
                args += ["--set", item]
            assert main(args) == 0, overrides
            runs[overrides] = out
        return runs[overrides]

    return run


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


def test_tiny_train_writes_every_output(train_tiny):
    out = train_tiny()
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
    assert [h["epoch"] for h in _history(out)] == [1, 2]


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
    # both --set overrides took effect: one epoch, 8-dimensional user and item tables
    assert [h["epoch"] for h in _history(out)] == [1]
    assert sorted(p.shape for p in _params(out)) == [(943, 8), (1682, 8)]


def test_bad_input_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\t2\n3\tx\ty\tz\tw\n")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "o"), "--tiny"]) == 2
    err = capsys.readouterr().err
    assert "robustjax: error:" in err and "bad.tsv" in err
    assert main(["train", "--tiny", "--out", str(tmp_path / "o"), "--set", "nope=1"]) == 2
    assert "Valid keys" in capsys.readouterr().err


def test_sweep_compares_checkpoints_in_one_report(tmp_path, train_tiny):
    a, b = train_tiny(), train_tiny("train.seed=3")
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


def test_sweep_rejects_checkpoints_of_another_data_set(tmp_path, train_tiny, capsys):
    a, b = train_tiny(), train_tiny("data.synthetic_items=70")
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


OPTION_CASES = {
    "softmax-negatives": ("train.loss=softmax", "train.num_negatives=4"),
    "bce-popularity": ("train.loss=bce", "train.sampler=popularity"),
    "adagrad-l2-bias": ("train.optimizer=adagrad", "train.l2=1e-4", "model.use_bias=true"),
    "sgd-lr-decay": ("train.optimizer=sgd", "train.learning_rate=0.05", "train.weight_decay=1e-4"),
}


@pytest.mark.parametrize("overrides", OPTION_CASES.values(), ids=OPTION_CASES)
def test_loss_sampler_and_optimizer_options_take_effect(train_tiny, overrides):
    """Every option is recorded in config.json and changes training: either the logs show
    it directly, or leaving it out (same seed, otherwise the same run) gives different
    trained parameters."""
    out = train_tiny(*overrides)
    config = _config(out)
    for item in overrides:
        key, value = item.split("=")
        section, name = key.split(".")
        try:
            expected = json.loads(value)
        except json.JSONDecodeError:
            expected = value  # a bare string such as softmax
        assert config[section][name] == expected, item
    history = _history(out)
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(np.isfinite(h["loss"]) for h in history)
    assert all(config["train"]["loss"] in h for h in history)  # logged under its own name
    # The initial scores are near zero, so the first epoch's mean loss is close to the loss
    # at zero scores: log 2 for BPR, 2 log 2 for BCE, log(1 + N) for sampled softmax.
    first = history[0]["loss"]
    num_items = json.loads(_read(os.path.join(out, "data.json")))["num_items"]
    direct = {
        "train.loss=softmax": lambda: "softmax" in history[0],
        "train.num_negatives=4": lambda: first == pytest.approx(np.log(5.0), abs=0.05),
        "train.loss=bce": lambda: first == pytest.approx(2 * np.log(2.0), abs=0.05),
        "train.l2=1e-4": lambda: all(
            h["loss"] == pytest.approx(h["bpr"] + 1e-4 * h["l2"], rel=1e-6) for h in history
        ),
        "model.use_bias=true": lambda: (
            [p.shape for p in _params(out) if p.ndim == 1] == [(num_items,)]
        ),
    }
    for i, item in enumerate(overrides):
        if item in direct:
            assert direct[item](), f"{item} had no visible effect"
        else:
            without = overrides[:i] + overrides[i + 1 :]
            assert not _same_params(out, train_tiny(*without)), f"{item} had no effect"


@pytest.mark.parametrize(
    "experiment",
    [
        "neumf",
        "lightgcn",
        "apr-mf",
        pytest.param("irgan", marks=pytest.mark.slow),  # the IRGAN study tests run it
        "natural-noise",
        pytest.param("sasrec-ml1m", marks=pytest.mark.slow),
    ],
)  # run_sasrec itself: tests/models/test_sasrec.py; poisoning, transfer: tests/poison (slow)
def test_named_experiments_run_tiny(tmp_path, experiment):
    out = str(tmp_path / experiment)
    assert main(["train", "--experiment", experiment, "--tiny", "--out", out, "--no-progress"]) == 0
    metrics = json.loads(_read(os.path.join(out, "metrics.json")))
    assert any(k.startswith("test/") for k in metrics)
    # the named experiment ran, not the default bpr-mf: its name, model and phases
    expected = get_config(experiment, tiny=True)
    config = _config(out)
    assert config["name"] == expected.name == experiment
    if hasattr(expected, "model"):
        assert config["model"]["name"] == expected.model.name
    if experiment == "apr-mf":
        history = _history(out)
        assert config["adv"]["method"] == "apr"
        assert history[0]["phase"] == "clean" and history[-1]["phase"] == "apr"
        assert history[-1]["loss"] > history[-1]["bpr"] > 0  # the APR term is added


def test_study_runs_a_study_and_refuses_single_runs(tmp_path, capsys):
    out = str(tmp_path / "apr")
    args = ["study", "apr-reproduction", "--tiny", "--out", out, "--no-progress"]
    assert main(args + ["--set", "methods=bpr"]) == 0
    metrics = json.loads(_read(os.path.join(out, "metrics.json")))
    assert set(metrics) == {
        f"test/synthetic/bpr/{col}/ndcg@10"
        for col in ["clean"] + [f"{k}@{e}" for k in ("fgsm", "pgd") for e in (0.1, 0.25, 0.5, 1.0)]
    }
    assert "| bpr | " in _read(os.path.join(out, "results.md"))
    assert _config(os.path.join(out, "synthetic", "bpr"))["name"] == "apr-reproduction/bpr"
    assert main(["study", "bpr-mf", "--tiny", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "not a study" in err and "poisoning" in err and "train --experiment bpr-mf" in err


def test_bench_loads_the_benchmarks_folder_by_path(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "attack_cost", "--help"])
    assert exit_info.value.code == 0
    assert "--epochs" in capsys.readouterr().out
    assert main(["bench", "no_such_benchmark"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'no_such_benchmark'" in err and "train_throughput" in err


def test_experiments_folder_can_be_overridden(tmp_path, monkeypatch, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.py").write_text("def get_config(*, tiny=False):\n    return 1\n")
    monkeypatch.setenv("ROBUSTJAX_EXPERIMENTS", str(tmp_path))
    assert main(["experiments"]) == 0
    assert capsys.readouterr().out.split() == ["mine"]
    assert get_config("mine") == 1
    monkeypatch.setenv("ROBUSTJAX_EXPERIMENTS", str(tmp_path / "missing"))
    assert main(["experiments"]) == 2
    assert "set ROBUSTJAX_EXPERIMENTS=" in capsys.readouterr().err


def test_init_from_warm_starts_any_family(train_tiny, tmp_path, capsys):
    base = train_tiny()
    out = str(tmp_path / "apr")
    args = ["train", "--experiment", "apr-mf", "--tiny", "--no-progress", "--out", out]
    assert main([*args, "--init-from", base]) == 0
    assert _config(out)["train"]["init_from"] == base
    assert main([*args, "--init-from", str(tmp_path / "missing")]) == 2
    assert "init_from" in capsys.readouterr().err
