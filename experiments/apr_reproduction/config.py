"""APR reproduction: BPR, APR and its successors, clean and under embedding attacks.

Command::

    robustjax study apr-reproduction --out runs/apr_reproduction

One command trains every method (``bpr``, ``apr``, ``pgd-at``, ``vat``, ``trades``,
``free-at``) on each data set, then evaluates each trained model clean and under FGSM and
PGD-10 attacks on the embedding tables (per-row L2 ball, the APR paper's threat model:
maximise the BPR loss over one sampled epoch of training triples) at several eps, and writes
``results.json``, ``results.md`` and ``metrics.json`` (plus each run's own outputs).

Defaults: ml-100k-split (fixed split) with the reference protocol (100 BPR epochs, then 100
adversarial epochs), and ml-1m (per-user random 80/10/10 split, seed 2024) with 20 + 20
epochs to keep the CPU run short (``--set ml1m_epochs=N``). ``--data`` is the folder holding
both (default ``../shared/data`` beside the checkout); ``--set datasets=ml-100k-split``
and ``--set methods=bpr,apr`` narrow the run. Runtime on a 2-core CPU: about 3 minutes for
ml-100k-split, about 25 minutes for ml-1m. Measured figures: README.md.
"""

import dataclasses
import os

from robustjax.studies.apr_reproduction import AprReproductionConfig

SHARED = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))


def get_config(*, tiny: bool = False, **overrides) -> AprReproductionConfig:
    cfg = AprReproductionConfig(data_path=os.path.join(SHARED, "data"))
    if tiny:  # every method on the synthetic data set, apr-mf's tiny protocol
        cfg = dataclasses.replace(
            cfg, data_path=None, datasets=("synthetic",), ml1m_epochs=2, tiny=True
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
