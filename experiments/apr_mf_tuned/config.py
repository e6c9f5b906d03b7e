"""APR-MF on the tuned BPR settings, with its eps and weight selected on validation.

Command::

    robustjax train --experiment apr-mf-tuned --data ../shared/data/ml-100k-split --out runs/apr_tuned

The apr-mf protocol (100 BPR epochs, then 100 APR epochs, per-lookup FGSM deltas with an
absolute radius per row) on bpr-mf-tuned's settings (``train.l2=1e-2``, learning rate
1e-3), with ``adv.eps=0.5`` and ``adv.weight=0.1``: the point of ``robustjax study
tune-apr-mf`` (eps in {0.1, 0.5, 1.0} x weight in {0.1, 1.0}) with the highest validation
NDCG@20 (0.2881, against bpr-mf-tuned's 0.2874; its test NDCG@20 0.3394, read after
selection). Without ``--data`` it runs on the embedded synthetic data set.
"""

import dataclasses

from robustjax import experiments

EPS, WEIGHT = 0.5, 0.1  # selected by tune-apr-mf (validation only)


def get_config(*, tiny: bool = False, **overrides):
    base = experiments.get_config("apr-mf", tiny=tiny)
    tuned = experiments.get_config("bpr-mf-tuned", tiny=tiny).train
    cfg = dataclasses.replace(
        base,
        name="apr-mf-tuned",
        train=dataclasses.replace(base.train, l2=tuned.l2, learning_rate=tuned.learning_rate),
        adv=dataclasses.replace(base.adv, eps=EPS, weight=WEIGHT),
    )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
