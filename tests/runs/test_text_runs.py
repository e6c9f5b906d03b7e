"""Text models through run_experiment / the CLI: item texts loaded and encoded, reload."""

import json
import os

import pytest

from robustjax.cli.main import main
from robustjax.experiments import get_config
from robustjax.run import run_experiment


def test_text_mf_on_synthetic_data_names_the_missing_texts(tmp_path):
    cfg = get_config("text-mf", tiny=True)
    with pytest.raises(ValueError, match=r"text-mf needs item texts: a RecBole folder"):
        run_experiment(cfg, str(tmp_path / "run"), progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["text-mf", "text-sasrec"])
def test_text_experiments_run_tiny_on_ml100k(tmp_path, shared_data, experiment):
    from robustjax.run import load_run
    from robustjax.runs import load_sequence_run
    from robustjax.text import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(str(tmp_path / "enc"), hidden=16, num_layers=1)
    out = str(tmp_path / "run")
    args = ["train", "--experiment", experiment, "--tiny", "--no-progress", "--out", out,
            "--data", os.path.join(shared_data, "ml-100k"),
            "--set", f"model.text_encoder={ckpt}"]  # fmt: skip
    assert main(args) == 0
    with open(os.path.join(out, "metrics.json")) as f:
        metrics = json.load(f)
    assert any(k.startswith("test/") for k in metrics)
    if experiment == "text-mf":
        assert any(k.startswith("test_cold/") for k in metrics)
        run = load_run(out)
        assert run.fns.text.encoder == ckpt
    else:
        run = load_sequence_run(out)
        assert run.meta["model_kwargs"]["text_dim"] == 16
