"""NeuMF (He et al., WWW 2017): GMF + MLP towers, trained with BPR (``--set
train.loss=bce --set train.num_negatives=4`` for the paper's pointwise loss).

Command::

    robustjax train --experiment neumf --data ../shared/data/ml-100k-split --out runs/neumf

Embedding size 32 per tower, MLP (64, 32, 16), Adam 1e-3, batch 2048, 100 epochs.
"""

import dataclasses

from robustjax import experiments
from robustjax.config import tiny_config
from robustjax.models import ModelConfig


def get_config(*, tiny: bool = False, **overrides):
    """bpr-mf's protocol with the NeuMF model."""
    base = experiments.get_config("bpr-mf")
    cfg = dataclasses.replace(
        base, name="neumf", model=ModelConfig(name="neumf", dim=32, hidden=(64, 32, 16))
    )
    if tiny:
        cfg = tiny_config(cfg, hidden=(16, 8))
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
