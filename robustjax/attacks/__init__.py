"""Embedding-space attacks: ``attack(loss_fn, emb, *, key) -> delta``.

All attacks return ``jax.lax.stop_gradient(delta)``: the training objective treats the
perturbation as a constant (Danskin's theorem; the APR convention of He et al., 2018).
"""
from robustjax.attacks.config import KINDS, AttackConfig, make_attack
from robustjax.attacks.fgsm import fgsm
from robustjax.attacks.noise import gaussian_noise, uniform_noise
from robustjax.attacks.pgd import pgd
from robustjax.attacks.project import DISTS, NORMS, SCOPES, normalize, norms, project, random_ball

__all__ = ["DISTS", "KINDS", "NORMS", "SCOPES", "AttackConfig", "fgsm", "gaussian_noise",
           "make_attack", "normalize", "norms", "pgd", "project", "random_ball", "uniform_noise"]
