"""The APR study: BPR (untuned and tuned), APR, PGD-AT, VAT, TRADES and free AT over seeds.

Command::

    robustjax study apr --data ../shared/data/ml-100k-split --seeds 5 --out runs/study_apr

Every method trains 200 epochs on each of 5 training seeds (2024..2028); the adversarial
methods start their term after 100 clean epochs (the APR protocol) from the tuned BPR
settings (``bpr-mf-tuned``) with APR's tuned eps and weight (``apr-mf-tuned``). Each model
is attacked by PGD-10 on both embedding tables (training-triple objective, 3 attack seeds)
under the relative budget (eps 0..1 of each row's norm) and the absolute one (eps 0..1),
and reported as mean [95% CI] over the seeds, plus paired differences from tuned BPR.
``--resume`` continues an interrupted study. Without ``--data`` it runs on the embedded
synthetic data set. Figures: README.md (Robustness numbers).
"""

import dataclasses

from robustjax.studies.apr import AprStudyConfig


def get_config(*, tiny: bool = False, **overrides) -> AprStudyConfig:
    cfg = AprStudyConfig()
    if tiny:  # two seeds of every method on the synthetic data, a few epochs, 3 eps levels
        cfg = dataclasses.replace(
            cfg,
            seeds=2,
            epochs=4,
            warm_epochs=2,
            attack_steps=2,
            attack_seeds=1,
            relative_eps=(0.0, 0.25, 0.5),
            absolute_eps=(0.0, 0.25, 0.5),
            k=10,
            tiny=True,
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
