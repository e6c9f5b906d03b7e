"""Embedding-space attacks: ``attack(loss_fn, emb, *, key) -> delta``, and history attacks.

Every attack name comes from the registries ``EMBEDDING_ATTACKS`` and ``HISTORY_ATTACKS``
(``robustjax.attacks.registry``).

All attacks return ``jax.lax.stop_gradient(delta)``: the training objective treats the
perturbation as a constant (Danskin's theorem; the APR convention of He et al., 2018).
"""

from robustjax.attacks.budget import (
    BUDGET_TOLERANCE,
    BUDGETS,
    Budget,
    budget_excess,
    relative_budget,
)
from robustjax.attacks.config import AttackConfig, make_attack
from robustjax.attacks.fgsm import fgsm
from robustjax.attacks.noise import gaussian_noise, uniform_noise
from robustjax.attacks.pgd import pgd
from robustjax.attacks.project import DISTS, NORMS, SCOPES, normalize, norms, project, random_ball
from robustjax.attacks.registry import (
    EMBEDDING_ATTACKS,
    HISTORY_ATTACKS,
    EmbeddingAttack,
    HistoryAttack,
    embedding_kinds,
    history_kinds,
)
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
    "BUDGETS",
    "BUDGET_TOLERANCE",
    "DISTS",
    "EMBEDDING_ATTACKS",
    "HISTORY_ATTACKS",
    "NORMS",
    "SCOPES",
    "SEQUENCE_ATTACKS",
    "SUBSTITUTION_METHODS",
    "AttackConfig",
    "Budget",
    "EmbeddingAttack",
    "HistoryAttack",
    "HullPerturbation",
    "apply_sequence_attack",
    "budget_excess",
    "convex_hull_perturbation",
    "delete_gradient",
    "delete_random",
    "embedding_kinds",
    "fgsm",
    "gaussian_noise",
    "history_kinds",
    "insert_gradient",
    "insert_random",
    "is_left_padded",
    "make_attack",
    "normalize",
    "norms",
    "pgd",
    "project",
    "random_ball",
    "relative_budget",
    "substitute_gradient",
    "substitute_random",
    "truncate_recent",
    "uniform_noise",
]
