"""Training objectives from configuration: clean, APR, PGD-AT, fast, TRADES, VAT, free AT.

This module only wires configs to the building blocks of :mod:`robustjax.losses` and
:mod:`robustjax.attacks`; writing a new objective by hand is a ``combine(**terms)`` call
(see the README).
"""

import dataclasses
from collections.abc import Callable
from typing import Any

from robustjax._adversarial_terms import adversarial_terms
from robustjax._config_checks import check_choice_fields
from robustjax.attacks import AttackConfig, make_attack
from robustjax.attacks.budget import BUDGETS, relative_budget
from robustjax.losses import Term, clean_term, combine, emb_loss, l2_term
from robustjax.models.base import ModelFns


@dataclasses.dataclass(frozen=True)
class FreeAT:
    """ "Free" adversarial training (``robustjax.train.free``): each batch replayed
    ``replays`` times, one ascent step on the perturbation per replay. The fields are the
    keyword arguments of ``make_free_train_epoch`` besides ``tx`` and ``sampler``."""

    fns: ModelFns
    loss_on_emb: Callable
    replays: int
    eps: float
    step_size: float | None
    names: tuple[str, ...]
    norm: str
    scope: str
    l2: float = 0.0  # weight of the batch-level L2 of the clean embeddings


@dataclasses.dataclass(frozen=True)
class ObjectivePhase:
    """An objective used from ``start_epoch`` (0-based) until the next phase starts; the
    trainer turns it into an epoch. ``free`` replaces the objective by free AT."""

    start_epoch: int
    objective: Callable | None
    name: str = "train"
    free: FreeAT | None = None
    # arrays the objective reads besides params and batch (a pytree; method "text": the
    # frozen encoder and item tokens, robustjax.losses.text_adversarial.TextAdvInputs):
    # a jit argument of the compiled epoch, seen as batch["inputs"]; never checkpointed
    inputs: Any = None


