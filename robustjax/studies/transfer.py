"""Transfer attacks: crafted on a surrogate model, evaluated on other victims.

Two matrices (``experiments/transfer/config.py`` describes them): fake profiles against
user-item models (``_transfer_profiles``) and history edits against sequential models
(``_transfer_histories``); one ``results.json``, ``results.md`` and heat map
(``results.png``), and ``metrics.json``.
"""

import dataclasses
import os
import time

import numpy as np

from robustjax._config_checks import check_int_fields, check_name_fields
from robustjax.studies._common import (
    StudyConfig,
    check_no_resume,
    start,
    try_plot,
    write_json,
    write_text,
)
from robustjax.studies._transfer_histories import parse_seq_model, run_histories
from robustjax.studies._transfer_profiles import run_fake_profiles

USER_ITEM_MODELS = ("mf", "neumf", "lightgcn")
SURROGATES = ("mf-unrolled", "mf", "neumf", "lightgcn")
REFERENCES = ("none", "random", "average", "bandwagon", "segment")
SEQ_MODELS = ("sasrec-s0", "sasrec-s1", "bert4rec-s0")

_INT_FIELDS = (
    "filler_size",
    "num_targets",
    "k",
    "dim",
    "epochs_mf",
    "epochs_neumf",
    "epochs_lightgcn",
    "batch_size",
    "batch_lightgcn",
    "unroll_dim",
    "unroll_steps",
    "outer_steps",
    "seq_budget",
    "seq_max_len",
    "epochs_sasrec",
    "epochs_bert4rec",
    "seq_batch_size",
    "seq_eval_every",
    "seq_blocks",
    "pretrain_steps",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransferConfig(StudyConfig):
    """The transfer study (``experiments/transfer/config.py``). ``--set key=value`` sets any field."""

    name: str = "transfer"
    data_path: str | None = None
    seq_data_path: str | None = None
    # fake-profile transfer
    surrogates: tuple[str, ...] = SURROGATES
    victims: tuple[str, ...] = USER_ITEM_MODELS
    reference: str = "bandwagon"
    fake_fraction: float = 0.01
    filler_size: int = 30
    num_targets: int = 5
    target_band: str = "tail"
    k: int = 50
    temperature: float = 0.1
    surrogate_seed: int = 0
    victim_seed: int = 1
    seed: int = 2024  # targets and profile draws
    dim: int = 64
    epochs_mf: int = 60
    epochs_neumf: int = 15
    epochs_lightgcn: int = 20
    batch_size: int = 2048
    batch_lightgcn: int = 8192
    learning_rate: float = 1e-3
    lr_lightgcn: float = 5e-3
    # the unrolled attack (shortened from the poisoning experiment's 300/20/10, dim 64)
    unroll_dim: int = 32
    pretrain_steps: int = 100
    unroll_steps: int = 10
    outer_steps: int = 3
    surrogate_lr: float = 0.01
    # history-edit transfer
    seq_models: tuple[str, ...] = SEQ_MODELS
    seq_surrogates: tuple[str, ...] = ("sasrec-s0",)
    seq_budget: int = 2
    seq_max_len: int = 50
    seq_blocks: int = 2  # transformer blocks of SASRec and BERT4Rec
    epochs_sasrec: int = 40
    epochs_bert4rec: int = 30
    seq_batch_size: int = 64
    seq_lr: float = 2e-3
    seq_eval_every: int = 10
    seq_seed: int = 0  # evaluation negatives and the random baseline
    # synthetic data (no data path)
    synthetic_users: int = 500
    synthetic_items: int = 800
    synthetic_per_user: int = 30
    tiny: bool = False

    def __post_init__(self):
        check_name_fields(self, (("surrogates", SURROGATES), ("victims", USER_ITEM_MODELS)))
        self._check_seq_names()
        self._check_values()
        check_int_fields(self, _INT_FIELDS)
        self._check_budget_and_band()

    def _check_seq_names(self):
        """Normalises ``seq_models``/``seq_surrogates`` to tuples of distinct, valid names."""
        for name in ("seq_models", "seq_surrogates"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if not value or len(set(value)) != len(value):
                raise ValueError(
                    f"TransferConfig.{name}={value!r}: expected distinct names like 'sasrec-s0'."
                )
            for v in value:
                parse_seq_model(v)
        missing = [s for s in self.seq_surrogates if s not in self.seq_models]
        if missing:
            raise ValueError(
                f"TransferConfig.seq_surrogates {missing} are not in seq_models="
                f"{self.seq_models}; every surrogate is also evaluated."
            )

    def _check_values(self):
        if self.reference not in REFERENCES:
            raise ValueError(
                f"TransferConfig.reference={self.reference!r}: expected one of {REFERENCES}."
            )
        if self.surrogate_seed == self.victim_seed:
            raise ValueError(
                f"TransferConfig.victim_seed={self.victim_seed} equals "
                "surrogate_seed; use another seed so mf -> mf is a cross-seed "
                "transfer."
            )
        if not 0.0 < self.fake_fraction < 1.0:
            raise ValueError(
                f"TransferConfig.fake_fraction must lie in (0, 1), got {self.fake_fraction!r}."
            )
        if not self.seq_lr > 0:
            raise ValueError(f"TransferConfig.seq_lr must be > 0, got {self.seq_lr!r}.")
        if not self.temperature > 0:
            raise ValueError(f"TransferConfig.temperature must be > 0, got {self.temperature!r}.")

    def _check_budget_and_band(self):
        if self.seq_budget >= self.seq_max_len:
            raise ValueError(
                f"TransferConfig.seq_budget={self.seq_budget} must be below "
                f"seq_max_len={self.seq_max_len}."
            )
        if self.target_band not in ("head", "tail", "any"):
            raise ValueError(
                f"TransferConfig.target_band must be 'head', 'tail' or 'any', "
                f"got {self.target_band!r}."
            )


def run_transfer(
    cfg: TransferConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Runs both parts; returns flat metrics (also written to ``metrics.json``)."""
    check_no_resume(cfg.name, resume)
    t0 = time.perf_counter()
    start(cfg, out_dir)
    fake = run_fake_profiles(cfg, out_dir, progress=progress)
    hist = run_histories(cfg, out_dir, progress=progress)
    results = {
        "config": dataclasses.asdict(cfg),
        "fake_profiles": fake,
        "histories": hist,
        "total_seconds": time.perf_counter() - t0,
    }
    write_json(os.path.join(out_dir, "results.json"), results, default=float)
    write_text(os.path.join(out_dir, "results.md"), markdown(results))
    try_plot(cfg.name, plot, results, os.path.join(out_dir, "results.png"), what="heat map")
    flat = flat_metrics(results)
    write_json(os.path.join(out_dir, "metrics.json"), flat, sort_keys=True)
    return flat


def flat_metrics(results: dict) -> dict:
    fake, hist = results["fake_profiles"], results["histories"]
    k = fake["k"]
    out = {
        f"test/target_hr@{k}_delta/{c['surrogate']}/{c['victim']}": c[f"target_hr@{k}/delta"]
        for c in fake["cells"]
    }
    for row in hist["rows"]:
        for m, cell in row["cells"].items():
            out[f"test/hr@10_drop/{row['surrogate']}/{m}"] = cell["hr@10/drop"]
    return out


def fake_matrix(fake: dict, key: str) -> np.ndarray:
    """``[rows, victims]`` of ``cell[key]``."""
    at = {(c["surrogate"], c["victim"]): c[key] for c in fake["cells"]}
    return np.array([[at[(r, v)] for v in fake["victims"]] for r in fake["rows"]])


def history_matrix(hist: dict, key: str = "hr@10/drop") -> np.ndarray:
    return np.array([[row["cells"][m][key] for m in hist["models"]] for row in hist["rows"]])


def _label(row: str, reference: str) -> str:
    if row == reference:
        return f"{row} (heuristic reference)"
    return row if row == "mf-unrolled" else f"{row} surrogate"


def _fake_markdown(cfg: dict, fake: dict) -> list[str]:
    """The fake-profile table of :func:`markdown`."""
    k = fake["k"]
    lines = [
        (
            f"### Fake-profile transfer, {fake['data']['name']}: {fake['num_fake']} fake users "
            f"({cfg['fake_fraction']:.1%}), {len(fake['targets'])} {cfg['target_band']} targets, "
            f"filler size {cfg['filler_size']}, {fake['target_users']} unexposed users"
        ),
        "",
        (
            f"Cell: target HR@{k} after − before (victim seed {cfg['victim_seed']}; surrogates "
            f"seed {cfg['surrogate_seed']}), then test NDCG@20 after − before."
        ),
        "",
        "| surrogate → victim | " + " | ".join(fake["victims"]) + " |",
        "|---|" + "---|" * len(fake["victims"]),
    ]
    at = {(c["surrogate"], c["victim"]): c for c in fake["cells"]}
    for r in fake["rows"]:
        cells = [
            f"{at[(r, v)][f'target_hr@{k}/delta']:+.4f} "
            f"(NDCG@20 {at[(r, v)]['test_ndcg@20/delta']:+.4f})"
            for v in fake["victims"]
        ]
        lines.append(f"| {_label(r, cfg['reference'])} | " + " | ".join(cells) + " |")
    clean = " | ".join(
        f"{fake['clean'][v][f'target_hr@{k}']:.4f} / {fake['clean'][v]['test_ndcg@20']:.4f}"
        for v in fake["victims"]
    )
    lines += [f"| clean victim: target HR@{k} / test NDCG@20 | {clean} |", ""]
    return lines


def _history_markdown(hist: dict) -> list[str]:
    """The history-edit table of :func:`markdown`."""
    lines = [
        (
            f"### History-edit transfer, {hist['source']}: {hist['num_users']} users, "
            f"{hist['num_items']} items, max_len {hist['max_len']}, {hist['budget']} substituted "
            "items per test history"
        ),
        "",
        (
            "Cell: HR@10 clean − edited (sampled protocol, 100 negatives); the diagonal "
            "(surrogate = model) is white-box."
        ),
        "",
        "| edits crafted on → evaluated on | " + " | ".join(hist["models"]) + " |",
        "|---|" + "---|" * len(hist["models"]),
    ]
    for row in hist["rows"]:
        name = (
            "random substitution (baseline)"
            if row["attack"] == "random"
            else f"{row['surrogate']} (gradient)"
        )
        lines.append(
            f"| {name} | "
            + " | ".join(f"{row['cells'][m]['hr@10/drop']:+.4f}" for m in hist["models"])
            + " |"
        )
    lines.append(
        "| clean HR@10 | "
        + " | ".join(f"{hist['clean'][m]['hr@10']:.4f}" for m in hist["models"])
        + " |"
    )
    return lines


def markdown(results: dict) -> str:
    cfg, fake, hist = results["config"], results["fake_profiles"], results["histories"]
    lines = _fake_markdown(cfg, fake) + _history_markdown(hist)
    lines.append("")
    lines.append(
        f"Total time {results['total_seconds']:.0f} s (fake profiles "
        f"{fake['seconds']:.0f} s, histories {hist['seconds']:.0f} s)."
    )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str) -> str:
    """Two heat maps (fake-profile target HR@K gain; history-edit HR@10 drop). Needs
    matplotlib (object API, no pyplot state)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("transfer heat map needs matplotlib") from err
    fake, hist = results["fake_profiles"], results["histories"]
    k = fake["k"]
    panels = [
        (
            fake_matrix(fake, f"target_hr@{k}/delta"),
            fake["rows"],
            fake["victims"],
            f"fake profiles: target HR@{k} gain",
            "surrogate (row) → victim (column)",
        ),
        (
            history_matrix(hist),
            [r["surrogate"] for r in hist["rows"]],
            hist["models"],
            "history edits: HR@10 drop",
            "crafted on (row) → evaluated on (column)",
        ),
    ]
    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    for ax, (m, rows, cols, title, xlabel) in zip(fig.subplots(1, 2), panels):
        lim = max(float(np.max(np.abs(m))), 1e-6)
        im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xticks(np.arange(len(cols)), cols)
        ax.set_yticks(np.arange(len(rows)), rows)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]:+.3f}", ha="center", va="center", fontsize=8)
        ax.set(title=title, xlabel=xlabel)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=120)
    return path
