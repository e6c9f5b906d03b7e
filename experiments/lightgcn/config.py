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

from robustjax import experiments
from robustjax.config import ExperimentConfig, tiny_config


def get_config(*, tiny: bool = False, **overrides) -> ExperimentConfig:
    base = experiments.get_config("bpr-mf")  # its data, training and evaluation settings
    cfg = dataclasses.replace(
        base,
        name="lightgcn",
        model=dataclasses.replace(base.model, name="lightgcn", num_layers=3),
        train=dataclasses.replace(base.train, epochs=200, l2=1e-4),
    )
    if tiny:
        cfg = tiny_config(cfg, num_layers=2)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
