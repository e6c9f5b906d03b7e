"""BPR-MF with its L2 weight and learning rate selected on validation: the tuned baseline.

Command::

    robustjax train --experiment bpr-mf-tuned --data ../shared/data/ml-100k-split --out runs/bpr_tuned

The bpr-mf protocol with ``train.l2=1e-2`` and ``train.learning_rate=1e-3`` for 200
epochs: the point of ``robustjax study tune-bpr-mf`` (l2 in {0, 1e-4, 1e-3, 3e-3, 1e-2,
3e-2} x learning rate in {1e-3, 3e-3}, 200 epochs, ml-100k-split) with the highest
validation NDCG@20 (0.2874; its test NDCG@20 0.3332, read after selection). 200 epochs
is the budget of the adversarial methods it is compared with (100 clean + 100
adversarial). Without ``--data`` it runs on the embedded synthetic data set.
"""

import dataclasses

from robustjax import experiments

L2, LEARNING_RATE = 1e-2, 1e-3  # selected by tune-bpr-mf (validation only)


def get_config(*, tiny: bool = False, **overrides):
    base = experiments.get_config("bpr-mf", tiny=tiny)
    train = dataclasses.replace(
        base.train, epochs=2 * base.train.epochs, l2=L2, learning_rate=LEARNING_RATE
    )
    cfg = dataclasses.replace(base, name="bpr-mf-tuned", train=train)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
