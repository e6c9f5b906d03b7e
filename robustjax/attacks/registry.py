"""The attack registries: one dict per attack family, the single source of attack names.

- ``EMBEDDING_ATTACKS``: perturbations of embedding tensors inside an eps ball
  (``make_attack``, the ``AttackConfig.kind`` values, the embedding kinds of both sweeps).
- ``HISTORY_ATTACKS`` (defined in ``robustjax.attacks.sequence``): edits of item
  histories with an integer budget (``apply_sequence_attack``, the history kinds of the
  sequential sweep).
- ``TEXT_ATTACKS``: rewrites of a target item's text for text-aware models
  (``robustjax.text.attacks``, imported when first called; ``robustjax sweep --attack
  text_*`` on text-mf runs).

Config validation, ``robustjax sweep --attack`` choices and the sweep dispatch all read
these dicts when they run, so a new attack is one new entry::

    EMBEDDING_ATTACKS["my_attack"] = EmbeddingAttack(my_attack_fn)

An embedding attack's ``fn(loss_fn, emb, *, key, eps, step_size, num_steps, random_start,
norm, scope, targets) -> delta`` takes every ``AttackConfig`` setting as a keyword (and
ignores those it does not use); ``eps`` and ``step_size`` may be traced. ``pgd`` also
takes ``init=`` (a starting perturbation), which ``make_attack`` passes only when given.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from robustjax.attacks import _tree
from robustjax.attacks.fgsm import fgsm
from robustjax.attacks.noise import gaussian_noise, uniform_noise
from robustjax.attacks.pgd import pgd
from robustjax.attacks.sequence import HISTORY_ATTACKS, HistoryAttack
from robustjax.types import Emb


class EmbeddingAttack(NamedTuple):
    """An entry of ``EMBEDDING_ATTACKS``.

    Attributes:
      fn: ``fn(loss_fn, emb, *, key, eps, step_size, num_steps, random_start, norm, scope,
        targets) -> delta`` shaped like ``emb``, ``stop_gradient``-ed.
      sweep: offered by ``robustjax sweep`` (False for baselines such as ``none``).
    """

    fn: Callable[..., Emb]
    sweep: bool = True


def _gaussian(loss_fn, emb, *, key, eps, norm, scope, targets, **_):
    return gaussian_noise(loss_fn, emb, eps=eps, key=key, norm=norm, scope=scope, targets=targets)


def _uniform(loss_fn, emb, *, key, eps, norm, scope, targets, **_):
    return uniform_noise(loss_fn, emb, eps=eps, key=key, norm=norm, scope=scope, targets=targets)


def _fgsm(loss_fn, emb, *, key, eps, norm, scope, targets, **_):
    return fgsm(loss_fn, emb, eps=eps, key=key, norm=norm, scope=scope, targets=targets)


def _pgd(
    loss_fn, emb, *, key, eps, step_size, num_steps, random_start, norm, scope, targets, init=None
):
    return pgd(
        loss_fn,
        emb,
        eps=eps,
        key=key,
        num_steps=num_steps,
        step_size=step_size,
        random_start=random_start,
        norm=norm,
        scope=scope,
        targets=targets,
        init=init,
    )


def _none(loss_fn, emb, *, targets, **_):
    del loss_fn
    _tree.resolve_targets(emb, targets, where="attack(kind='none')")
    return jax.tree.map(jnp.zeros_like, emb)


EMBEDDING_ATTACKS: dict[str, EmbeddingAttack] = {
    "gaussian": EmbeddingAttack(_gaussian),
    "uniform": EmbeddingAttack(_uniform),
    "fgsm": EmbeddingAttack(_fgsm),
    "pgd": EmbeddingAttack(_pgd),
    "none": EmbeddingAttack(_none, sweep=False),
}


class TextAttack(NamedTuple):
    """An entry of ``TEXT_ATTACKS``.

    Attributes:
      fn: discrete kinds: ``fn(model, enc_state, params, problem, ids [T], mask [T],
        budget, *, editable, allowed, key, rescore) -> TextEdit``; continuous kinds:
        :func:`robustjax.text.attacks.perturb_word_embeddings` with ``kind`` bound.
      discrete: the level is a token budget (an integer), not a radius.
      seeded: the outcome depends on ``key`` (a sweep runs every seed; the others run once).
    """

    fn: Callable
    discrete: bool = True
    seeded: bool = False


def _text(name: str, **bound) -> Callable:
    """``robustjax.text.attacks.<name>`` looked up at call time (it imports this module)."""

    def fn(*args, **kwargs):
        from robustjax.text import attacks

        return getattr(attacks, name)(*args, **bound, **kwargs)

    fn.__name__ = name
    return fn


TEXT_ATTACKS: dict[str, TextAttack] = {
    "text_substitute_gradient": TextAttack(_text("gradient_entry")),
    "text_substitute_random": TextAttack(_text("random_entry"), seeded=True),
    "text_fgsm": TextAttack(_text("perturb_word_embeddings", kind="fgsm"), discrete=False),
    "text_pgd": TextAttack(_text("perturb_word_embeddings", kind="pgd"), discrete=False),
}


def embedding_kinds(*, sweep: bool = False) -> tuple[str, ...]:
    """Names of the registered embedding attacks (``sweep=True``: those sweeps offer)."""
    return tuple(k for k, a in EMBEDDING_ATTACKS.items() if a.sweep or not sweep)


def history_kinds() -> tuple[str, ...]:
    """Names of the registered history (discrete sequence) attacks."""
    return tuple(HISTORY_ATTACKS)


def text_kinds() -> tuple[str, ...]:
    """Names of the registered text (item-text rewriting) attacks."""
    return tuple(TEXT_ATTACKS)


__all__ = [
    "EMBEDDING_ATTACKS",
    "HISTORY_ATTACKS",
    "TEXT_ATTACKS",
    "EmbeddingAttack",
    "HistoryAttack",
    "TextAttack",
    "embedding_kinds",
    "history_kinds",
    "text_kinds",
]
