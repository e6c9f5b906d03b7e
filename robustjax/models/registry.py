"""Model configs and construction by name."""
import dataclasses

from flax import nnx

from robustjax.models.base import ModelFns
from robustjax.types import Params

MODEL_NAMES = ("mf",)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    name: str = "mf"
    dim: int = 64
    use_bias: bool = False

    def __post_init__(self):
        if self.name not in MODEL_NAMES:
            raise ValueError(f"ModelConfig.name={self.name!r} is unknown; expected one of "
                             f"{MODEL_NAMES}.")
        if self.dim < 1:
            raise ValueError(f"ModelConfig.dim must be >= 1, got dim={self.dim!r}.")


def build_model(cfg: ModelConfig, num_users: int, num_items: int, *, seed: int
                ) -> tuple[ModelFns, Params]:
    """Builds the model named in ``cfg`` and returns its functions and initial parameters."""
    rngs = nnx.Rngs(params=seed)
    if cfg.name == "mf":
        from robustjax.models.mf import MatrixFactorization, mf_fns
        return mf_fns(MatrixFactorization(num_users, num_items, cfg.dim, use_bias=cfg.use_bias,
                                          rngs=rngs))
    raise AssertionError(cfg.name)
