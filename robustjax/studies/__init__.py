"""Studies: drivers of several training runs each (method comparisons, poisoning, transfer).

A study's config is a frozen dataclass defined here and instantiated by
``experiments/<name>/config.py``; ``run_study`` runs it. Only the CLI imports this
package (``robustjax study NAME``, or ``robustjax train --experiment NAME``).
"""

from robustjax.studies._common import StudyConfig
from robustjax.studies.apr import AprStudyConfig, run_apr_study
from robustjax.studies.apr_reproduction import AprReproductionConfig, run_apr_reproduction
from robustjax.studies.irgan import IrganConfig, run_irgan_comparison
from robustjax.studies.natural_noise import NaturalNoiseConfig, run_grid
from robustjax.studies.poisoning import PoisonConfig, run_poisoning
from robustjax.studies.seq_robustness import SeqRobustnessConfig, run_seq_robustness
from robustjax.studies.text_towers import TextTowersConfig, run_text_towers
from robustjax.studies.transfer import TransferConfig, run_transfer
from robustjax.studies.tune import TuneConfig, run_tune

_RUNNERS = {
    AprStudyConfig: run_apr_study,
    AprReproductionConfig: run_apr_reproduction,
    IrganConfig: run_irgan_comparison,
    NaturalNoiseConfig: run_grid,
    PoisonConfig: run_poisoning,
    SeqRobustnessConfig: run_seq_robustness,
    TextTowersConfig: run_text_towers,
    TransferConfig: run_transfer,
    TuneConfig: run_tune,
}


def is_study(cfg) -> bool:
    """Whether ``cfg`` is the config of a study (else: of one training run)."""
    return type(cfg) in _RUNNERS


def run_study(cfg: StudyConfig, out_dir: str, *, resume: bool = False, progress: bool = True):
    """Runs the study configured by ``cfg``; returns its flat metrics (``metrics.json``)."""
    if not is_study(cfg):
        raise TypeError(
            f"run_study: cfg is a {type(cfg).__name__}, not a study config; expected one "
            f"of {', '.join(c.__name__ for c in _RUNNERS)}."
        )
    return _RUNNERS[type(cfg)](cfg, out_dir, resume=resume, progress=progress)


__all__ = [
    "AprReproductionConfig",
    "AprStudyConfig",
    "IrganConfig",
    "NaturalNoiseConfig",
    "PoisonConfig",
    "SeqRobustnessConfig",
    "StudyConfig",
    "TextTowersConfig",
    "TransferConfig",
    "TuneConfig",
    "is_study",
    "run_study",
]
