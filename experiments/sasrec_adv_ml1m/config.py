"""Adversarially trained SASRec on ml-1m: APR on the input sequence embeddings.

Command (fine-tunes a trained SASRec, as APR fine-tunes a trained BPR-MF)::

    robustjax train --experiment sasrec-ml1m --data ../shared/data/ml-1m --set epochs=100 \\
        --out runs/sasrec
    robustjax train --experiment sasrec-adv-ml1m --data ../shared/data/ml-1m \\
        --set init_from=runs/sasrec --out runs/sasrec_adv

Without ``init_from`` it trains from scratch: ``adv.start_epoch - 1`` clean epochs, then
adversarial ones (same data, model and evaluation as ``sasrec-ml1m``; only adversarial
epochs are eligible for model selection). Objective per batch: ``BCE(x) + lam * BCE(x +
delta)``, ``delta`` one FGSM step of L2 radius ``eps`` per input row (``adv.method=pgd``
for PGD, ``adv.method=hull`` for training against soft item substitutions).
Measured figures and the robustness comparison with plain SASRec: README.md.
"""

import dataclasses

from experiments.sasrec_ml1m.config import SASRecConfig
from experiments.sasrec_ml1m.config import run as _run_sasrec
from robustjax.losses.sequence import SeqAdvConfig

DEFAULT_ADV = SeqAdvConfig(method="apr", eps=1.0, lam=1.0, start_epoch=1)


def get_config(*, tiny: bool = False, **overrides) -> SASRecConfig:
    cfg = SASRecConfig(name="sasrec-adv-ml1m", epochs=30, adv=DEFAULT_ADV)
    if tiny:
        cfg = dataclasses.replace(
            cfg,
            epochs=3,
            max_len=12,
            dim=8,
            batch_size=16,
            eval_every=1,
            tiny=True,
            buckets=2,
            adv=dataclasses.replace(DEFAULT_ADV, start_epoch=2),
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def run(cfg: SASRecConfig, out_dir: str, *, resume: bool = False, progress: bool = True) -> dict:
    """Trains (or fine-tunes, with ``init_from``) adversarially; outputs as sasrec-ml1m."""
    if not cfg.adv.enabled:
        raise ValueError(
            "sasrec-adv-ml1m needs adv.method in apr|pgd|hull (use sasrec-ml1m for plain training)."
        )
    return _run_sasrec(cfg, out_dir, resume=resume, progress=progress)
