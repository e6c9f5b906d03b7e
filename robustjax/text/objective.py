"""The label-free objective of the text attacks (:mod:`robustjax.text.attacks`).

A text model scores user ``u`` and item ``t`` from the item's text through the frozen
encoder and the item tower: ``s(u, t) = score(e_u, tower(encoder(text_t), t))``.

The attack users ``A_t`` are the users who never interacted with ``t`` in training. With
the model's clean scores and each user's training items removed,

    thr_u = the K-th highest clean score s_uj over items j != t   (fixed, a constant)

so ``t`` is in ``u``'s top K exactly when ``s_ut > thr_u`` (ties aside), and

    J_sigmoid(t)    = mean_{u in A_t} sigmoid((s_ut - thr_u) / tau)     a smooth HR@K
    J_logsigmoid(t) = mean_{u in A_t} log sigmoid((s_ut - thr_u) / tau)

with ``tau = temperature * mean_u std_j s_uj`` (the clean scores' spread, fixed). The
log-sigmoid margin is BPR-like: its gradient does not vanish for users far below their top
K, where the sigmoid's does. On ml-100k text-mf (8 targets, greedy with C = 64), the
sigmoid with ``tau`` at 0.5 reached a mean target HR@20 of 0.217 at 8 edits against 0.149
for the log-sigmoid at 1.0 (clean 0.005); the log-sigmoid lowered the mean rank more (270
vs 341): the sweep's default is the sigmoid at 0.5. Other items' scores do not depend on
``t``'s text (one item embedding changes), so the thresholds stay exact under the attack.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Bool, Float, Int

from robustjax.types import Array

OBJECTIVES = ("logsigmoid", "sigmoid")


class TextModel(NamedTuple):
    """The static (hashable) part of a text attack: what maps a text to target scores.

    Attributes:
      encoder: ``nnx.GraphDef`` of the :class:`~robustjax.text.TextEncoder`
        (``nnx.split(encoder)``; its state is passed apart, as ``enc_state``).
      item_from_text: ``(params, text_emb [M, H], items int32 [M]) -> [M, D]``, the tower
        (``ModelFns.text.item_from_text``).
      score: ``(params, user [..., D], item [..., D]) -> [...]`` (``ModelFns.score``).
      objective: one of ``OBJECTIVES``.
    """

    encoder: Any
    item_from_text: Callable
    score: Callable
    objective: str = "logsigmoid"


class TargetProblem(NamedTuple):
    """The arrays of one target's objective (module docstring).

    Attributes:
      users: float32 ``[N, D]`` user embeddings (all users: fixed shapes, one compile).
      thr: float32 ``[N]`` their clean K-th highest score over the other items.
      weight: float32 ``[N]`` 1 for the attack users ``A_t``, 0 for the others.
      tau: float32 ``[]`` temperature.
      item: int32 ``[]`` the target item id.
    """

    users: Float[Array, "N D"]
    thr: Float[Array, " N"]
    weight: Float[Array, " N"]
    tau: Float[Array, ""]
    item: Int[Array, ""]


def check_objective(objective: str, where: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(
            f"{where}: objective={objective!r} is unknown; expected one of {OBJECTIVES}."
        )


def make_problem(
    users_emb: Float[Array, "N D"],
    scores: Float[Array, "N I"],
    exclude: Bool[Array, "N I"],
    item: int,
    *,
    k: int,
    temperature: float = 1.0,
    valid: Bool[Array, " N"] | None = None,
) -> TargetProblem:
    """The objective's constants from the users' clean scores.

    Args:
      users_emb: float32 ``[N, D]`` user embeddings.
      scores: float32 ``[N, I]`` their clean scores of every item.
      exclude: bool ``[N, I]`` items removed from each user's ranking (training items).
      item: the target id ``t``; its own column is left out of the threshold.
      k: the cutoff K, ``1 <= k < I``.
      temperature: ``tau`` in units of the mean per-user score std, > 0.
      valid: bool ``[N]`` the attack users (default all); the others get weight 0, so
        every target has the same shapes.
    """
    num_users, num_items = scores.shape
    if not 1 <= k < num_items:
        raise ValueError(f"make_problem: k={k} must be in [1, {num_items - 1}] (items - 1).")
    if not temperature > 0:
        raise ValueError(f"make_problem: temperature={temperature!r} must be > 0.")
    valid = jnp.ones(num_users, bool) if valid is None else jnp.asarray(valid, bool)
    if valid.shape != (num_users,):
        raise ValueError(f"make_problem: valid has shape {valid.shape}; expected ({num_users},).")
    drop = exclude | (jnp.arange(num_items) == item)[None, :]
    thr = jax.lax.top_k(jnp.where(drop, -jnp.inf, scores), k)[0][:, -1]
    keep = ~drop
    cnt = jnp.maximum(jnp.sum(keep, axis=1), 1)
    mean = jnp.sum(jnp.where(keep, scores, 0.0), axis=1) / cnt
    var = jnp.sum(jnp.where(keep, jnp.square(scores - mean[:, None]), 0.0), axis=1) / cnt
    std = jnp.sum(jnp.where(valid, jnp.sqrt(var), 0.0)) / jnp.maximum(jnp.sum(valid), 1)
    tau = temperature * jnp.maximum(std, 1e-6)
    return TargetProblem(
        jnp.asarray(users_emb, jnp.float32),
        jnp.where(valid & jnp.isfinite(thr), thr, 0.0).astype(jnp.float32),
        valid.astype(jnp.float32),
        tau.astype(jnp.float32),
        jnp.asarray(item, jnp.int32),
    )


def objective_from_text(
    model: TextModel, params: Any, problem: TargetProblem, text_emb: Float[Array, "M H"]
) -> Float[Array, " M"]:
    """The objective (module docstring) of ``M`` candidate encodings of the target's text."""
    m = text_emb.shape[0]
    e = model.item_from_text(params, text_emb, jnp.full((m,), problem.item, jnp.int32))
    s = model.score(params, problem.users[None, :, :], e[:, None, :])  # [M, N]
    z = (s - problem.thr[None, :]) / problem.tau
    v = jax.nn.log_sigmoid(z) if model.objective == "logsigmoid" else jax.nn.sigmoid(z)
    w = problem.weight[None, :]
    return jnp.sum(v * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0)


@functools.partial(jax.jit, static_argnames="model")
def text_objective(
    model: TextModel,
    enc_state: Any,
    params: Any,
    problem: TargetProblem,
    ids: Int[Array, "M T"],
    mask: Int[Array, "M T"],
) -> tuple[Float[Array, " M"], Float[Array, "M H"]]:
    """Objective and encoder output ``[M, H]`` of ``M`` tokenized texts (M encoder passes)."""
    emb = nnx.merge(model.encoder, enc_state)(ids, mask)
    return objective_from_text(model, params, problem, emb), emb


__all__ = [
    "OBJECTIVES",
    "TargetProblem",
    "TextModel",
    "check_objective",
    "make_problem",
    "objective_from_text",
    "text_objective",
]