METHODS = ("none", "apr", "pgd", "fast", "trades", "vat", "free", "hull", "text")
PAIR_ADV_METHODS = ("none", "apr", "pgd", "fast", "trades", "vat", "free")
TEXT_ADV_METHODS = ("text",)  # text pair models (ModelFns.text: text-mf) only
RELATIVE_METHODS = ("apr", "pgd", "fast", "text")  # whose attack the relative budget can wrap
SEQUENCE_ADV_METHODS = ("none", "apr", "pgd", "hull")
APR_MODES = ("per-lookup", "published")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdvConfig:
    """Adversarial training. ``method="none"`` trains the clean objective only.

    Attributes:
      method: one of ``METHODS``; pair models take ``PAIR_ADV_METHODS`` (text pair models
        also ``TEXT_ADV_METHODS``), sequence models
        ``SEQUENCE_ADV_METHODS`` (``hull``: soft item substitutions in the convex hull of
        item embeddings, :mod:`robustjax.losses.sequence`).
      eps: perturbation radius (norm/scope below).
      weight: weight of the adversarial term (APR's lambda, TRADES' beta, VAT's alpha).
      warm_epochs: clean epochs before the adversarial phase (APR needs a warm start: from
        scratch, rows of norm ~0.3 are swamped by eps 0.5).
      num_steps: PGD steps (``pgd``/``trades``); static.
      step_size: PGD step; None = ``2.5 * eps / num_steps`` (``fast``: ``1.25 * eps``).
      budget_kind: ``absolute`` (``||delta|| <= eps`` per scope unit, the APR paper's) or
        ``relative`` (``||delta|| <= eps * ||x||``: invariant to rescalings that leave the
        scores unchanged, :mod:`robustjax.attacks.budget`); relative applies to apr
        (per-lookup), pgd and fast, through the generic attack path.
      random_start: ``pgd`` only: start each attack uniformly in the eps ball, as Madry
        et al. (on by default); ``False`` starts at zero (the behaviour before this option,
        and the one the span path below needs). ``fast`` always starts at random, TRADES
        at ``0.001 * N(0, I)``, APR/VAT/free have no start to choose; for them
        ``ExperimentConfig.validate`` rejects ``random_start=False``.
      norm, scope: the ball, see :func:`robustjax.attacks.project`.
      targets: embeddings to perturb. Sequence models perturb their input sequence
        (``("seq",)``); the pair default ``("user", "pos", "neg")`` reads as that.
      apr_mode: ``"per-lookup"`` (each gathered embedding its own delta) or ``"published"``
        (delta per table row from the batch-summed gradient, sum-reduced loss).
      fraction: share of each batch that is perturbed (adversarial sample injection).
      replays: ``free`` AT: times each batch is replayed.
      power_iterations, xi: VAT's power iteration.
      text_items_per_step: ``text`` (text pair models only): adversarial training on the
        word embeddings of the item texts (:mod:`robustjax.losses.text_adversarial`), with
        this many distinct items of each batch attacked per step (FGSM, or PGD-``num_steps``
        from zero when ``text_attack="pgd"``; L2 per token row, ``budget_kind`` as above).
      text_attack: ``"fgsm"`` or ``"pgd"`` (``text`` only).
      budget, num_candidates: ``hull``: positions substituted per sequence, random items in
        each position's hull besides the original (``step_size``: the ascent step on the
        hull weights, default 1).
      span: for models whose score is a dot product (``ModelFns.bilinear``: MF, LightGCN),
        solve L2 zero-start attacks (APR; PGD with ``random_start=False``) in the span of
        each example's embeddings
        from the batch's Gram matrix (:mod:`robustjax.losses.gram`): the same objective to
        rounding, at about the cost of a clean step. ``False`` forces the generic path.
    """

    method: str = "none"
    eps: float = 0.5
    weight: float = 1.0
    warm_epochs: int = 0
    num_steps: int = 10
    step_size: float | None = None
    norm: str = "l2"
    scope: str = "row"
    targets: tuple[str, ...] = ("user", "pos", "neg")
    apr_mode: str = "per-lookup"
    fraction: float = 1.0
    replays: int = 4
    power_iterations: int = 1
    xi: float = 1e-3
    span: bool = True
    random_start: bool = True
    budget_kind: str = "absolute"
    budget: int = 2
    num_candidates: int = 16
    text_items_per_step: int = 32
    text_attack: str = "fgsm"

    def __post_init__(self):
        check_choice_fields(self, (("method", METHODS), ("apr_mode", APR_MODES)))
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"AdvConfig.fraction must lie in [0, 1], got {self.fraction!r}.")
        for name in ("warm_epochs", "weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"AdvConfig.{name} must be >= 0, got {getattr(self, name)!r}.")
        if self.text_attack not in ("fgsm", "pgd"):
            raise ValueError(
                f"AdvConfig.text_attack={self.text_attack!r} is unknown; expected 'fgsm' or 'pgd'."
            )
        for name in ("replays", "power_iterations", "budget", "num_candidates",
                     "text_items_per_step"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"AdvConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        if not isinstance(self.random_start, bool):
            raise TypeError(
                f"AdvConfig.random_start must be a bool, got random_start={self.random_start!r}."
            )
        check_choice_fields(self, (("budget_kind", BUDGETS),))
        if self.budget_kind == "relative" and (
            self.method not in RELATIVE_METHODS or self.apr_mode != "per-lookup"
        ):
            raise ValueError(
                f"AdvConfig.budget_kind='relative' applies to {RELATIVE_METHODS} (apr "
                f"per-lookup); got method={self.method!r}, apr_mode={self.apr_mode!r}."
            )
        self.attack_config()  # validates eps, num_steps, step_size, norm, scope, targets

    def attack_config(self) -> AttackConfig:
        """The inner attack of the method: FGSM for APR, PGD-K otherwise (from a random
        start for ``pgd`` unless ``random_start=False``; one random-start step of 1.25 eps
        for ``fast``; TRADES maximises its KL term with the same PGD, from its own
        ``0.001 * N(0, I)`` start)."""
        kind = "fgsm" if self.method == "apr" else "pgd"
        num_steps, step_size = self.num_steps, self.step_size
        random_start = self.method == "pgd" and self.random_start
        if self.method == "fast":
            num_steps, random_start = 1, True
            step_size = 1.25 * self.eps if step_size is None else step_size
        return AttackConfig(
            kind=kind,
            eps=self.eps,
            step_size=step_size,
            num_steps=num_steps,
            norm=self.norm,
            scope=self.scope,
            random_start=random_start,
            targets=self.targets,
        )


def build_phases(
    fns: ModelFns, *, loss: str, l2: float, adv: AdvConfig, epochs: int, text_inputs=None
) -> list[ObjectivePhase]:
    """Phases of a run: a clean phase, then (from ``adv.warm_epochs``) the adversarial one.

    ``text_inputs`` (``method="text"`` only, required there): the
    :class:`robustjax.losses.text_adversarial.TextAdvInputs` of the run's item texts."""
    loss_on_emb = emb_loss(fns, loss)
    clean = {loss: Term(clean_term(fns, loss))}
    if l2:
        clean["l2"] = Term(l2_term(fns), l2)
    phases = [ObjectivePhase(0, combine(**clean), "clean")]
    if adv.method == "none":
        return phases
    if adv.method not in PAIR_ADV_METHODS + TEXT_ADV_METHODS:
        raise ValueError(
            f"AdvConfig.method={adv.method!r} applies to sequence models only; pair models "
            f"take one of {PAIR_ADV_METHODS}."
        )
    if adv.warm_epochs >= epochs:
        raise ValueError(
            f"AdvConfig.warm_epochs={adv.warm_epochs} leaves no adversarial "
            f"epoch out of train.epochs={epochs}."
        )
    if adv.method == "text":
        phase = _text_phase(fns, adv, clean, text_inputs, loss=loss)
    else:
        attack = _pair_attack(fns, adv)
        if adv.method == "free":
            phase = _free_phase(fns, loss_on_emb, adv, l2)
        else:
            terms = adversarial_terms(fns, loss, l2, adv, attack, clean)
            phase = ObjectivePhase(adv.warm_epochs, combine(**terms), adv.method)
    return phases + [phase] if adv.warm_epochs else [phase]


def _pair_attack(fns: ModelFns, adv: AdvConfig):
    """The configured attack on the pair model's embeddings (relative budget included)."""
    attack_cfg = adv.attack_config()
    unknown = [t for t in adv.targets if t not in fns.embedding_names]
    if unknown:
        raise ValueError(
            f"AdvConfig.targets={adv.targets!r} names {unknown}, which the model "
            f"does not expose; valid names are {fns.embedding_names}."
        )
    attack = make_attack(attack_cfg, fns.embedding_names)
    if adv.budget_kind == "relative":  # ||delta|| <= eps * ||row|| per scope unit
        attack = relative_budget(attack, norm=adv.norm, scope=adv.scope)
    return attack


def _free_phase(fns: ModelFns, loss_on_emb, adv: AdvConfig, l2: float) -> ObjectivePhase:
    """The phase of ``method="free"``: no objective, the trainer runs free AT's epoch."""
    free = FreeAT(
        fns,
        loss_on_emb,
        replays=adv.replays,
        eps=adv.eps,
        step_size=adv.step_size,
        names=adv.targets,
        norm=adv.norm,
        scope=adv.scope,
        l2=l2,
    )
    return ObjectivePhase(adv.warm_epochs, None, "free", free=free)


def _text_phase(fns: ModelFns, adv: AdvConfig, clean: dict, inputs, *, loss: str):
    """The phase of ``method="text"``: clean loss (+ L2) + weight * the loss at the
    adversarial point of the item texts' word embeddings."""
    from robustjax.losses.text_adversarial import TextAdvInputs, text_adversarial_term

    if fns.text is None:
        raise ValueError(
            "AdvConfig.method='text' perturbs the word embeddings of item texts; it applies to "
            "text pair models (model.name='text-mf'), but this model has no text tower "
            "(ModelFns.text is None). Pick another method, e.g. 'apr'."
        )
    if not isinstance(inputs, TextAdvInputs):
        raise TypeError(
            f"build_phases: AdvConfig.method='text' needs text_inputs=TextAdvInputs (from "
            f"robustjax.losses.text_adversarial.make_text_adv_inputs), got "
            f"{type(inputs).__name__}."
        )
    term = text_adversarial_term(
        fns,
        inputs.graphdef,
        loss=loss,
        eps=adv.eps,
        items_per_step=adv.text_items_per_step,
        kind=adv.text_attack,
        num_steps=adv.num_steps,
        step_size=adv.step_size,
        budget_kind=adv.budget_kind,
    )
    terms = {**clean, "text": Term(term, adv.weight)}
    return ObjectivePhase(adv.warm_epochs, combine(**terms), "text", inputs=inputs)
