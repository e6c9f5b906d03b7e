"""Reports of text-attack sweeps (``robustjax sweep --attack text_*``): the standard report
(``write_report``: sweep.json, sweep.md tables, one PNG per metric with a curve per
checkpoint) plus Markdown tables of means with 95% intervals over (target, seed) rows,
per-target hit ratios and example rewrites (title before -> after at each budget)."""

import numpy as np

from robustjax.report import write_report
from robustjax.report.intervals import fmt_ci, mean_ci


def _ci(values) -> str:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return "–" if v.size == 0 else fmt_ci(mean_ci(v), 3)


def _level(sweep: dict, x: float) -> str:
    return str(int(x)) if sweep["attack"].get("discrete") else f"{x:g}"


def interval_table(sweep: dict, hr: str, ndcg: str) -> str:
    """Per checkpoint and level: target HR, mean rank and the clean metric's change (means
    with 95% intervals over the (target, seed) rows), and the encoder passes spent."""
    lines = [
        f"## Target promotion, mean [95% interval] over targets x seeds ({sweep['attack']['kind']})",
        "",
        (
            f"| checkpoint | level | {hr} | target mean rank | change of test {ndcg} | "
            "encoder passes (fwd/bwd) |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for name, ck in sweep["checkpoints"].items():
        m = {k: np.asarray(v, np.float64) for k, v in ck["metrics"].items()}
        levels = [rows for t in ck["targets"].values() for rows in t["levels"]]
        for j, x in enumerate(sweep["eps"]):
            fwd = np.mean([rows[j]["passes_forward"] for rows in levels])
            bwd = np.mean([rows[j]["passes_backward"] for rows in levels])
            lines.append(
                f"| {name} | {_level(sweep, x)} | {_ci(m[hr][:, j])} | "
                f"{_ci(m['target_mean_rank'][:, j])} | "
                f"{_ci(m[ndcg][:, j] - m[ndcg][:, 0])} | {fwd:.1f} / {bwd:.1f} |"
            )
    return "\n".join(lines) + "\n"


def target_table(sweep: dict, hr: str) -> str:
    """Per checkpoint and target: HR at every level (mean over seeds) and its users."""
    head = " | ".join(_level(sweep, x) for x in sweep["eps"])
    lines = [
        f"## {hr} per target (mean over seeds) at each level",
        "",
        f"| checkpoint | target | users | {head} |",
        "|---|---|---|" + "---|" * len(sweep["eps"]),
    ]
    for name, ck in sweep["checkpoints"].items():
        for token, t in ck["targets"].items():
            vals = np.mean([[lv[hr] for lv in seed] for seed in t["levels"]], axis=0)
            cells = " | ".join(f"{v:.3f}" for v in vals)
            lines.append(f"| {name} | {token} | {t['num_users']} | {cells} |")
    return "\n".join(lines) + "\n"


def examples(sweep: dict, hr: str, max_targets: int = 3) -> str:
    """Title before -> after at each budget, first seed, for up to ``max_targets`` targets
    of each checkpoint (discrete kinds only)."""
    if not sweep["attack"].get("discrete"):
        return ""
    lines = ["## Example rewrites (first seed)", ""]
    for name, ck in sweep["checkpoints"].items():
        for token, t in list(ck["targets"].items())[:max_targets]:
            rows = t["levels"][0]
            lines.append(f'- {name}, item {token}: "{t["text"]}" ({hr} {rows[0][hr]:.3f})')
            for x, row in zip(sweep["eps"][1:], rows[1:], strict=True):
                lines.append(
                    f"  - budget {int(x)} ({row['tokens_changed']} changed): "
                    f'"{row["text"]}" ({hr} {row[hr]:.3f}, rank {row["target_mean_rank"]:.1f})'
                )
    return "\n".join(lines) + "\n"


def write_text_report(sweep: dict, out_dir: str, *, k: int, ndcg_k: int) -> dict[str, str]:
    """Writes the report of a text sweep (module docstring); returns the paths written."""
    hr, ndcg = f"target_hr@{k}", f"ndcg@{ndcg_k}"
    written = write_report(
        sweep, out_dir, metrics=(hr, "target_mean_rank", ndcg, "objective"), stability=()
    )
    with open(written["markdown"], "a") as f:
        f.write("\n" + interval_table(sweep, hr, ndcg) + "\n" + target_table(sweep, hr))
        f.write("\n" + examples(sweep, hr))
    return written


__all__ = ["examples", "interval_table", "target_table", "write_text_report"]
