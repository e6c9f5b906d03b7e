"""The terms of the adversarial phase of pair models, one builder per ``AdvConfig.method``.

:func:`adversarial_terms` wires an :class:`robustjax.objectives.AdvConfig` (the phase
:func:`robustjax.objectives.build_phases` builds) to the terms of :mod:`robustjax.losses`.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

from robustjax.losses import Term, clean_term, emb_loss, l2_term
from robustjax.losses.adversarial import (
    adversarial_term,
    apr_pair_term,
    apr_published_term,
    injected_term,
    summed,
    trades_term,
    vat_term,
)
from robustjax.losses.gram import span_adversarial_term
from robustjax.models.base import ModelFns

if TYPE_CHECKING:
    from robustjax.objectives import AdvConfig


def adversarial_terms(fns: ModelFns, loss: str, l2: float, adv: "AdvConfig", attack, clean):
    """The named terms of the adversarial phase (``clean`` holds the clean loss and L2).

    Three exact implementations of APR are chosen here, in this order: the span path of
    dot-product models (:mod:`robustjax.losses.gram`, ``adv.span``; it also takes PGD-AT
    with ``random_start=False``, never a random start), APR as published
    (``adv.apr_mode``), and the pair term that reuses the FGSM gradient for the clean
    loss; everything else is the generic ``adversarial_term`` of the configured attack.
    """
    if adv.fraction < 1.0:
        return _injected_terms(fns, loss, l2, adv, attack)
    if _span_applies(fns, adv):
        terms = _span_terms(fns, loss, adv)
    else:
        terms = _TERM_BUILDERS[adv.method](fns, loss, adv, attack, clean)
    if l2 and "l2" not in terms:
        terms["l2"] = Term(l2_term(fns), l2)
    return terms


def _injected_terms(fns: ModelFns, loss: str, l2: float, adv: "AdvConfig", attack) -> dict:
    """``adv.fraction < 1``: adversarial sample injection by replacement
    (:func:`robustjax.losses.adversarial.injected_term`), one term in place of the clean
    and the adversarial ones; ``adv.weight`` weighs the replaced examples."""
    if adv.method not in ("apr", "pgd", "fast") or adv.apr_mode != "per-lookup":
        raise ValueError(
            f"AdvConfig.fraction={adv.fraction} (adversarial sample injection) applies to "
            f"apr (per-lookup), pgd and fast; got method={adv.method!r}, "
            f"apr_mode={adv.apr_mode!r}."
        )
    term = injected_term(
        fns,
        emb_loss(fns, loss),
        attack,
        fraction=adv.fraction,
        weight=adv.weight,
        check_budget=True,  # every attack's output is checked against its ball
    )
    terms = {f"{adv.method}_injected": Term(term)}
    if l2:
        terms["l2"] = Term(l2_term(fns), l2)
    return terms


def _span_applies(fns: ModelFns, adv: "AdvConfig") -> bool:
    """Whether the span path of :mod:`robustjax.losses.gram` solves the attack exactly."""
    return (
        adv.span
        and adv.budget_kind == "absolute"
        and fns.bilinear
        and adv.method in ("apr", "pgd")
        and not adv.attack_config().random_start  # the span path needs a zero start
        and adv.norm == "l2"
        and adv.apr_mode == "per-lookup"
        and set(adv.targets) <= {"user", "pos", "neg"}
    )


def _span_terms(fns: ModelFns, loss: str, adv: "AdvConfig") -> dict:
    """Clean and adversarial loss as one term, exact in the span of each example."""
    name = adv.method
    term = span_adversarial_term(fns, loss, adv.attack_config(), clean_name=loss, adv_name=name)
    return {f"{name}_span": Term(term, {loss: 1.0, name: adv.weight})}


def _apr_terms(fns: ModelFns, loss: str, adv: "AdvConfig", attack, clean) -> dict:
    """APR as published, or (L2 per row, absolute budget) the pair term: the same objective
    as the generic branch, with the FGSM gradient reused as the clean term's backward pass
    (2 forward/backward passes instead of 3); else the generic attack term."""
    loss_on_emb = emb_loss(fns, loss)
    if adv.apr_mode == "published":
        published = apr_published_term(fns, loss_on_emb, eps=adv.eps, names=adv.targets)
        return {
            loss: Term(summed(clean_term(fns, loss))),
            "apr": Term(summed(published), adv.weight),
        }
    if adv.norm == "l2" and adv.scope == "row" and adv.budget_kind == "absolute":
        pair = apr_pair_term(
            fns, loss_on_emb, eps=adv.eps, clean_name=loss, adv_name="apr", names=adv.targets
        )
        return {"apr_pair": Term(pair, {loss: 1.0, "apr": adv.weight})}
    return _attack_terms(fns, loss, adv, attack, clean)


def _attack_terms(fns: ModelFns, loss: str, adv: "AdvConfig", attack, clean) -> dict:
    """The clean terms plus the loss at the configured attack's point (apr, pgd, fast)."""
    term = adversarial_term(fns, emb_loss(fns, loss), attack, check_budget=True)
    return {**clean, adv.method: Term(term, adv.weight)}


def _trades_terms(fns: ModelFns, loss: str, adv: "AdvConfig", attack, clean) -> dict:
    """The clean terms plus TRADES' KL term, maximised by the configured attack."""
    return {**clean, "trades": Term(trades_term(fns, attack, check_budget=True), adv.weight)}


def _vat_terms(fns: ModelFns, loss: str, adv: "AdvConfig", attack, clean) -> dict:
    """The clean terms plus VAT's KL term (its own power iteration, not ``attack``)."""
    term = vat_term(
        fns,
        eps=adv.eps,
        names=adv.targets,
        xi=adv.xi,
        power_iterations=adv.power_iterations,
        norm=adv.norm,
        scope=adv.scope,
    )
    return {**clean, "vat": Term(term, adv.weight)}


# the term builders of the adversarial phase by method (after the injection and span paths)
_TERM_BUILDERS: dict[str, Callable[..., dict]] = {
    "apr": _apr_terms,
    "pgd": _attack_terms,
    "fast": _attack_terms,
    "trades": _trades_terms,
    "vat": _vat_terms,
}
