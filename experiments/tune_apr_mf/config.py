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
import os

from robustjax.studies.tune import TuneConfig

# The selected BPR settings, copied from tune-bpr-mf's best.json (`robustjax study
# tune-bpr-mf`; valid NDCG@20 0.2874 of 12 points), the settings of bpr-mf-tuned.
TUNED_BPR: tuple[str, ...] = ("train.l2=1e-2", "train.learning_rate=1e-3")

SHARED = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))


def get_config(*, tiny: bool = False, **overrides) -> TuneConfig:
    cfg = TuneConfig(
        name="tune-apr-mf",
        base="apr-mf",
        overrides=TUNED_BPR,
        grid=("adv.eps=0.1,0.5,1.0", "adv.weight=0.1,1.0"),
        select="valid/ndcg@20",
        data_path=os.path.join(SHARED, "data", "ml-100k-split"),
    )
    if tiny:  # apr-mf's tiny config (synthetic data, 2 + 2 epochs, ks 5 and 10), 2 points
        cfg = dataclasses.replace(
            cfg,
            overrides=(),
            grid=("adv.eps=0.1,1.0", "adv.weight=1.0"),
            select="valid/ndcg@10",
            data_path=None,
            tiny=True,
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
