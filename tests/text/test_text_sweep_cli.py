"""``robustjax sweep --attack text_*`` end to end on a tiny text-MF run (tiny checkpoint,
a RecBole folder of 30 users x 24 items with titles); errors on bad budgets and non-text
runs."""

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

from robustjax.cli.main import main
from robustjax.text import write_tiny_checkpoint

WORDS = [
    "toy",
    "story",
    "star",
    "wars",
    "dark",
    "night",
    "comedy",
    "alien",
    "western",
    "mystery",
    "war",
    "love",
    "city",
]
GENRES = ["Drama", "Comedy", "Horror", "Western", "Musical", "Thriller"]


def _recbole(folder, num_users=30, num_items=24, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir()
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(num_users):
        for t, i in enumerate(rng.choice(num_items, 8, replace=False)):
            rows.append(f"{u + 1}\t{i + 1}\t4\t{1000 * u + t}")
    (folder / "toy.inter").write_text("\n".join(rows) + "\n")
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for i in range(num_items):
        title = " ".join(rng.choice(WORDS, 3))
        items.append(f"{i + 1}\t{title}\t{1950 + i}\t{GENRES[i % 6]} {GENRES[(i + 1) % 6]}")
    (folder / "toy.item").write_text("\n".join(items) + "\n")
    return str(folder)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("textsweep")
    data = _recbole(base / "toy")
    ckpt = write_tiny_checkpoint(str(base / "ckpt"), seed=0)
    out = str(base / "run")
    args = ["train", "--experiment", "text-mf", "--tiny", "--data", data, "--out", out]
    args += ["--set", f"model.text_encoder={ckpt}", "--set", "model.text_max_len=16"]
    assert main(args) == 0
    shutil.copytree(out, out + "_copy")  # a second checkpoint: one curve each
    return base, out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["text_substitute_gradient", "text_substitute_random"])
def test_text_sweep_cli(run, kind):
    base, out = run
    dest = str(base / kind)
    args = ["sweep", "--checkpoint", out, "--checkpoint", out + "_copy", "--attack", kind]
    args += ["--eps", "0,1,2"]
    args += ["--objective", "targeted", "--target-items", "1,5", "--seeds", "0,1"]
    args += ["--ks", "5", "--rescore", "4", "--out", dest, "--no-progress"]
    assert main(args) == 0
    with open(os.path.join(dest, "sweep.json")) as f:
        sweep = json.load(f)
    assert sweep["eps"] == [0, 1, 2]
    assert sorted(sweep["checkpoints"]) == [out, out + "_copy"]
    ck = sweep["checkpoints"][out]
    seeds = 2 if kind == "text_substitute_random" else 1  # the gradient kind runs once
    assert np.asarray(ck["metrics"]["target_hr@5"]).shape == (2 * seeds, 3)  # targets x seeds
    assert ck["seeds_run"] == [0, 1][:seeds]
    for t in ck["targets"].values():
        for rows in t["levels"]:
            assert all(r["tokens_changed"] <= b for r, b in zip(rows, (0, 1, 2), strict=True))
            assert rows[0]["tokens_changed"] == 0
    with open(os.path.join(dest, "sweep.md")) as f:
        md = f.read()
    assert "Example rewrites" in md and "95% interval" in md
    assert os.path.exists(os.path.join(dest, "target_hr_at_5.png"))


@pytest.mark.slow
def test_text_sweep_errors(run, tmp_path, capsys):
    base, out = run
    common = ["--objective", "targeted", "--out", str(tmp_path / "o"), "--no-progress"]
    bad = ["sweep", "--checkpoint", out, "--attack", "text_substitute_random", "--eps", "0,0.5"]
    assert main(bad + common) == 2
    assert "budgets must be integers >= 0" in capsys.readouterr().err
    plain = str(base / "plain")
    assert main(["train", "--tiny", "--out", plain]) == 0
    capsys.readouterr()
    args = ["sweep", "--checkpoint", plain, "--attack", "text_substitute_random", "--eps", "0,1"]
    assert main(args + common) == 2
    assert "text attacks need a text-aware user-item run" in capsys.readouterr().err


@pytest.mark.slow
def test_trainable_top_layers_train_resume_and_sweep(tmp_path):
    """text-mf training its top encoder layer: trains, resumes, and a text attack runs
    through the trained layer (the re-encoded target matches the run's item embedding)."""
    data = _recbole(tmp_path / "toy")
    ckpt = write_tiny_checkpoint(str(tmp_path / "ckpt"), seed=0)
    out = str(tmp_path / "run")
    args = ["train", "--experiment", "text-mf", "--tiny", "--data", data, "--out", out]
    args += ["--set", f"model.text_encoder={ckpt}", "--set", "model.text_max_len=16"]
    args += ["--set", "model.text_trainable_layers=1"]
    assert main(args) == 0
    assert main([*args, "--resume"]) == 0
    dest = str(tmp_path / "sweep")
    sweep = ["sweep", "--checkpoint", out, "--attack", "text_substitute_gradient"]
    sweep += ["--eps", "0,1", "--objective", "targeted", "--target-items", "1,5"]
    sweep += ["--ks", "5", "--rescore", "4", "--out", dest, "--no-progress"]
    assert main(sweep) == 0
    with open(os.path.join(dest, "sweep.json")) as f:
        targets = json.load(f)["checkpoints"][out]["targets"]
    assert targets and all(t["tower_check"] < 1e-4 for t in targets.values())


@pytest.mark.slow
def test_text_sasrec_trains_its_top_layer_and_resumes(tmp_path):
    from robustjax.runs import load_sequence_run

    data = _recbole(tmp_path / "toy")
    ckpt = write_tiny_checkpoint(str(tmp_path / "ckpt"), seed=0)
    out = str(tmp_path / "run")
    args = ["train", "--experiment", "text-sasrec", "--tiny", "--data", data, "--out", out]
    args += ["--set", f"model.text_encoder={ckpt}", "--set", "model.text_max_len=16"]
    args += ["--set", "model.text_trainable_layers=1", "--set", "eval.sampled_negatives=10"]
    assert main(args) == 0
    assert main([*args, "--resume"]) == 0
    run = load_sequence_run(out)
    assert run.meta["model_kwargs"]["text_trainable_layers"] == 1
    top = run.params["items"]["top"]
    assert not np.any(np.asarray(top["states"][...][0]))  # padding row stays zero
    assert np.any(np.asarray(top["states"][...][1]))
