"""benchmarks/gpu_check.sh runs end to end on CPU with --tiny and writes both records."""

import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_gpu_check_tiny_on_cpu(tmp_path):
    env = {**os.environ, "GPU_CHECK_SECONDS": "900"}
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), "--tiny", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = sorted(os.listdir(tmp_path))
    assert [n.split("-")[0] for n in names] == ["roofline", "scale"], names
    scale = json.loads((tmp_path / names[1]).read_text())
    for key in ("midsize/epoch_s", "ml100k/eval_ratio_to_product", "eval_1m/peak_bytes"):
        assert isinstance(scale[key], (int, float)) and scale[key] > 0, key
    assert scale["devices"]["passed"], scale["devices"]
    roof = json.loads((tmp_path / names[0]).read_text())
    assert set(roof["kernels"]) >= {"score_product", "eval_rank_counts", "bpr_epoch"}


def test_gpu_check_refuses_cpu_without_tiny(tmp_path):
    proc = subprocess.run(
        ["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh"), str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "no GPU visible" in proc.stderr
    assert os.listdir(tmp_path) == []
