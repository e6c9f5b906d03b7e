"""Tuning APR-MF's eps and adversarial weight on ``ml-100k-split``, selected on validation.

Command::

    robustjax study tune-apr-mf --out runs/tune_apr

The ``apr-mf`` protocol (100 BPR warm-start epochs, then 100 APR epochs) with the tuned
BPR settings ``TUNED_BPR`` applied first, at each point of the grid ``adv.eps`` in
{0.1, 0.5, 1.0} x ``adv.weight`` in {0.1, 1.0}: 6 runs. Each run keeps its best epoch of
the adversarial phase on validation NDCG@20; the study selects the point with the highest
``valid/ndcg@20`` (ties: the first in grid order) and reports its ``test/ndcg@20``. Test
metrics are never used to choose.

``--resume`` reuses finished points and continues interrupted ones; without it, an
``--out`` that already holds points is refused. ``--data`` replaces the data set (default
``../shared/data/ml-100k-split`` beside the checkout).
Runtime on a 2-core CPU: estimated 4 minutes (6 runs of about 30 s; not yet measured).
"""

import dataclasses

from robustjax import experiments
from robustjax.studies.tune import TuneConfig

# The selected BPR settings, copied from tune-bpr-mf's best.json (`robustjax study
# tune-bpr-mf`; valid NDCG@20 0.2874 of 12 points), the settings of bpr-mf-tuned.
TUNED_BPR: tuple[str, ...] = ("train.l2=1e-2", "train.learning_rate=1e-3")

GRID = ("adv.eps=0.1,0.5,1.0", "adv.weight=0.1,1.0")
TINY_GRID = ("adv.eps=0.1,1.0", "adv.weight=1.0")  # apr-mf's tiny config, 2 points


def get_config(*, tiny: bool = False, **overrides) -> TuneConfig:
    # tune-bpr-mf's data set and selection (valid/ndcg@20; tiny: synthetic data, ndcg@10)
    base = experiments.get_config("tune-bpr-mf", tiny=tiny)
    cfg = dataclasses.replace(
        base,
        name="tune-apr-mf",
        base="apr-mf",
        overrides=() if tiny else TUNED_BPR,
        grid=TINY_GRID if tiny else GRID,
    )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
