"""SASRec (Kang & McAuley, ICDM 2018) on ml-1m with the paper's settings.

Command::

    robustjax train --experiment sasrec-ml1m --data ../shared/data/ml-1m --out runs/sasrec

Leave-one-out by time (last item test, second-to-last validation), 2 causal self-attention
blocks, dim 50, one head, dropout 0.2, BCE with one sampled negative per position, batch
128, 100 epochs (paper: 200); evaluation ranks the held-out item against 100 sampled negatives (HR@10,
NDCG@10), model selected on validation NDCG@10 every 10 epochs.

Adam's learning rate is 2e-3 (paper: 1e-3), so that training converges within 45 minutes
on the 2-core CPU. Users are batched by history length (``buckets=4``: lengths 50, 100, 150
and 200): the model and loss of every batch are unchanged (padding is masked, positions
right-aligned), and an epoch costs about half of the unbucketed one, since the median
ML-1M history is under 100 items. ``--set buckets=1`` trains on full-length batches;
``--set learning_rate=0.001`` restores the paper's rate. Measured figures: README.md.
"""

import dataclasses

from experiments._base import ConfigBase, build_config, start_sequence_run
from robustjax.losses.sequence import SeqAdvConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class SASRecConfig(ConfigBase):
    name: str = "sasrec-ml1m"
    data_path: str | None = None
    epochs: int = 100
    max_len: int = 200
    dim: int = 50
    num_blocks: int = 2
    num_heads: int = 1
    dropout: float = 0.2
    learning_rate: float = 2e-3
    batch_size: int = 128
    buckets: int = 4
    eval_every: int = 10
    seed: int = 0
    adv: SeqAdvConfig = dataclasses.field(default_factory=SeqAdvConfig)
    init_from: str | None = None
    tiny: bool = False

    def __post_init__(self):
        for name in (
            "epochs",
            "max_len",
            "dim",
            "num_blocks",
            "num_heads",
            "batch_size",
            "eval_every",
            "buckets",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"SASRecConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"SASRecConfig.dropout must lie in [0, 1), got {self.dropout!r}.")


def get_config(*, tiny: bool = False, **overrides) -> SASRecConfig:
    return build_config(
        SASRecConfig,
        tiny=tiny,
        overrides=overrides,
        tiny_fields={
            "epochs": 2,
            "max_len": 12,
            "dim": 8,
            "batch_size": 16,
            "eval_every": 1,
            "buckets": 2,
        },
    )


def run(cfg: SASRecConfig, out_dir: str, *, resume: bool = False, progress: bool = True) -> dict:
    """Trains and evaluates; writes ``out_dir/{config.json,metrics.json,history.jsonl}``."""
    from robustjax.runs import run_sasrec

    synthetic = start_sequence_run(cfg, out_dir, resume=resume)
    return run_sasrec(
        data_path=cfg.data_path,
        out_dir=out_dir,
        epochs=cfg.epochs,
        max_len=cfg.max_len,
        dim=cfg.dim,
        num_blocks=cfg.num_blocks,
        num_heads=cfg.num_heads,
        dropout=cfg.dropout,
        lr=cfg.learning_rate,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        eval_every=cfg.eval_every,
        progress=progress,
        resume=resume,
        synthetic=synthetic,
        adv=cfg.adv,
        init_from=cfg.init_from,
        name=cfg.name,
        buckets=cfg.buckets,
    )
