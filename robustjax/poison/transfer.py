"""Surrogate-guided fake profiles: fillers chosen from a trained surrogate's item embeddings.

A transfer attacker trains its own surrogate recommender ``S`` (any model of
``robustjax.models``) on the clean training data, then builds every fake profile from the
targets plus ``filler_size`` fillers drawn from ``S``'s view of which items "go with" the
targets. With ``e_i`` the embedding ``S`` scores item ``i`` with (:func:`item_embeddings`)
and ``c = mean_{t in T} e_t / |e_t|`` the targets' mean direction, the filler logits are
the cosine similarities scaled by a temperature::

    logit_i = cos(e_i, c) / temperature          (i not a target; targets get -inf)

Each fake user draws its fillers without replacement from ``softmax(logit)`` (Gumbel top-k,
:func:`robustjax.poison.heuristic.sample_fillers`, seeded by a NumPy ``Generator``), so
profiles are diverse (a low temperature approaches "the ``filler_size`` nearest items", a
high one the random attack) yet specific to the surrogate that ranked the items. The
profiles are then injected into the data of a *different* victim (another model class, or
the same class with another seed): the attack transfers when the victim promotes the
targets too.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from robustjax.poison.heuristic import _check, sample_fillers
from robustjax.poison.profiles import FakeProfiles


def item_embeddings(fns, params: Any, *, batch_size: int = 4096) -> np.ndarray:
    """float32 ``[I, D]``: the embedding each item is scored with, ``embed(...)["pos"]``.

    That is the item table row for MF, the concatenated GMF + MLP rows for NeuMF and the
    *propagated* (layer-mean) row for LightGCN (``get_tables`` gives its layer-0 rows).

    Args:
      fns: the surrogate's ``ModelFns``.
      params: its trained parameters.
      batch_size: items per ``embed`` call.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"item_embeddings: batch_size must be an int >= 1, got {batch_size!r}.")
    embed = jax.jit(
        lambda p, items: fns.embed(p, {"user": jnp.zeros_like(items), "pos": items})["pos"]
    )
    out = []
    for start in range(0, fns.num_items, batch_size):
        items = jnp.arange(start, min(start + batch_size, fns.num_items), dtype=jnp.int32)
        out.append(np.asarray(jax.device_get(embed(params, items)), np.float32))
    return np.concatenate(out, axis=0)


def similarity_logits(
    item_emb: Float[Array, "I D"] | np.ndarray, targets, *, temperature: float
) -> np.ndarray:
    """float64 ``[I]``: ``cos(e_i, c) / temperature`` (module docstring); targets -inf.

    Args:
      item_emb: ``[I, D]`` surrogate item embeddings.
      targets: int ``[T]`` target items.
      temperature: > 0; smaller concentrates the fillers on the most similar items.
    """
    emb = np.asarray(item_emb, np.float64)
    if emb.ndim != 2 or emb.shape[0] < 2:
        raise ValueError(
            f"similarity_logits: item_emb must be [I, D] with I >= 2, got shape {emb.shape}."
        )
    if not np.all(np.isfinite(emb)):
        raise ValueError(
            "similarity_logits: item_emb holds NaN or inf; the surrogate "
            "diverged (lower its learning rate)."
        )
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(
            f"similarity_logits: temperature must be a number > 0, got {temperature!r}."
        )
    targets = _check(targets, 1, 0, emb.shape[0])
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    centre = unit[targets].mean(axis=0)
    centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
    logits = unit @ centre / float(temperature)
    logits[targets] = -np.inf
    return logits


def filler_probabilities(item_emb, targets, *, temperature: float) -> np.ndarray:
    """float64 ``[I]``: ``softmax(similarity_logits)`` (0 at the targets), the probability
    of each item as the first filler draw."""
    logits = similarity_logits(item_emb, targets, temperature=temperature)
    w = np.exp(logits - logits.max())
    return w / w.sum()


def surrogate_guided_attack(
    item_emb: Float[Array, "I D"] | np.ndarray,
    targets,
    num_fake: int,
    filler_size: int,
    *,
    seed: int,
    temperature: float = 0.1,
    surrogate: str = "surrogate",
    params: dict | None = None,
) -> FakeProfiles:
    """Targets plus ``filler_size`` fillers per profile, drawn without replacement from
    the softmax over the surrogate's item similarity to the targets (module docstring).

    Args:
      item_emb: ``[I, D]`` item embeddings of the trained surrogate
        (:func:`item_embeddings`).
      targets: int ``[T]`` items to promote; every profile holds all of them.
      num_fake: F, the number of fake users.
      filler_size: fillers per profile, in ``[0, I - T]``.
      seed: NumPy ``Generator`` seed of the draws.
      temperature: softmax temperature over cosine similarities (> 0).
      surrogate: the surrogate's name; the attack is called ``"surrogate-<name>"``.
      params: extra JSON-serialisable parameters to record (e.g. the surrogate's seed).

    Returns:
      ``FakeProfiles`` ``[F, T + filler_size]`` (targets first), attack
      ``"surrogate-<surrogate>"``.
    """
    emb = np.asarray(item_emb)
    num_items = emb.shape[0] if emb.ndim == 2 else -1
    if num_items < 2:
        raise ValueError(
            f"surrogate_guided_attack: item_emb must be [I, D] with I >= 2, got shape {emb.shape}."
        )
    targets = _check(targets, num_fake, filler_size, num_items)
    probs = filler_probabilities(emb, targets, temperature=temperature)
    rng = np.random.default_rng(seed)
    fill = sample_fillers(probs, num_fake, filler_size, rng=rng, exclude=targets)
    items = np.concatenate([np.broadcast_to(targets, (num_fake, targets.size)), fill], axis=1)
    record = {
        "seed": seed,
        "filler_size": filler_size,
        "temperature": float(temperature),
        "surrogate": surrogate,
        **(params or {}),
    }
    return FakeProfiles(
        items.astype(np.int32), targets, num_items, f"surrogate-{surrogate}", record
    )


__all__ = [
    "filler_probabilities",
    "item_embeddings",
    "similarity_logits",
    "surrogate_guided_attack",
]
