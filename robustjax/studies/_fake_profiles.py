"""What the fake-profile studies (poisoning, transfer) share: the attack budget of their
configs, the fake users and targets it gives, and the unrolled attack built from their
fields."""

import dataclasses

import numpy as np
from jaxtyping import Array

from robustjax._config_checks import check_int_fields
from robustjax.data import SplitData
from robustjax.poison.heuristic import pick_targets
from robustjax.poison.profiles import FakeProfiles
from robustjax.poison.unrolled import UnrolledConfig, unrolled_attack


@dataclasses.dataclass(frozen=True, kw_only=True)
class FakeProfileBudget:
    """The fake-profile budget fields of a study config (``PoisonConfig``,
    ``TransferConfig``); a subclass calls :meth:`check_budget` from ``__post_init__``.

    Attributes:
      fake_fraction: fake users as a fraction of the real users, in (0, 1) (at least one).
      filler_size: filler items per fake profile, besides all targets.
      num_targets: how many target items are drawn.
      target_band: the targets' training-popularity band: ``"head"``, ``"tail"`` or
        ``"any"`` (:func:`~robustjax.poison.pick_targets`).
      k: the cutoff of the target metrics (target HR@K, NDCG@K) and of the unrolled
        attack's margin.
    """

    fake_fraction: float = 0.01
    filler_size: int = 30
    num_targets: int = 5
    target_band: str = "head"
    k: int = 50

    def check_budget(self) -> None:
        """Raises ValueError naming the first bad budget field."""
        name = type(self).__name__
        if not 0.0 < self.fake_fraction < 1.0:
            raise ValueError(
                f"{name}.fake_fraction must lie in (0, 1), got {self.fake_fraction!r}."
            )
        check_int_fields(self, ("filler_size", "num_targets", "k"))
        if self.target_band not in ("head", "tail", "any"):
            raise ValueError(
                f"{name}.target_band must be 'head', 'tail' or 'any', got {self.target_band!r}."
            )


def fake_budget(cfg: FakeProfileBudget, clean: SplitData, *, seed: int) -> tuple[int, np.ndarray]:
    """``(num_fake, targets)``: ``fake_fraction`` of ``clean``'s users (at least one) and
    ``num_targets`` items of ``target_band`` drawn with ``seed`` (int32, sorted)."""
    num_fake = max(1, round(cfg.fake_fraction * clean.num_users))
    targets = pick_targets(clean.train, cfg.num_targets, cfg.target_band, seed=seed)
    return num_fake, targets


def unrolled_profiles(
    cfg: FakeProfileBudget,
    clean: SplitData,
    targets: np.ndarray,
    num_fake: int,
    *,
    key: Array,
    progress: bool,
    **settings,
) -> FakeProfiles:
    """The unrolled attack on ``clean.train`` with the study's ``filler_size``,
    ``pretrain_steps``, ``unroll_steps``, ``outer_steps`` and ``surrogate_lr`` (the
    surrogate's Adam rate), the margin cutoff ``k`` capped at the non-target items, and
    ``settings`` (further :class:`~robustjax.poison.UnrolledConfig` fields)."""
    config = UnrolledConfig(
        pretrain_steps=cfg.pretrain_steps,
        unroll_steps=cfg.unroll_steps,
        outer_steps=cfg.outer_steps,
        inner_lr=cfg.surrogate_lr,
        k=min(cfg.k, clean.num_items - targets.size),
        **settings,
    )
    return unrolled_attack(
        clean.train, targets, num_fake, cfg.filler_size, key=key, config=config, progress=progress
    )
