"""LightGCN (He et al., SIGIR 2020) with BPR on the LightGCN protocol.

Command::

    robustjax train --experiment lightgcn --data ../shared/data/lastfm-lightgcn --out runs/lightgcn

3 propagation layers over the symmetrically normalised user-item graph of the training
split (sparse CSR products, no dense adjacency), dim 64, BPR with one uniform negative,
Adam 1e-3, batch 2048, batch-level L2 1e-4, 200 epochs (0.15 s / epoch on the 2-core CPU,
about 45 s in all); full ranking (Recall/NDCG/Precision@20). The folder has only train and
test files, so validation is a seeded 10% carved from train.
Attacks perturb the layer-0 tables (``--set model.perturb=output`` for the propagated ones).
"""

import dataclasses

from robustjax.config import EvalConfig, ExperimentConfig, TrainConfig, tiny_config
from robustjax.data import DataConfig
from robustjax.models import ModelConfig


def get_config(*, tiny: bool = False, **overrides) -> ExperimentConfig:
    cfg = ExperimentConfig(
        name="lightgcn",
        data=DataConfig(seed=2024),
        model=ModelConfig(name="lightgcn", dim=64, num_layers=3),
        train=TrainConfig(
            epochs=200,
            batch_size=2048,
            optimizer="adam",
            learning_rate=1e-3,
            loss="bpr",
            l2=1e-4,
            eval_every=10,
            seed=2024,
        ),
        eval=EvalConfig(ks=(10, 20, 50)),
    )
    if tiny:
        cfg = tiny_config(cfg, num_layers=2)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
