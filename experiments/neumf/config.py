"""NeuMF (He et al., WWW 2017): GMF + MLP towers, trained with BPR (``--set
train.loss=bce --set train.num_negatives=4`` for the paper's pointwise loss).

Command::

    robustjax train --experiment neumf --data ../shared/data/ml-100k-split --out runs/neumf

Embedding size 32 per tower, MLP (64, 32, 16), Adam 1e-3, batch 2048, 100 epochs.
"""

import dataclasses

from robustjax.config import EvalConfig, ExperimentConfig, TrainConfig, tiny_config
from robustjax.data import DataConfig
from robustjax.models import ModelConfig


def get_config(*, tiny: bool = False, **overrides) -> ExperimentConfig:
    cfg = ExperimentConfig(
        name="neumf",
        data=DataConfig(seed=2024),
        model=ModelConfig(name="neumf", dim=32, hidden=(64, 32, 16)),
        train=TrainConfig(
            epochs=100,
            batch_size=2048,
            optimizer="adam",
            learning_rate=1e-3,
            loss="bpr",
            eval_every=10,
            seed=2024,
        ),
        eval=EvalConfig(ks=(10, 20, 50)),
    )
    if tiny:
        cfg = tiny_config(cfg, hidden=(16, 8))
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
