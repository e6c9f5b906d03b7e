"""Text-SASRec on MovieLens-100K: SASRec whose item table is a frozen-MiniLM text tower.

Command::

    robustjax train --experiment text-sasrec --data ../shared/data/ml-100k --out runs/text_sasrec

Leave-one-out by time; each item's text ("Toy Story (1995) Animation Children's Comedy")
is embedded once by the frozen all-MiniLM-L6-v2 encoder (32 tokens, cached on disk) and a
trainable Dense(384 -> 64) plus a zero-initialised item ID embedding gives SASRec's item
table (inputs, targets and output scores). 2 causal blocks, dim 64, one head, dropout 0.2,
histories of 50, BCE with one sampled negative per position, batch 128, Adam 1e-3, 50
epochs; evaluation against 100 sampled negatives (``sampled_ndcg@10``, selection every 5
epochs) and by full ranking. ``--set model.name=sasrec`` trains plain SASRec on the same
protocol. Runtime on the 2-core CPU: about 80 s (plain SASRec: 40 s). Expected (README.md):
test NDCG@10 about 0.145, sampled NDCG@10 about 0.50. ``--tiny`` needs ``--data`` with item
texts (synthetic data has none).
"""

import dataclasses

from robustjax import experiments
from robustjax.config import ExperimentConfig, tiny_config


def get_config(*, tiny: bool = False, **overrides) -> ExperimentConfig:
    base = experiments.get_config("sasrec-ml1m")  # its blocks, loss and sampled evaluation
    cfg = dataclasses.replace(
        base,
        name="text-sasrec",
        model=dataclasses.replace(
            base.model,
            name="text-sasrec",
            dim=64,
            max_len=50,
            text_encoder="all-minilm-l6-v2",
            text_max_len=32,
            text_id_embedding=True,
        ),
        train=dataclasses.replace(
            base.train, epochs=50, learning_rate=1e-3, buckets=1, eval_every=5
        ),
        eval=dataclasses.replace(base.eval, ks=(10, 20)),
    )
    if tiny:
        cfg = tiny_config(cfg)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
