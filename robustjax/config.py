"""Experiment configuration: frozen dataclasses and ``--set key=value`` overrides.

The override machinery (:func:`apply_overrides`, :func:`valid_keys`, :func:`parse_value`,
:func:`from_dict`) lives in :mod:`robustjax.overrides` and is re-exported here."""

import dataclasses
import json
import math
import typing
from typing import Any

from robustjax._config_checks import check_choice_fields
from robustjax.data import DataConfig
from robustjax.data.negatives import SAMPLERS
from robustjax.models.registry import SEQUENCE_MODELS, TEXT_MODELS, ModelConfig
from robustjax.objectives import (
    PAIR_ADV_METHODS,
    SEQUENCE_ADV_METHODS,
    TEXT_ADV_METHODS,
    AdvConfig,
)
from robustjax.overrides import apply_overrides, from_dict, parse_value, valid_keys
from robustjax.sharding import parse_mesh
from robustjax.train.sparse_step import SPARSE_UPDATES, sparse_refusal
from robustjax.train.state import OPTIMIZERS

LOSSES = ("bpr", "bce", "softmax")
# the loss each sequence model trains with: next-item BCE (SASRec), masked-item softmax
SEQUENCE_LOSSES = {"sasrec": "bce", "bert4rec": "softmax", "text-sasrec": "bce"}


