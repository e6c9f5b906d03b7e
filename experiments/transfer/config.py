"""Transfer attacks: attacks crafted on a surrogate model, evaluated on other victims.

Command (about 12-15 minutes on the 2-core CPU; see README.md for the measured matrices)::

    robustjax train --experiment transfer --data ../shared/data/ml-100k-split --out runs/transfer

Two matrices in one report (``results.json``, ``results.md``, ``results.png``):

1. **Fake-profile transfer** (user-item models, ml-100k split). ``fake_fraction`` of the
   real users are injected as fake users, each holding the ``num_targets`` tail targets plus
   ``filler_size`` fillers (the poisoning experiment's threat model). Surrogates (rows):
   ``mf-unrolled`` (the unrolled attack's own MF surrogate) and ``mf``/``neumf``/``lightgcn``
   trained with ``surrogate_seed`` on the clean data, whose item embeddings choose the
   fillers (:func:`robustjax.poison.transfer.surrogate_guided_attack`, softmax over cosine
   similarity to the targets, ``temperature``); a heuristic reference row (``reference``,
   bandwagon). Victims (columns): mf, neumf, lightgcn trained with ``victim_seed`` on the
   poisoned data (so mf -> mf is cross-seed). Cell: target HR@``k`` after poisoning minus
   before (the clean victim, same seed) over real users who never interacted with a target,
   and the change of clean test NDCG@20. Victim training (BPR, Adam, the poisoning
   experiment's ``train_victim``) is shortened to fit the CPU budget: MF ``epochs_mf``,
   NeuMF ``epochs_neumf``, LightGCN ``epochs_lightgcn`` at batch ``batch_lightgcn`` and
   learning rate ``lr_lightgcn``.
2. **History-edit transfer** (sequential models). ml-100k interactions in time order
   (``seq_data_path``; by default the folder ``ml-100k`` beside the ``--data`` split
   folder; synthetic data when neither exists); leave-one-out. SASRec seeds 0 and 1 and
   BERT4Rec seed 0 are trained briefly; each surrogate in ``seq_surrogates`` crafts
   ``seq_budget``-item gradient substitutions of every test history
   (``substitute_gradient`` on its candidate cross-entropy, candidates excluded); every
   model is evaluated on those same edited histories. Cell: HR@10 drop (sampled protocol,
   100 negatives), with a ``substitute_random`` baseline row.
"""

import dataclasses

from experiments._base import ConfigBase

USER_ITEM_MODELS = ("mf", "neumf", "lightgcn")
SURROGATES = ("mf-unrolled", "mf", "neumf", "lightgcn")
REFERENCES = ("none", "random", "average", "bandwagon", "segment")
SEQ_MODELS = ("sasrec-s0", "sasrec-s1", "bert4rec-s0")


def parse_seq_model(name: str) -> tuple[str, int]:
    """``"sasrec-s1" -> ("sasrec", 1)``."""
    kind, _, seed = name.rpartition("-s")
    if kind not in ("sasrec", "bert4rec") or not seed.isdigit():
        raise ValueError(
            f"sequence model name {name!r} must look like 'sasrec-s<seed>' or 'bert4rec-s<seed>'."
        )
    return kind, int(seed)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransferConfig(ConfigBase):
    """The transfer experiment (module docstring). ``--set key=value`` sets any field."""

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
        for name, allowed in (("surrogates", SURROGATES), ("victims", USER_ITEM_MODELS)):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            bad = [v for v in value if v not in allowed]
            if not value or bad or len(set(value)) != len(value):
                raise ValueError(
                    f"TransferConfig.{name}={value!r}: expected distinct names from {allowed}."
                )
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
        for name in (
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
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"TransferConfig.{name} must be an int >= 1, got {v!r}.")
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


def get_config(*, tiny: bool = False, **overrides) -> TransferConfig:
    cfg = TransferConfig()
    if tiny:
        # one surrogate, one victim, two sequence models: the smoke test stays cheap
        cfg = dataclasses.replace(
            cfg,
            surrogates=("mf",),
            victims=("mf",),
            reference="random",
            seq_models=("sasrec-s0", "sasrec-s1"),
            seq_surrogates=("sasrec-s0",),
            fake_fraction=0.05,
            filler_size=5,
            num_targets=2,
            k=5,
            dim=8,
            epochs_mf=1,
            epochs_neumf=1,
            epochs_lightgcn=1,
            batch_size=64,
            batch_lightgcn=64,
            unroll_dim=4,
            pretrain_steps=2,
            unroll_steps=2,
            outer_steps=1,
            seq_max_len=10,
            seq_blocks=1,
            epochs_sasrec=1,
            epochs_bert4rec=1,
            seq_batch_size=16,
            seq_eval_every=1,
            synthetic_users=40,
            synthetic_items=120,
            synthetic_per_user=12,
            tiny=True,
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def run(cfg: TransferConfig, out_dir: str, *, resume: bool = False, progress: bool = True) -> dict:
    """Runs both parts; returns flat metrics (also written to ``metrics.json``)."""
    if resume:
        raise ValueError("transfer does not support --resume; rerun without it.")
    from experiments.transfer.run import run_transfer

    return run_transfer(cfg, out_dir, progress=progress)
