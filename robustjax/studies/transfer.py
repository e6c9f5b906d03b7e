"""Transfer attacks: crafted on a surrogate model, evaluated on other victims.

Two matrices (``experiments/transfer/config.py`` describes them): fake profiles against
user-item models (``_transfer_profiles``) and history edits against sequential models
(``_transfer_histories``), each run ``seeds`` times with fresh training seeds, targets
and profile draws (:func:`repetition_seeds`; repetition ``i`` in ``rep<i>/``). One
``results.json``: ``fake_profiles`` and ``histories`` hold every cell as ``{"mean", "ci95",
"values", "n"}`` over the repetitions, ``paired`` the per-repetition differences of each
transferred attack from its baseline (the heuristic reference row; random substitution),
``repetitions`` the raw per-repetition results; ``results.md`` (mean [95% CI] matrices),
a heat map of the means (``results.png``), and ``metrics.json`` (the means).
"""

import dataclasses
import json
import os
import time

import numpy as np

from robustjax._config_checks import check_int_fields, check_name_fields
from robustjax.studies._common import (
    StudyConfig,
    start,
    try_plot,
    write_json,
    write_text,
)
from robustjax.studies._fake_profiles import FakeProfileBudget
from robustjax.studies._transfer_histories import (
    parse_seq_model,
    run_histories,
    seq_seed_stride,
)
from robustjax.studies._transfer_profiles import run_fake_profiles
from robustjax.studies._transfer_summary import (
    fake_markdown,
    history_markdown,
    summarise_fake,
    summarise_histories,
)

USER_ITEM_MODELS = ("mf", "neumf", "lightgcn")
SURROGATES = ("mf-unrolled", "mf", "neumf", "lightgcn")
REFERENCES = ("none", "random", "average", "bandwagon", "segment")
SEQ_MODELS = ("sasrec-s0", "sasrec-s1", "bert4rec-s0")

