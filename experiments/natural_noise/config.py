"""Natural-noise robustness: train on noised interactions, evaluate on clean held-out data.

Command::

    robustjax study natural-noise --data ../shared/data/ml-100k-split \\
        --out runs/noise --seeds 5

For every model (a named experiment: ``bpr-mf``, ``apr-mf``, also ``lightgcn``,
``neumf``) x noise kind (``drop``, ``add``, ``swap``, ``sparsity``; see
``robustjax.data.noise``) x level x seed, the model's own protocol is trained on the
noised training split (``DataConfig.train_noise``) with ``run_experiment`` and evaluated
by full ranking on the clean validation and test sets. Level 0 (clean) is trained once
per model and seed and shared by all kinds. ``--seeds N`` (``seeds``, default 5) training
seeds ``first_seed``, ``first_seed + 1``, ... (``first_seed`` 2024); the seed sets both the
model seed (``train.seed``) and the noise seed (``data.train_noise_seed``); the clean split
is fixed.

Every figure is reported as the mean with its 95% Student-t interval over the seeds and n;
each noisy level also as its per-seed (paired) change from the clean level of the same
model, and every model as its per-seed difference from the first model (apr-mf minus
bpr-mf) on the same seeds and noise. A difference whose interval includes 0 is not a
ranking.

``--set kinds=drop,swap --set levels=0,0.2 --set models=bpr-mf --seeds 2
--set epochs=20`` narrow the grid (levels must start at 0). ``epochs`` replaces the clean
training length; models with an adversarial phase (apr-mf) then run ``epochs`` warm-up
and ``epochs`` adversarial epochs, as in ``experiments/apr_mf``.

Outputs in ``--out``: ``results.json`` (per kind: ``models.<model>.<metric>`` with
``levels`` (one entry per level), ``auc`` and ``rel_change``, ``paired.vs_clean`` and
``paired.vs_baseline``, each entry ``{"mean", "ci95", "values", "n"}``; the per-seed run
metrics under ``runs``), ``results.md`` (mean [95% CI] cells with n), ``<metric>_<kind>.png``
(mean curve with its 95% band per model; needs matplotlib), ``metrics.json`` (headline
numbers: means over the seeds) and ``runs/<model>/<clean|kind@level>/seed<s>/`` (the
full output of each training run; ``--resume`` reuses finished ones).

Two masks: the headline metrics are ``run_experiment``'s, which hides the user's
*observed* (noised) training items from the ranking, as a deployed system would;
``clean_mask/...`` re-evaluates the same parameters hiding the *clean* training items, so
that a drop is not caused by dropped training items competing with the test items.

Test-time noise: for graph models (``lightgcn``), whose user representation is computed
from the interactions, the clean-trained model is also evaluated with its graph built
from the noised training pairs (``test_time`` in results.json). MF user embeddings are
free parameters, so for MF (bpr-mf, apr-mf) interaction noise is a training-time threat.

Runtime: 34 training runs per seed for the default grid (bpr-mf + apr-mf, 4 kinds x 5
levels), 170 for 5 seeds; one seed of ``--set levels=0,0.3`` (10 runs) took about 11
minutes on a heavily loaded 2-core CPU. Earlier single-seed ml-100k-split numbers (seed
2024, not a ranking: test NDCG@20 clean 0.320 / 0.338; at 30% noise -7% (add) to -39%
(swap)): see README.md.
"""

import dataclasses

from robustjax.studies.natural_noise import NaturalNoiseConfig


def get_config(*, tiny: bool = False, **overrides) -> NaturalNoiseConfig:
    cfg = NaturalNoiseConfig()
    if tiny:  # bpr-mf's tiny config (synthetic data, 2 epochs), 2 seeds x 2 runs: a smoke test
        cfg = dataclasses.replace(
            cfg,
            models=("bpr-mf",),
            seeds=2,
            kinds=("swap",),
            levels=(0.0, 0.5),
            epochs=2,
            metrics=("ndcg@10", "recall@10"),
            tiny=True,
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
