"""Attack configuration and the factory that turns it into an attack function."""

import dataclasses
import math
from collections.abc import Callable, Iterable

from jaxtyping import PRNGKeyArray, Scalar

from robustjax._config_checks import field_error
from robustjax.attacks.budget import Budget
from robustjax.attacks.project import NORMS, SCOPES
from robustjax.attacks.registry import EMBEDDING_ATTACKS
from robustjax.types import Array, Emb


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttackConfig:
    """Which attack, how strong, and on which embeddings.

    Attributes:
      kind: a key of ``robustjax.attacks.EMBEDDING_ATTACKS``: ``"pgd"``, ``"fgsm"``,
        ``"gaussian"``, ``"uniform"`` (noise), ``"none"`` or a registered attack.
      eps: radius of the ball (per row, example or batch, see ``scope``); overridable
        (and traceable) per call of the attack function.
      step_size: PGD step length; None means ``2.5 * eps / num_steps`` with the eps in use.
      num_steps: PGD steps; static (changes the compiled loop).
      norm: ``"l2"`` or ``"linf"``.
      scope: ``"row"``, ``"example"`` or ``"batch"`` (see ``robustjax.attacks.project``).
      random_start: PGD starts uniformly inside the ball.
      targets: embedding names to perturb; the others get zero delta.
    """

    kind: str = "pgd"
    eps: float = 0.5
    step_size: float | None = None
    num_steps: int = 10
    norm: str = "l2"
    scope: str = "row"
    random_start: bool = False
    targets: tuple[str, ...] = ("user", "pos", "neg")

    def __post_init__(self):
        if self.kind not in EMBEDDING_ATTACKS:
            raise field_error(self, "kind", f"one of {tuple(EMBEDDING_ATTACKS)}")
        if self.norm not in NORMS:
            raise field_error(self, "norm", f"one of {NORMS}")
        if self.scope not in SCOPES:
            raise field_error(self, "scope", f"one of {SCOPES}")
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)):
            raise TypeError(f"AttackConfig.eps must be a number, got eps={self.eps!r}.")
        if not (math.isfinite(self.eps) and self.eps >= 0):
            raise field_error(self, "eps", "a finite number >= 0")
        if self.step_size is not None:
            if isinstance(self.step_size, bool) or not isinstance(self.step_size, (int, float)):
                raise TypeError(
                    f"AttackConfig.step_size must be a number or None, got "
                    f"step_size={self.step_size!r}."
                )
            if not (math.isfinite(self.step_size) and self.step_size > 0):
                raise field_error(
                    self, "step_size", "a finite number > 0 (or None for 2.5 * eps / num_steps)"
                )
        if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, int):
            raise TypeError(
                f"AttackConfig.num_steps must be a Python int, got num_steps={self.num_steps!r}."
            )
        if self.num_steps < 1:
            raise field_error(self, "num_steps", "an int >= 1")
        if not isinstance(self.random_start, bool):
            raise TypeError(
                f"AttackConfig.random_start must be a bool, got random_start={self.random_start!r}."
            )
        if isinstance(self.targets, str):
            raise TypeError(
                f"AttackConfig.targets must be a tuple of names, got the string "
                f"targets={self.targets!r}; write targets=({self.targets!r},)."
            )
        object.__setattr__(self, "targets", tuple(self.targets))
        if not self.targets or not all(isinstance(t, str) for t in self.targets):
            raise field_error(self, "targets", "a non-empty tuple of embedding names")
        if len(set(self.targets)) != len(self.targets):
            raise field_error(self, "targets", "a tuple without repeated names")


AttackFn = Callable[..., Emb]


def make_attack(cfg: AttackConfig, embedding_names: Iterable[str]) -> AttackFn:
    """Builds ``attack_fn(loss_fn, emb, *, key, eps=None, step_size=None, init=None) ->
    delta`` from a config.

    ``eps`` (and ``step_size``) may be passed per call, traced: jit the caller with eps as
    an argument, or vmap over an eps grid, without recompiling. ``eps=None`` uses
    ``cfg.eps``. ``loss_fn(emb) -> [B]`` gives per-example losses; the attack maximises
    their sum. Only ``cfg.targets`` are perturbed (and differentiated); the other names of
    ``emb`` get zero delta. The returned ``delta`` is ``jax.lax.stop_gradient``-ed, so the
    training objective treats it as a constant (Danskin / APR convention). ``init`` (PGD
    only) is the starting perturbation, e.g. TRADES' ``0.001 * N(0, I)``.

    Args:
      cfg: the attack configuration.
      embedding_names: names the model's ``embed`` returns (``ModelFns.embedding_names``).

    Raises:
      ValueError: if ``cfg.targets`` names an embedding not in ``embedding_names``.
    """
    if not isinstance(cfg, AttackConfig):
        raise TypeError(f"make_attack: cfg must be an AttackConfig, got {type(cfg).__name__}.")
    if isinstance(embedding_names, str):
        raise TypeError(
            f"make_attack: embedding_names must be a sequence of names, got the "
            f"string {embedding_names!r}."
        )
    valid = tuple(embedding_names)
    unknown = [t for t in cfg.targets if t not in valid]
    if unknown:
        raise ValueError(
            f"make_attack: AttackConfig.targets={cfg.targets!r} names "
            f"{unknown}, which the model does not expose; valid names are "
            f"{valid}."
        )
    attack = EMBEDDING_ATTACKS[cfg.kind].fn
    settings = {
        "num_steps": cfg.num_steps,
        "random_start": cfg.random_start,
        "norm": cfg.norm,
        "scope": cfg.scope,
        "targets": cfg.targets,
    }

    def attack_fn(
        loss_fn: Callable[[Emb], Array],
        emb: Emb,
        *,
        key: PRNGKeyArray,
        eps: float | Scalar | None = None,
        step_size: float | Scalar | None = None,
        init: Emb | None = None,
    ) -> Emb:
        eps = cfg.eps if eps is None else eps
        step_size = cfg.step_size if step_size is None else step_size
        extra = {}
        if init is not None:
            if cfg.kind != "pgd":
                raise ValueError(
                    f"{cfg.kind}_attack: init= (a starting perturbation) applies to "
                    f"AttackConfig.kind='pgd' only, got kind={cfg.kind!r}."
                )
            extra["init"] = init
        return attack(loss_fn, emb, key=key, eps=eps, step_size=step_size, **settings, **extra)

    attack_fn.__name__ = f"{cfg.kind}_attack"
    # the ball its output must lie in (robustjax.attacks.budget.budget_excess checks it)
    attack_fn.budget = Budget(float(cfg.eps), cfg.norm, cfg.scope)
    return attack_fn
