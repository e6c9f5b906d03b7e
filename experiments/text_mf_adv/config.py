"""Text-MF fine-tuned with adversarial training on the word embeddings of the item texts.

Command::

    robustjax train --experiment text-mf-adv --data ../shared/data/ml-100k --out runs/text_mf_adv

The text-mf protocol (``experiments/text_mf``: cold-item split of ml-100k, frozen
all-MiniLM-L6-v2 features, Dense(384 -> 64) + ID embedding, BPR, Adam 1e-3, batch 2048,
seed 2024) for its 100 epochs (warm start, ``adv.warm_epochs``), then ``ADV_EPOCHS`` epochs
of ``BPR(clean) + weight * BPR(adversarial point)`` (``AdvConfig(method="text")``,
:mod:`robustjax.losses.text_adversarial`): FGSM on the word embeddings of the real tokens of
``text_items_per_step`` = 32 distinct items per batch, L2 per token row with radius
``eps = 0.25 * ||w_t||`` (relative budget), through the frozen encoder into the trainable
tower. Validation every 5 epochs; the model is selected on validation NDCG@20 within the
adversarial phase. ``--set train.init_from=RUN`` with ``adv.warm_epochs=0`` and
``train.epochs=N`` fine-tunes an existing text-mf run instead.

Runtime on the 2-core CPU: ~15 s for the clean phase, then 10-25 s per adversarial epoch
(35 steps, each 2 encoder forward passes and 1 backward over [32, 30] tokens), about 5 min
in all. Expected (README.md, one seed): test NDCG@20 ~0.30 (text-mf 0.31), cold NDCG@20
~0.34 (text-mf 0.39), and text attacks that promote an item far less effective.
"""

import dataclasses

from robustjax import experiments
from robustjax.objectives import AdvConfig

ADV_EPOCHS = 20


ADV = AdvConfig(
    method="text",
    eps=0.25,
    budget_kind="relative",
    weight=1.0,
    text_items_per_step=32,
    text_attack="fgsm",
)


def get_config(*, tiny: bool = False, **overrides):
    base = experiments.get_config("text-mf", tiny=tiny)
    epochs = 1 if tiny else ADV_EPOCHS
    cfg = experiments.adversarial_variant(base, ADV, name="text-mf-adv", epochs=epochs)
    cfg = dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, eval_every=1 if tiny else 5)
    )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