_INT_FIELDS = (
    "seeds",
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
class TransferConfig(StudyConfig, FakeProfileBudget):
    """The transfer study (``experiments/transfer/config.py``); the fake-profile budget fields
    are :class:`FakeProfileBudget`'s (targets from the tail here). ``--set key=value`` sets
    any field."""

    name: str = "transfer"
    data_path: str | None = None
    seq_data_path: str | None = None
    # fake-profile transfer
    surrogates: tuple[str, ...] = SURROGATES
    victims: tuple[str, ...] = USER_ITEM_MODELS
    reference: str = "bandwagon"
    target_band: str = "tail"
    temperature: float = 0.1
    seeds: int = 5  # repetitions; repetition_seeds() gives each one's seeds
    surrogate_seed: int = 0  # repetition i: + i * (|victim_seed - surrogate_seed| + 1)
    victim_seed: int = 1  # likewise
    seed: int = 2024  # targets and profile draws (repetition i: + 1000 * i); synthetic data
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
    seq_seed: int = 0  # evaluation negatives; the random baseline (repetition i: + i)
    # synthetic data (no data path)
    synthetic_users: int = 500
    synthetic_items: int = 800
    synthetic_per_user: int = 30
    tiny: bool = False

    def __post_init__(self):
        check_name_fields(self, (("surrogates", SURROGATES), ("victims", USER_ITEM_MODELS)))
        self._check_seq_names()
        self._check_values()
        self.check_budget()
        check_int_fields(self, _INT_FIELDS)
        self._check_seq_budget()

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
        if not self.seq_lr > 0:
            raise ValueError(f"TransferConfig.seq_lr must be > 0, got {self.seq_lr!r}.")
        if not self.temperature > 0:
            raise ValueError(f"TransferConfig.temperature must be > 0, got {self.temperature!r}.")

    def _check_seq_budget(self):
        if self.seq_budget >= self.seq_max_len:
            raise ValueError(
                f"TransferConfig.seq_budget={self.seq_budget} must be below "
                f"seq_max_len={self.seq_max_len}."
            )


def repetition_seeds(cfg: TransferConfig, i: int) -> dict:
    """The seeds of repetition ``i`` (0-based).

    Fake profiles: surrogates train with ``surrogate_seed + i * stride`` and victims with
    ``victim_seed + i * stride``, ``stride = |victim_seed - surrogate_seed| + 1`` (2 for the
    defaults 0 and 1: surrogates 0, 2, 4, ..., victims 1, 3, 5, ...). Within a repetition
    the two differ by ``victim_seed - surrogate_seed != 0``, and since the stride exceeds
    that gap no surrogate seed ever equals a victim seed of any repetition. Targets and
    profile draws use ``seed + 1000 * i`` (fillers of surrogate ``j``: that ``+ 1 + j``,
    the heuristic reference: ``+ 100``). Histories: ``<kind>-s<k>`` trains with seed
    ``k + i * seq_stride`` (``seq_stride`` one more than the spread of the models' seeds,
    2 by default, so seeds never recur across repetitions) and the random substitutions
    use key ``seq_seed + i``. The data sets and evaluation negatives are the same in every
    repetition.
    """
    stride = abs(cfg.victim_seed - cfg.surrogate_seed) + 1
    return {
        "repetition": i,
        "surrogate_seed": cfg.surrogate_seed + i * stride,
        "victim_seed": cfg.victim_seed + i * stride,
        "seed": cfg.seed + 1000 * i,
        "seq_seed_offset": i * seq_seed_stride(cfg.seq_models),
        "seq_attack_seed": cfg.seq_seed + i,
    }


def _repetition(cfg: TransferConfig, out_dir: str, i: int, *, resume: bool, progress: bool):
    """Repetition ``i`` in ``out_dir/rep<i>``; with ``resume``, a finished repetition of the
    same settings (``repetition.json``; ``seeds`` may differ) is read back."""
    rep_dir = os.path.join(out_dir, f"rep{i}")
    path = os.path.join(rep_dir, "repetition.json")
    seeds = repetition_seeds(cfg, i)
    spec = json.loads(json.dumps({**dataclasses.asdict(cfg), "seeds": None, "rep": seeds}))
    if resume and os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved["spec"] == spec:
            return saved
    fake = run_fake_profiles(
        cfg,
        rep_dir,
        surrogate_seed=seeds["surrogate_seed"],
        victim_seed=seeds["victim_seed"],
        seed=seeds["seed"],
        progress=progress,
    )
    hist = run_histories(
        cfg,
        rep_dir,
        seed_offset=seeds["seq_seed_offset"],
        attack_seed=seeds["seq_attack_seed"],
        progress=progress,
    )
    out = {"spec": spec, "seeds": seeds, "fake_profiles": fake, "histories": hist}
    write_json(path, out, default=float)
    return json.loads(json.dumps(out, default=float))


def run_transfer(
    cfg: TransferConfig, out_dir: str, *, resume: bool = False, progress: bool = True
) -> dict:
    """Runs both parts ``cfg.seeds`` times (:func:`repetition_seeds`); returns flat metrics
    (the means; also written to ``metrics.json``). ``resume`` reads finished repetitions
    back."""
    t0 = time.perf_counter()
    start(cfg, out_dir)
    reps = [
        _repetition(cfg, out_dir, i, resume=resume, progress=progress) for i in range(cfg.seeds)
    ]
    results = {
        "config": dataclasses.asdict(cfg),
        "n": cfg.seeds,
        "seeds": [r["seeds"] for r in reps],
        "fake_profiles": summarise_fake([r["fake_profiles"] for r in reps], cfg.reference),
        "histories": summarise_histories([r["histories"] for r in reps]),
        "repetitions": [
            {"seeds": r["seeds"], "fake_profiles": r["fake_profiles"], "histories": r["histories"]}
            for r in reps
        ],
        "total_seconds": time.perf_counter() - t0,
    }
    write_json(os.path.join(out_dir, "results.json"), results, default=float)
    write_text(os.path.join(out_dir, "results.md"), markdown(results))
    try_plot(cfg.name, plot, results, os.path.join(out_dir, "results.png"), what="heat map")
    flat = flat_metrics(results)
    write_json(os.path.join(out_dir, "metrics.json"), flat, sort_keys=True)
    return flat


def _mean(x):
    return x["mean"] if isinstance(x, dict) else x


def flat_metrics(results: dict) -> dict:
    """``metrics.json``: the mean of every matrix cell."""
    fake, hist = results["fake_profiles"], results["histories"]
    k = fake["k"]
    out = {
        f"test/target_hr@{k}_delta/{c['surrogate']}/{c['victim']}": _mean(c[f"target_hr@{k}/delta"])
        for c in fake["cells"]
    }
    for row in hist["rows"]:
        for m, cell in row["cells"].items():
            out[f"test/hr@10_drop/{row['surrogate']}/{m}"] = _mean(cell["hr@10/drop"])
    return out


def fake_matrix(fake: dict, key: str) -> np.ndarray:
    """``[rows, victims]`` of ``cell[key]`` (its mean for an interval entry)."""
    at = {(c["surrogate"], c["victim"]): _mean(c[key]) for c in fake["cells"]}
    return np.array([[at[(r, v)] for v in fake["victims"]] for r in fake["rows"]])


def history_matrix(hist: dict, key: str = "hr@10/drop") -> np.ndarray:
    return np.array([[_mean(row["cells"][m][key]) for m in hist["models"]] for row in hist["rows"]])


def markdown(results: dict) -> str:
    cfg, fake, hist = results["config"], results["fake_profiles"], results["histories"]
    lines = fake_markdown(cfg, fake, results["seeds"]) + history_markdown(hist)
    lines.append(
        f"Total time {results['total_seconds']:.0f} s (fake profiles "
        f"{fake['seconds']:.0f} s, histories {hist['seconds']:.0f} s, summed over the "
        "repetitions run now or earlier)."
    )
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str) -> str:
    """Two heat maps of the means (fake-profile target HR@K gain; history-edit HR@10 drop;
    intervals are in ``results.md``). Needs
    matplotlib (object API, no pyplot state)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("transfer heat map needs matplotlib") from err
    fake, hist = results["fake_profiles"], results["histories"]
    k, n = fake["k"], results["n"]
    panels = [
        (
            fake_matrix(fake, f"target_hr@{k}/delta"),
            fake["rows"],
            fake["victims"],
            f"fake profiles: target HR@{k} gain (mean, n={n})",
            "surrogate (row) → victim (column)",
        ),
        (
            history_matrix(hist),
            [r["surrogate"] for r in hist["rows"]],
            hist["models"],
            f"history edits: HR@10 drop (mean, n={n})",
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
