"""The IRGAN study's settings (:class:`IrganConfig`; the protocol is described in
:mod:`robustjax.studies.irgan`)."""

import dataclasses

from robustjax.studies._common import StudyConfig
from robustjax.train.gan import BASELINES, D_LOSSES, ESTIMATORS, REWARDS
from robustjax.train.state import OPTIMIZERS

MODELS = ("mf", "neumf", "lightgcn")


@dataclasses.dataclass(frozen=True, kw_only=True)
class IrganConfig(StudyConfig):
    """IRGAN settings (the baselines use their own experiment configs)."""

    name: str = "irgan"
    data_path: str | None = None  # None: the embedded synthetic data set
    tiny: bool = False
    g_model: str = "mf"
    d_model: str = "mf"
    dim: int = 64
    pretrain_epochs: int = 100  # BPR epochs for G and for D (bpr-mf protocol)
    gan_epochs: int = 20
    d_steps: int = 1  # D epochs per GAN epoch
    g_steps: int = 1  # G epochs per GAN epoch
    batch_size: int = 2048
    optimizer: str = "adam"
    learning_rate: float = 1e-3  # pretraining, D and G
    weight_decay: float = 0.0  # dense L2 through the optimizer (GAN phase)
    temperature: float = 1.0  # G's softmax temperature
    d_loss: str = "bce"
    d_negatives: int = 1
    exclude_positives: bool = False  # IRGAN's code draws from all items
    g_estimator: str = "reinforce"
    g_samples: int = 4
    reward: str = "log1pexp"
    baseline: str = "loo"
    gumbel_tau: float = 0.5
    importance_mix: float = 0.0  # IRGAN: 0.2
    eval_every: int = 1  # GAN epochs between validations
    seed: int = 2024  # the first training seed: seeds are seed, seed + 1, ...
    seeds: int = 5  # training seeds (each runs every baseline and IRGAN)
    baselines: tuple[str, ...] = ("bpr-mf", "apr-mf")  # experiments run on the same split

    def __post_init__(self):
        object.__setattr__(self, "baselines", tuple(self.baselines))
        for name in (
            "dim",
            "gan_epochs",
            "d_steps",
            "g_steps",
            "batch_size",
            "d_negatives",
            "g_samples",
            "eval_every",
            "seeds",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(
                    f"IrganConfig.{name} must be an integer >= 1, got {getattr(self, name)!r}."
                )
        if self.pretrain_epochs < 0:
            raise ValueError(
                f"IrganConfig.pretrain_epochs must be >= 0, got {self.pretrain_epochs!r}."
            )
        for name in ("learning_rate", "temperature", "gumbel_tau"):
            if getattr(self, name) <= 0:
                raise ValueError(f"IrganConfig.{name} must be > 0, got {getattr(self, name)!r}.")
        if self.weight_decay < 0 or not 0 <= self.importance_mix < 1:
            raise ValueError(
                "IrganConfig: weight_decay must be >= 0 and importance_mix in "
                f"[0, 1), got {self.weight_decay!r} and {self.importance_mix!r}."
            )
        for name, choices in (
            ("g_model", MODELS),
            ("d_model", MODELS),
            ("optimizer", OPTIMIZERS),
            ("d_loss", D_LOSSES),
            ("g_estimator", ESTIMATORS),
            ("reward", tuple(REWARDS)),
            ("baseline", BASELINES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"IrganConfig.{name}={getattr(self, name)!r} is unknown; "
                    f"expected one of {choices}."
                )
        unknown = [b for b in self.baselines if b not in ("bpr-mf", "apr-mf")]
        if unknown:
            raise ValueError(
                f"IrganConfig.baselines={self.baselines!r} names {unknown}; "
                "expected a subset of ('bpr-mf', 'apr-mf')."
            )