def _positive(cfg, *names):
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{type(cfg).__name__}.{name} must be an integer >= 1, got {value!r}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    # values for keys a saved config.json lacks because it predates them: such runs trained
    # densely, so resuming one must not switch it to row-sparse updates under "auto"
    SAVED_BEFORE: typing.ClassVar[dict] = {"sparse_updates": "off"}

    epochs: int = 100
    batch_size: int = 2048
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    loss: str = "bpr"
    l2: float = 0.0  # weight of the batch-level embedding L2 term
    weight_decay: float = 0.0  # dense L2 on all parameters, through the optimizer
    num_negatives: int = 1
    sampler: str = "uniform"
    eval_every: int = 10  # validate every N epochs (and at the last epoch)
    patience: int = 0  # stop after N validations without improvement; 0 = never
    early_metric: str = "ndcg@20"
    checkpoint_every: int = 10
    seed: int = 2024
    beta2: float = 0.999  # adam/adamw second-moment decay (SASRec: 0.98)
    clip_norm: float = 0.0  # > 0 clips the global gradient norm (BERT4Rec: 5)
    time_budget_s: float | None = None  # stop after the epoch that reaches it
    init_from: str | None = None  # a run folder whose selected parameters start training
    buckets: int = 1  # sequence models: history-length buckets per epoch
    mask_prob: float = 0.2  # bert4rec: share of each row's positions masked (Cloze)
    mask_last_prob: float = 0.0  # bert4rec: rows that mask only their last item
    cloze_negatives: int = 0  # bert4rec: 0 = full softmax, > 0 = sampled softmax
    strict: bool = False  # a loss term growing > 1e3x in its phase stops the run (else warns)
    # row-sparse ("lazy") optimizer updates of the embedding tables (robustjax.train.sparse):
    # "on" updates only the rows a batch touches (adam -> lazy Adam: untouched rows' moments
    # do not decay; adagrad and sgd: equal to dense); "off" dense; "auto" sparse for MF/NeuMF
    # (no weight_decay, clip_norm) whose tables hold >= 6 rows per lookup of a batch
    # (36,864 rows at batch 2048): the measured crossover, sparse_step.auto_min_rows
    sparse_updates: str = "auto"
    # device mesh "data=D,model=M" (robustjax.sharding): tables row-sharded over M devices,
    # batches and evaluated users split over D; D*M devices (ROBUSTJAX_CPU_DEVICES on CPU)
    mesh: str = "data=1,model=1"

    def __post_init__(self):
        _positive(
            self,
            "epochs",
            "batch_size",
            "num_negatives",
            "eval_every",
            "checkpoint_every",
            "buckets",
        )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(
                f"TrainConfig.seed must be an int >= 0 (numpy seeds cannot be negative), got "
                f"seed={self.seed!r}."
            )
        if not 0 < self.learning_rate < math.inf:
            raise ValueError(
                f"TrainConfig.learning_rate must be a finite number > 0, got "
                f"{self.learning_rate!r}."
            )
        if not 0.0 <= self.beta2 < 1.0:
            raise ValueError(f"TrainConfig.beta2 must lie in [0, 1), got {self.beta2!r}.")
        if not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"TrainConfig.mask_prob must lie in (0, 1], got {self.mask_prob!r}.")
        if not 0.0 <= self.mask_last_prob <= 1.0:
            raise ValueError(
                f"TrainConfig.mask_last_prob must lie in [0, 1], got {self.mask_last_prob!r}."
            )
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(
                f"TrainConfig.time_budget_s must be > 0 or None, got {self.time_budget_s!r}."
            )
        for name in ("l2", "weight_decay", "patience", "clip_norm", "cloze_negatives"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)!r}.")
        check_choice_fields(
            self,
            (
                ("optimizer", OPTIMIZERS),
                ("loss", LOSSES),
                ("sampler", SAMPLERS),
                ("sparse_updates", SPARSE_UPDATES),
            ),
        )
        if self.sparse_updates == "on" and (reason := sparse_refusal(self)) is not None:
            raise ValueError(f"TrainConfig.sparse_updates='on' cannot run: {reason}")
        parse_mesh(self.mesh, key="TrainConfig.mesh")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalConfig:
    ks: tuple[int, ...] = (10, 20, 50)
    batch_size: int = 1024  # users per full-ranking batch (bounds memory: B x I scores)
    sampled_negatives: int = 0  # > 0 adds the sampled protocol with this many negatives
    top_n: int = 50  # recommendations written per test user
    # full-ranking AUC (validation and test); its per-row sort costs ~3x the memory and
    # most of the time of evaluation on large catalogues: false skips it
    auc: bool = True
    # validation (every eval_every epochs) skips AUC on catalogues larger than this, unless
    # the run selects on it; test metrics keep it (eval.auc)
    valid_auc_max_items: int = 20000

    def __post_init__(self):
        if not self.ks or any(k < 1 for k in self.ks):
            raise ValueError(f"EvalConfig.ks must be positive cutoffs, got {self.ks!r}.")
        _positive(self, "batch_size", "top_n", "valid_auc_max_items")
        if not isinstance(self.auc, bool):
            raise TypeError(f"EvalConfig.auc must be true or false, got {self.auc!r}.")
        if self.sampled_negatives < 0:
            raise ValueError(
                f"EvalConfig.sampled_negatives must be >= 0, got {self.sampled_negatives!r}."
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    name: str = "custom"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    adv: AdvConfig = dataclasses.field(default_factory=AdvConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)

    def validate(self) -> "ExperimentConfig":
        """Cross-section checks (run after all overrides, so their order does not matter)."""
        check_finite(self)
        metric = self.train.early_metric
        name, _, k = metric.removeprefix("sampled_").partition("@")
        sequential = self.model.name in SEQUENCE_MODELS
        names = (
            ("hr", "ndcg", "recall")
            if sequential
            else ("recall", "ndcg", "hr", "precision", "mrr", "auc")
        )
        if (
            name not in names
            or (k and (not k.isdigit() or int(k) not in self.eval.ks))
            or (metric.startswith("sampled_") and not self.eval.sampled_negatives)
        ):
            raise ValueError(
                f"TrainConfig.early_metric={metric!r} is not computed: use "
                f"<{'|'.join(names)}>@K with K in eval.ks={self.eval.ks} (full ranking), "
                "or sampled_<metric>@K when eval.sampled_negatives > 0."
            )
        if name == "auc" and not self.eval.auc:
            raise ValueError(
                "TrainConfig.early_metric='auc' needs eval.auc=true (AUC is not computed "
                "with eval.auc=false); select on another metric or turn AUC on."
            )
        if self.adv.method != "none" and self.adv.warm_epochs >= self.train.epochs:
            raise ValueError(
                f"AdvConfig.warm_epochs={self.adv.warm_epochs} leaves no "
                f"adversarial epoch out of train.epochs={self.train.epochs}."
            )
        _check_unused_adv_options(self)
        allowed = SEQUENCE_ADV_METHODS if sequential else PAIR_ADV_METHODS
        if not sequential and self.model.name in TEXT_MODELS:
            allowed = allowed + TEXT_ADV_METHODS  # word embeddings of the item texts
        if self.adv.method not in allowed:
            raise ValueError(
                f"AdvConfig.method={self.adv.method!r} does not apply to model "
                f"{self.model.name!r}; expected one of {allowed}."
            )
        if sequential and self.train.sparse_updates == "on":
            raise ValueError(
                f"TrainConfig.sparse_updates='on' applies to pair models with table lookups "
                f"(mf, neumf), not to {self.model.name!r}; use 'auto' or 'off'."
            )
        if sequential and self.train.loss != SEQUENCE_LOSSES[self.model.name]:
            raise ValueError(
                f"TrainConfig.loss={self.train.loss!r}: {self.model.name} trains with "
                f"loss={SEQUENCE_LOSSES[self.model.name]!r}."
            )
        return self

    def with_data(self, path: str | None, fmt: str | None) -> "ExperimentConfig":
        """The config with the CLI's ``--data PATH`` / ``--format FMT`` applied."""
        data = self.data
        if path is not None:
            data = dataclasses.replace(data, path=path)
        if fmt is not None:
            data = dataclasses.replace(data, format=fmt)
        return dataclasses.replace(self, data=data)

    def headline(self, metrics: dict) -> dict:
        """The test metrics the CLI prints: the selection metric, and recall (pair models)
        or HR (sequence models) and NDCG at its cutoff, AUC."""
        k = self.train.early_metric.partition("@")[2]
        cut = [f"test/recall@{k}", f"test/hr@{k}", f"test/ndcg@{k}"] if k else []
        wanted = dict.fromkeys([*cut, f"test/{self.train.early_metric}", "test/auc"])
        if self.model.name in SEQUENCE_MODELS:
            wanted.pop(f"test/recall@{k}", None)
        return {key: metrics[key] for key in wanted if key in metrics}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)


