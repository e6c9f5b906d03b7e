"""Natural-noise robustness: train on noised interactions, evaluate on clean held-out data.

Command::

    robustjax study natural-noise --data ../shared/data/ml-100k-split \\
        --out runs/noise

For every model (a named experiment: ``bpr-mf``, ``apr-mf``, also ``lightgcn``,
``neumf``) x noise kind (``drop``, ``add``, ``swap``, ``sparsity``; see
``robustjax.data.noise``) x level x seed, the model's own protocol is trained on the
noised training split (``DataConfig.train_noise``) with ``run_experiment`` and evaluated
by full ranking on the clean validation and test sets. Level 0 (clean) is trained once
per model and seed and shared by all kinds. The seed sets both the model seed
(``train.seed``) and the noise seed (``data.train_noise_seed``); the clean split is fixed.

``--set kinds=drop,swap --set levels=0,0.2 --set models=bpr-mf --set seeds=1,2
--set epochs=20`` narrow the grid (levels must start at 0). ``epochs`` replaces the clean
training length; models with an adversarial phase (apr-mf) then run ``epochs`` warm-up
and ``epochs`` adversarial epochs, as in ``experiments/apr_mf``.

Outputs in ``--out``: ``results.json`` (every metric at every level and seed, relative
change from the clean level, area under the metric-vs-level curve), ``results.md``,
``<metric>.png`` (one panel per kind, one line per model; needs matplotlib),
``metrics.json`` (headline numbers) and ``runs/<model>/<clean|kind@level>/seed<s>/`` (the
full output of each training run; ``--resume`` reuses finished ones).

Two masks: the headline metrics are ``run_experiment``'s, which hides the user's
*observed* (noised) training items from the ranking, as a deployed system would;
``clean_mask/...`` re-evaluates the same parameters hiding the *clean* training items, so
that a drop is not caused by dropped training items competing with the test items.

Test-time noise: for graph models (``lightgcn``), whose user representation is computed
from the interactions, the clean-trained model is also evaluated with its graph built
from the noised training pairs (``test_time`` in results.json). MF user embeddings are
free parameters, so for MF (bpr-mf, apr-mf) interaction noise is a training-time threat.

Runtime: 34 training runs for the default grid (bpr-mf + apr-mf, 4 kinds x 5 levels, one
seed); about 11 minutes for ``--set levels=0,0.3`` (10 runs) on a heavily loaded 2-core
CPU. Measured ml-100k-split numbers (test NDCG@20 clean 0.320 / 0.338; at 30% noise
-7% (add) to -39% (swap)): see README.md.
"""

import dataclasses

from robustjax.studies.natural_noise import NaturalNoiseConfig


def get_config(*, tiny: bool = False, **overrides) -> NaturalNoiseConfig:
    cfg = NaturalNoiseConfig()
    if tiny:  # bpr-mf's tiny config (synthetic data, 2 epochs), 2 runs: a smoke test
        cfg = dataclasses.replace(
            cfg,
            models=("bpr-mf",),
            kinds=("swap",),
            levels=(0.0, 0.5),
            epochs=2,
            metrics=("ndcg@10", "recall@10"),
            tiny=True,
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
