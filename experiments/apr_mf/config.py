"""APR-MF (He et al., SIGIR 2018) on the reference protocol of ``ml-100k-split``.

Command::

    robustjax train --experiment apr-mf --data ../shared/data/ml-100k-split --out runs/apr

Protocol: the bpr-mf protocol for 100 epochs (warm start), then 100 epochs of
``L_BPR(emb) + lambda * L_BPR(emb + delta)`` with ``delta = eps * g / ||g||`` per gathered
embedding (FGSM, L2 per row) from the gradient of the clean loss; eps 0.5, lambda 1.
The model is selected on validation NDCG@20 within the adversarial phase.
``--set adv.apr_mode=published`` uses one delta per table row (batch-summed gradient,
sum-reduced loss), as the reference TensorFlow code does.
"""

import dataclasses

from robustjax import experiments
from robustjax.objectives import AdvConfig


def get_config(*, tiny: bool = False, **overrides):
    base = experiments.get_config("bpr-mf", tiny=tiny)
    adv = AdvConfig(method="apr", eps=0.5, weight=1.0, apr_mode="per-lookup")
    cfg = experiments.adversarial_variant(base, adv, name="apr-mf", epochs=base.train.epochs)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
