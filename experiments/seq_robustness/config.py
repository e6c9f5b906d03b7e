"""Sequential robustness: plain SASRec against APR-trained SASRec, over seeds.

Command::

    robustjax study seq-robustness --data ../shared/data/ml-100k --seeds 5 --out runs/study_seq

SASRec (the sasrec-ml1m settings, histories of the last 50 items, unbucketed) trains 100
epochs on each of 5 seeds; ``sasrec-apr`` trains 50 clean epochs, then 50 with APR on the
input sequence embeddings (eps 1, weight 1): equal epochs. Each model is attacked on its
test histories with the label-free objective (gradient substitution of 1, 2, 4 items; PGD-5
on the input embeddings under the relative budget) and reported as mean [95% CI] over the
seeds, with paired differences from plain SASRec. ``--set methods=sasrec,sasrec-apr,sasrec-pgd``
adds PGD-AT. ``--resume`` continues an interrupted study. Without ``--data`` it runs on the
embedded synthetic sequences. Figures: README.md (Sequential threat model).
"""

import dataclasses

from robustjax.studies.seq_robustness import SeqRobustnessConfig


def get_config(*, tiny: bool = False, **overrides) -> SeqRobustnessConfig:
    cfg = SeqRobustnessConfig()
    if tiny:  # two seeds on the synthetic sequences, a few epochs, small grids
        cfg = dataclasses.replace(
            cfg,
            seeds=2,
            epochs=3,
            warm_epochs=1,
            max_len=12,
            substitution_budgets=(0, 1),
            pgd_eps=(0.0, 0.5),
            pgd_steps=2,
            tiny=True,
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
