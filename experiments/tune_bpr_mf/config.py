"""Tuning BPR-MF's L2 weight and learning rate on ``ml-100k-split``, selected on validation.

Command::

    robustjax study tune-bpr-mf --out runs/tune_bpr

The ``bpr-mf`` protocol trained for 200 epochs (the length of ``apr-mf``: 100 warm-start
+ 100 adversarial epochs, so that BPR and APR get the same budget) at each point of the
grid ``train.l2`` in {0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2} x ``train.learning_rate`` in
{1e-3, 3e-3}: 12 runs. ``train.l2`` is the weight of the batch-level embedding L2 term,
``l2 * mean_b (||u_b||^2 + ||i_b||^2 + ||j_b||^2) / 2`` (``robustjax.losses.l2_term``).
Each run keeps its best epoch on validation NDCG@20 (``train.early_metric``); the study
selects the point with the highest ``valid/ndcg@20`` (ties: the first in grid order) and
reports its ``test/ndcg@20``. Test metrics are never used to choose.

``best.json`` holds the selected overrides, e.g. ``["train.l2=0.001",
"train.learning_rate=0.001"]``: copy them into ``TUNED_BPR`` in
``experiments/tune_apr_mf/config.py``. ``--resume`` reuses finished points and continues
interrupted ones; without it, an ``--out`` that already holds points is refused.
``--data`` replaces the data set (default ``../shared/data/ml-100k-split`` beside the
checkout); ``--set grid=train.l2=0,1e-3,train.learning_rate=1e-3`` replaces the grid.
Runtime on a 2-core CPU: estimated 5 minutes (12 runs of about 20 s; not yet measured).
"""

import dataclasses
import os

from robustjax.studies.tune import TuneConfig

SHARED = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))


def get_config(*, tiny: bool = False, **overrides) -> TuneConfig:
    cfg = TuneConfig(
        name="tune-bpr-mf",
        base="bpr-mf",
        overrides=("train.epochs=200",),
        grid=("train.l2=0,1e-4,1e-3,3e-3,1e-2,3e-2", "train.learning_rate=1e-3,3e-3"),
        select="valid/ndcg@20",
        data_path=os.path.join(SHARED, "data", "ml-100k-split"),
    )
    if tiny:  # bpr-mf's tiny config (synthetic data, 2 epochs, ks 5 and 10), 2 points
        cfg = dataclasses.replace(
            cfg,
            overrides=(),
            grid=("train.l2=0,1e-2", "train.learning_rate=1e-3"),
            select="valid/ndcg@10",
            data_path=None,
            tiny=True,
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
