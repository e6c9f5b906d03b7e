"""Transfer attacks: attacks crafted on a surrogate model, evaluated on other victims.

Command (about 12-15 minutes per repetition on the 2-core CPU, so about an hour for the
default 5; see README.md for the single-seed matrices measured earlier)::

    robustjax study transfer --data ../shared/data/ml-100k-split --out runs/transfer --seeds 5

Two matrices in one report (``results.json``, ``results.md``, ``results.png``), each
repeated ``seeds`` times (:func:`robustjax.studies.transfer.repetition_seeds`): repetition
``i`` trains surrogates with ``surrogate_seed + 2i`` and victims with ``victim_seed + 2i``
(the step is ``|victim_seed - surrogate_seed| + 1``, 2 by default, so a surrogate and a
victim never share a seed, within a repetition or across them), draws targets and
profiles with ``seed + 1000 i``, trains ``<kind>-s<k>`` with seed ``k + 2i`` (the step
is the spread of the models' seeds + 1) and keys the
random substitutions with ``seq_seed + i``. Every cell is reported as mean [95% CI] over
the repetitions, with n, and each transferred attack also as its per-repetition (paired)
difference from the reference row (fake profiles) or random substitution (histories).

1. **Fake-profile transfer** (user-item models, ml-100k split). ``fake_fraction`` of the
   real users are injected as fake users, each holding the ``num_targets`` tail targets plus
   ``filler_size`` fillers (the poisoning experiment's threat model). Surrogates (rows):
   ``mf-unrolled`` (the unrolled attack's own MF surrogate) and ``mf``/``neumf``/``lightgcn``
   trained with ``surrogate_seed`` on the clean data, whose item embeddings choose the
   fillers (:func:`robustjax.poison.transfer.surrogate_guided_attack`, softmax over cosine
   similarity to the targets, ``temperature``); a heuristic reference row (``reference``,
   bandwagon). Victims (columns): mf, neumf, lightgcn trained with ``victim_seed`` on the
   poisoned data (so mf -> mf is cross-seed). Cell: target HR@``k`` after poisoning minus
   before (the clean victim, same seed) over real users who never interacted with a target,
   and the change of clean test NDCG@20. Victim training (BPR, Adam, the poisoning
   experiment's ``train_victim``) is shortened to fit the CPU budget: MF ``epochs_mf``,
   NeuMF ``epochs_neumf``, LightGCN ``epochs_lightgcn`` at batch ``batch_lightgcn`` and
   learning rate ``lr_lightgcn``.
2. **History-edit transfer** (sequential models). ml-100k interactions in time order
   (``seq_data_path``; by default the folder ``ml-100k`` beside the ``--data`` split
   folder; synthetic data when neither exists); leave-one-out. SASRec seeds 0 and 1 and
   BERT4Rec seed 0 are trained briefly; each surrogate in ``seq_surrogates`` crafts
   ``seq_budget``-item gradient substitutions of every test history
   (``substitute_gradient`` on its candidate cross-entropy, candidates excluded); every
   model is evaluated on those same edited histories. Cell: HR@10 drop (sampled protocol,
   100 negatives), with a ``substitute_random`` baseline row.
"""

import dataclasses

from robustjax.studies.transfer import TransferConfig


def get_config(*, tiny: bool = False, **overrides) -> TransferConfig:
    cfg = TransferConfig()
    if tiny:
        # one surrogate, one victim, two sequence models: the smoke test stays cheap
        cfg = dataclasses.replace(
            cfg,
            surrogates=("mf",),
            victims=("mf",),
            reference="random",
            seeds=2,
            seq_models=("sasrec-s0", "sasrec-s1"),
            seq_surrogates=("sasrec-s0",),
            fake_fraction=0.05,
            filler_size=5,
            num_targets=2,
            k=5,
            dim=8,
            epochs_mf=1,
            epochs_neumf=1,
            epochs_lightgcn=1,
            batch_size=64,
            batch_lightgcn=64,
            unroll_dim=4,
            pretrain_steps=2,
            unroll_steps=2,
            outer_steps=1,
            seq_max_len=10,
            seq_blocks=1,
            epochs_sasrec=1,
            epochs_bert4rec=1,
            seq_batch_size=16,
            seq_eval_every=1,
            synthetic_users=40,
            synthetic_items=120,
            synthetic_per_user=12,
            tiny=True,
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