def check_finite(cfg: Any, prefix: str = "") -> None:
    """Every float field (also inside tuples and nested sections) is finite: nan and inf
    would pass most range checks (``inf > 0``) and only show up as a diverged run."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_finite(value, key + ".")
            continue
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(
                    f"{key}={value!r}: expected a finite number; nan and inf are not allowed."
                )


def _check_unused_adv_options(cfg: "ExperimentConfig") -> None:
    """Options a method would silently ignore are an error, not a no-op."""
    adv, t = cfg.adv, cfg.train
    ignored = []
    if adv.method == "free":  # trains on the adversarial loss alone, one negative per row
        ignored += [("train.num_negatives", t.num_negatives, 1)]
        ignored += [("adv.weight", adv.weight, 1.0), ("adv.fraction", adv.fraction, 1.0)]
    if cfg.model.name in SEQUENCE_MODELS:  # the sequence objectives take absolute radii
        ignored += [("adv.budget_kind", adv.budget_kind, "absolute")]
    if adv.method == "vat":  # perturbs every example
        ignored += [("adv.fraction", adv.fraction, 1.0)]
    if adv.method not in ("none", "pgd"):  # fast/trades fix their own start, others have none
        ignored += [("adv.random_start", adv.random_start, True)]
    used = [f"{name}={value!r}" for name, value, default in ignored if value != default]
    if used:
        raise ValueError(
            f"AdvConfig.method={adv.method!r} does not use {', '.join(used)}; leave "
            "them at their defaults, or pick a method that uses them."
        )


def tiny_config(cfg: ExperimentConfig, **model_changes) -> ExperimentConfig:
    """The seconds-long smoke version of an experiment (``--tiny``): synthetic data (pair
    models: 40 users x 60 items; sequence models: 40 users x 150 items, histories of 15,
    length 12), embedding dim 8, 2 epochs of small batches, validation every epoch."""
    if cfg.model.name in SEQUENCE_MODELS:
        return dataclasses.replace(
            cfg,
            data=DataConfig(
                synthetic_users=40, synthetic_items=150, synthetic_per_user=15, seed=cfg.train.seed
            ),
            model=dataclasses.replace(cfg.model, **{"dim": 8, "max_len": 12, **model_changes}),
            train=dataclasses.replace(
                cfg.train, epochs=2, batch_size=16, eval_every=1, buckets=min(cfg.train.buckets, 2)
            ),
        )
    return dataclasses.replace(
        cfg,
        data=DataConfig(synthetic_users=40, synthetic_items=60, synthetic_per_user=8),
        model=dataclasses.replace(cfg.model, **{"dim": 8, **model_changes}),
        train=dataclasses.replace(
            cfg.train, epochs=2, batch_size=64, eval_every=1, early_metric="ndcg@10"
        ),
        eval=EvalConfig(ks=(5, 10), top_n=5),
    )


__all__ = [
    "LOSSES",
    "SEQUENCE_LOSSES",
    "EvalConfig",
    "ExperimentConfig",
    "TrainConfig",
    "apply_overrides",
    "check_finite",
    "from_dict",
    "parse_value",
    "tiny_config",
    "valid_keys",
]
