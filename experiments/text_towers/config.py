"""Text item towers: ID-only MF against text-MF on a cold-item split, over seeds, with
attacks that rewrite item text.

Command::

    robustjax study text-towers --data ../shared/data/ml-100k --seeds 5 --out runs/study_text

MF and text-MF (the ``text-mf`` experiment: frozen all-MiniLM-L6-v2 features, a trainable
projection plus an ID embedding) train 100 epochs on each of 5 seeds on the same
``cold_items`` split (10% of the items never seen in training). Reported, as mean [95% CI]
over the seeds: warm test NDCG/Recall@20, cold-item NDCG/Recall@20, and for text models
the target HR@20 of 20 seeded target items whose texts are rewritten by up to 1, 2, 4 and
8 tokens (gradient-guided substitution against its random baseline), with example
rewrites. ``--set methods=mf,text-mf,text-mf-adv`` adds the tower trained adversarially on
token embeddings. Runtime on the 2-core CPU: about 15 minutes. Figures: README.md (Text
item towers).
"""

import dataclasses

from robustjax.studies.text_towers import TextTowersConfig


def get_config(*, tiny: bool = False, **overrides) -> TextTowersConfig:
    cfg = TextTowersConfig()
    if tiny:  # two seeds, a few epochs, two targets, budgets 0 and 1
        cfg = dataclasses.replace(
            cfg, seeds=2, epochs=2, budgets=(0, 1), num_targets=2, attack_seeds=1, rescore=4, k=10,
            tiny=True,
        )  # fmt: skip
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
