import json
import os
import sys

import numpy as np
import pytest

from robustjax.report import curve_summary, markdown_table, plot_curves, summarise, write_report

EPS = [0.0, 0.25, 0.5, 0.75, 1.0]


def _sweep():
    decay = np.array([0.4, 0.3, 0.2, 0.1, 0.0])
    return {
        "attack": {"kind": "pgd", "norm": "l2", "num_steps": 10},
        "eps": EPS,
        "seeds": [0, 1],
        "checkpoints": {
            "runs/bpr": {
                "metrics": {
                    "ndcg@20": [(decay + 0.01).tolist(), (decay - 0.01).tolist()],
                    "recall@20": [[0.5] * 5, [0.5] * 5],
                    "jaccard@20": [[1.0, 0.8, 0.6, 0.4, 0.2]] * 2,
                    "rbo@20": [[1.0, 0.9, 0.7, 0.5, 0.3]] * 2,
                }
            },
            "runs/apr": {
                "metrics": {
                    "ndcg@20": [[0.4, 0.38, 0.36, 0.34, 0.32]] * 2,
                    "recall@20": [[0.5, 0.5, 0.4, 0.4, 0.4], [0.5, 0.5, 0.4, 0.4, 0.4]],
                    "jaccard@20": [[1.0, 0.95, 0.9, 0.85, 0.8]] * 2,
                    "rbo@20": [[1.0, 0.97, 0.93, 0.9, 0.88]] * 2,
                }
            },
        },
    }


def test_curve_summary_flat():
    out = curve_summary([0.0, 0.1, 0.3], [0.25, 0.25, 0.25])
    assert out["auc"] == pytest.approx(0.25)
    assert out["eps_half"] is None
    assert out["drop@0.0"] == 0.0 and out["drop@0.1"] == 0.0 and out["drop@0.3"] == 0.0


def test_curve_summary_linear_decay_to_zero():
    out = curve_summary(EPS, [0.4, 0.3, 0.2, 0.1, 0.0])
    assert out["auc"] == pytest.approx(0.5 * 0.4)
    assert out["eps_half"] == pytest.approx(0.5)
    assert out["drop@0.25"] == pytest.approx(-0.25) and out["drop@1.0"] == pytest.approx(-1.0)
    # Interpolated between grid points: half of 1.0 is crossed a quarter of the way 0.4 -> 0.6.
    coarse = curve_summary([0.0, 1.0, 3.0], [1.0, 0.6, 0.0])
    assert coarse["eps_half"] == pytest.approx(1.0 + 2.0 * (0.1 / 0.6))
    assert coarse["auc"] == pytest.approx((0.8 * 1 + 0.3 * 2) / 3)


def test_curve_summary_edge_cases():
    zero = curve_summary([0.0, 1.0], [0.0, 0.0])
    assert zero["eps_half"] is None and zero["drop@1.0"] is None and zero["auc"] == 0.0
    assert curve_summary([0.0], [0.3])["auc"] == pytest.approx(0.3)
    # A non-monotone curve: the first crossing counts.
    assert curve_summary([0, 1, 2, 3], [1.0, 0.5, 0.9, 0.1])["eps_half"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ascending"):
        curve_summary([0.0, 0.5, 0.5], [1, 1, 1])
    with pytest.raises(ValueError, match="same length"):
        curve_summary([0.0, 0.5], [1.0])


def test_summarise_adds_summaries_without_modifying_input():
    sweep = _sweep()
    before = json.dumps(sweep)
    out = summarise(sweep)
    assert json.dumps(sweep) == before
    s = out["checkpoints"]["runs/bpr"]["summary"]["ndcg@20"]
    assert s["clean"] == pytest.approx(0.4)
    assert s["mean_over_seeds"] == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.0])
    assert s["std_over_seeds"] == pytest.approx([np.sqrt(2) * 0.01] * 5)  # ddof=1
    assert s["auc"] == pytest.approx(0.2) and s["eps_half"] == pytest.approx(0.5)
    assert out["checkpoints"]["runs/apr"]["summary"]["recall@20"]["eps_half"] is None
    json.dumps(out, allow_nan=False)  # plain floats and None only
    with pytest.raises(ValueError, match="'mrr@20'"):
        summarise(sweep, ("mrr@20",))


def test_markdown_table_contains_checkpoints_and_levels():
    md = markdown_table(_sweep(), "ndcg@20", max_levels=2)
    assert "runs/bpr" in md and "runs/apr" in md and "pgd / l2" in md
    header = md.splitlines()[2]
    assert "eps=0.25" in header and "eps=1" in header and "eps=0.5" not in header  # ends kept
    assert "(-25.0%)" in md and "(-100.0%)" in md  # bpr drops
    assert "Stability" in md and "jaccard@20" in md and "rbo@20" in md
    assert "Stability" not in markdown_table(_sweep(), "recall@20", stability=())
    full = markdown_table(_sweep(), "ndcg@20")  # max_levels above E - 1: every level shown
    assert all(f"eps={e:g}" in full.splitlines()[2] for e in EPS[1:])


def test_plot_curves_writes_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    paths = plot_curves(_sweep(), str(tmp_path / "plots"), metrics=("ndcg@20", "recall@20"))
    assert [os.path.basename(p) for p in paths] == [
        "ndcg_at_20.png",
        "recall_at_20.png",
        "stability.png",
    ]
    for p in paths:
        with open(p, "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(p) > 1000


def test_write_report_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    paths = write_report(_sweep(), str(tmp_path))
    assert set(paths) == {"json", "markdown", "ndcg@20", "recall@20", "stability"}
    with open(paths["json"]) as f:
        saved = json.load(f)
    assert saved["checkpoints"]["runs/apr"]["summary"]["ndcg@20"]["clean"] == pytest.approx(0.4)
    with open(paths["markdown"]) as f:
        md = f.read()
    assert "### ndcg@20" in md and "### recall@20" in md and md.count("### Stability") == 1
    for key in ("ndcg@20", "recall@20", "stability"):
        with open(paths[key], "rb") as f:
            assert f.read(4) == b"\x89PNG"


def test_without_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"robustjax\[plot\]"):
        plot_curves(_sweep(), str(tmp_path / "plots"))
    paths = write_report(_sweep(), str(tmp_path))
    assert set(paths) == {"json", "markdown"}
    assert os.path.getsize(paths["json"]) > 0 and os.path.getsize(paths["markdown"]) > 0
    assert not any(name.endswith(".png") for name in os.listdir(tmp_path))
    assert "matplotlib not installed" in capsys.readouterr().err


def test_write_report_skips_absent_metrics_but_needs_one(tmp_path):
    sweep = _sweep()
    for ckpt in sweep["checkpoints"].values():
        del ckpt["metrics"]["recall@20"]
    paths = write_report(sweep, str(tmp_path), stability=())
    assert "recall@20" not in paths and "stability" not in paths
    with pytest.raises(ValueError, match="available"):
        write_report(sweep, str(tmp_path), metrics=("hr@20",))
