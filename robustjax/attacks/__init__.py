"""Embedding-space attacks: ``attack(loss_fn, emb, *, key) -> delta``.

All attacks return ``jax.lax.stop_gradient(delta)``: the training objective treats the
perturbation as a constant (Danskin's theorem; the APR convention of He et al., 2018).
"""

from robustjax.attacks.config import KINDS, AttackConfig, make_attack
from robustjax.attacks.fgsm import fgsm
from robustjax.attacks.noise import gaussian_noise, uniform_noise
from robustjax.attacks.pgd import pgd
from robustjax.attacks.project import DISTS, NORMS, SCOPES, normalize, norms, project, random_ball
from robustjax.attacks.sequence import (
    SEQUENCE_ATTACKS,
    SUBSTITUTION_METHODS,
    HullPerturbation,
    apply_sequence_attack,
    convex_hull_perturbation,
    delete_gradient,
    delete_random,
    insert_gradient,
    insert_random,
    is_left_padded,
    substitute_gradient,
    substitute_random,
    truncate_recent,
)

__all__ = [
    "DISTS",
    "KINDS",
    "NORMS",
    "SCOPES",
    "SEQUENCE_ATTACKS",
    "SUBSTITUTION_METHODS",
    "AttackConfig",
    "HullPerturbation",
    "apply_sequence_attack",
    "convex_hull_perturbation",
    "delete_gradient",
    "delete_random",
    "fgsm",
    "gaussian_noise",
    "insert_gradient",
    "insert_random",
    "is_left_padded",
    "make_attack",
    "normalize",
    "norms",
    "pgd",
    "project",
    "random_ball",
    "substitute_gradient",
    "substitute_random",
    "truncate_recent",
    "uniform_noise",
]
