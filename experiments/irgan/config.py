"""IRGAN (Wang et al., SIGIR 2017) for item recommendation next to BPR-MF and APR-MF.

Command::

    robustjax study irgan --data ../shared/data/ml-100k-split --out runs/irgan

Trains, on the same split and for each of ``seeds`` training seeds (default 5: ``seed``,
``seed + 1``, ...; ``--seeds N`` sets it), ``bpr-mf`` and ``apr-mf`` (their own configs,
unchanged but for the training seed, through ``run_experiment``) and IRGAN: a generator and
a discriminator (both MF, dim 64), each pretrained with BPR for ``pretrain_epochs`` epochs
(the bpr-mf protocol), then ``gan_epochs`` GAN epochs of ``d_steps`` D epochs (BCE,
negatives drawn from G's softmax over all items) and ``g_steps`` G epochs (REINFORCE with
D's reward ``log(1 + exp(f))`` and a leave-one-out baseline over 4 draws). G and D are each
selected on validation NDCG@20 (GAN epochs only: the pretrained start is logged but is not a
candidate), then evaluated once on test. Writes ``results.json`` (every figure as mean,
95% CI, per-seed values and n; paired differences against BPR-MF and against IRGAN's own
BPR-pretrained start) and ``results.md`` (the tables), ``irgan_valid.png`` (mean curves
with 95% bands) and each seed's run folders ``seed<S>/{bpr-mf,apr-mf,irgan}``.
Runtime on the shared 2-core CPU: about 7.5 minutes per seed (10-15 s per GAN epoch under
load), so roughly 40 minutes for 5 seeds (estimated from the single-seed run).
Measured earlier with a single seed (2024), so not a ranking; test NDCG@20: BPR-MF 0.3201,
APR-MF 0.3375, IRGAN generator 0.3248, IRGAN discriminator 0.3096 (both selected at the
first GAN epoch); see README.md.
"""

import dataclasses

from robustjax.studies.irgan import IrganConfig


def get_config(*, tiny: bool = False, **overrides) -> IrganConfig:
    cfg = IrganConfig()
    if tiny:  # matches tiny_config's sizes (dim 8, batch 64, 2 epochs)
        cfg = dataclasses.replace(
            cfg, tiny=True, dim=8, pretrain_epochs=2, gan_epochs=2, batch_size=64, seeds=2
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
