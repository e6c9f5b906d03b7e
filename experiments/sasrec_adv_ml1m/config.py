"""Adversarially trained SASRec on ml-1m: APR on the input sequence embeddings.

Command (fine-tunes a trained SASRec, as APR fine-tunes a trained BPR-MF)::

    robustjax train --experiment sasrec-ml1m --data ../shared/data/ml-1m --out runs/sasrec
    robustjax train --experiment sasrec-adv-ml1m --data ../shared/data/ml-1m \\
        --set train.init_from=runs/sasrec --out runs/sasrec_adv

Without ``train.init_from`` it trains from scratch: ``adv.warm_epochs`` clean epochs, then
adversarial ones (same data, model and evaluation as ``sasrec-ml1m``; only adversarial
epochs are eligible for model selection). Objective per batch: ``BCE(x) + weight * BCE(x +
delta)``, ``delta`` one FGSM step of L2 radius ``eps`` per input row (``adv.method=pgd``
for PGD, ``adv.method=hull`` for training against soft item substitutions).
Measured figures and the robustness comparison with plain SASRec: README.md.
"""

import dataclasses

from robustjax import experiments
from robustjax.objectives import AdvConfig

DEFAULT_ADV = AdvConfig(method="apr", eps=1.0, weight=1.0, warm_epochs=0, targets=("seq",))


def get_config(*, tiny: bool = False, **overrides):
    base = experiments.get_config("sasrec-ml1m", tiny=tiny)
    cfg = dataclasses.replace(
        base,
        name="sasrec-adv-ml1m",
        train=dataclasses.replace(base.train, epochs=3 if tiny else 30),
        adv=dataclasses.replace(DEFAULT_ADV, warm_epochs=1) if tiny else DEFAULT_ADV,
    )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
