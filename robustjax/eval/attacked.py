"""Evaluation-time attacks on a trained model's embedding tables.

The threat model of the APR paper's robustness study: the attacker perturbs the user and
item embedding tables (each row inside an eps ball) to maximise the training loss over one
sampled epoch of training triples (every training pair with a fresh uniform negative);
the perturbed model is then evaluated by full ranking like the clean one. ``eps`` is
traced, so one compiled attack serves every level of a sweep: :func:`make_level_attack`
perturbs the tables for every level of a :class:`robustjax.eval.sweep.SweepConfig` in one
compiled call, its pairs in chunks where all of them at once would pass the sweep's memory
bound (:func:`per_example_chunked`).
"""

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.attacks import AttackConfig, make_attack
from robustjax.attacks.budget import relative_budget
from robustjax.data.negatives import TrainArrays, sample_negatives, sample_uniform
from robustjax.losses.pairwise import bpr
from robustjax.losses.terms import emb_loss
from robustjax.models.base import ModelFns
from robustjax.types import Array, Params

if TYPE_CHECKING:
    from robustjax.eval.sweep import SweepConfig

_TABLE_OF = {"user": "user", "pos": "item", "neg": "item", "item": "item"}


def table_targets(fns: ModelFns, targets: tuple[str, ...]) -> tuple[str, ...]:
    """Maps embedding names (``user``/``pos``/``neg``) or table names to table names."""
    if fns.get_tables is None:
        raise ValueError(
            "table attacks need a model with embedding tables (ModelFns."
            "get_tables); this model has none."
        )
    out = []
    for t in targets:
        table = fns.lookups[t][0] if t in fns.lookups else _TABLE_OF.get(t, t)
        if table not in fns.table_sizes:
            raise ValueError(
                f"attack target {t!r} is neither an embedding lookup "
                f"{sorted(fns.lookups)} nor a table {sorted(fns.table_sizes)}."
            )
        if table not in out:
            out.append(table)
    return tuple(out)


def chunk_examples(num_examples: int, bytes_per_example: int, budget_bytes: int) -> int:
    """The examples per chunk that keep ``bytes_per_example * chunk`` within
    ``budget_bytes`` (at least 1024), or ``num_examples`` when all of them fit."""
    fit = max(1024, budget_bytes // max(1, bytes_per_example))
    return min(num_examples, fit)


def per_example_chunked(per_example: Callable[[dict], Array], batch: dict, chunk: int) -> Array:
    """``per_example(batch) -> [B]`` computed ``chunk`` examples at a time, each chunk
    recomputed in the backward pass (``jax.checkpoint``): the intermediates (gathered
    embedding rows and their cotangents) take ``O(chunk)`` memory instead of ``O(B)``.
    Values and gradients equal one call's to float rounding (the compiled loop may sum in
    another order; gradients accumulate chunk by chunk). ``chunk >= B`` is one call.

    Args:
      per_example: maps a batch of ``{name: [B, ...]}`` arrays to ``[B]``.
      batch: the examples; padding to a multiple of ``chunk`` repeats example 0, whose
        extra values are dropped (no gradient reaches them).
      chunk: examples per chunk (static).
    """
    n = next(iter(batch.values())).shape[0]
    if chunk >= n:
        return per_example(batch)
    pad = -n % chunk

    def chunked(x):
        x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, *x.shape[1:]))]) if pad else x
        return x.reshape(-1, chunk, *x.shape[1:])

    out = jax.lax.map(jax.checkpoint(per_example), jax.tree.map(chunked, batch))
    return out.reshape(-1)[:n]


def make_table_attack(fns: ModelFns, cfg: AttackConfig, *, loss: str = "bpr"):
    """Returns jitted ``attack(params, data, key, eps) -> perturbed params``.

    The attack maximises ``sum_b loss(emb_b)`` over all training pairs of ``data`` with
    one uniform negative each (drawn with ``key``), perturbing the tables named by
    ``cfg.targets`` (``user``; ``pos``/``neg``/``item`` mean the item table) in the norm and
    scope of ``cfg`` (``scope="row"``: each table row within its own ball).
    """
    tables = table_targets(fns, cfg.targets)
    attack = make_attack(
        AttackConfig(**{**cfg.__dict__, "targets": tables}), tuple(fns.table_sizes)
    )
    loss_on_emb = emb_loss(fns, loss)

    @functools.partial(jax.jit)
    def run(params: Params, data: TrainArrays, key: Array, eps: Array) -> Params:
        k_neg, k_attack = jax.random.split(key)
        batch = {
            "user": data.user,
            "pos": data.item,
            "neg": sample_negatives(data, data.user, k_neg),
        }
        clean = fns.get_tables(params)

        def loss_fn(t):
            p = fns.set_tables(params, t)
            return loss_on_emb(p, fns.embed(p, batch))

        delta = attack(loss_fn, clean, key=k_attack, eps=eps)
        return fns.set_tables(params, jax.tree.map(jnp.add, clean, delta))

    return run


def make_level_attack(
    fns: ModelFns,
    cfg: "SweepConfig",
    data: TrainArrays,
    heldout: tuple[np.ndarray, np.ndarray] | None,
):
    """``perturb(params, keys [L], eps [L]) -> tables with a leading [L] axis`` (one jit)."""
    attack = make_attack(
        cfg.attack_config(1.0, targets=table_targets(fns, cfg.targets)), tuple(fns.table_sizes)
    )
    if cfg.budget == "relative":
        attack = relative_budget(attack, norm=cfg.norm, scope=cfg.scope)
    users, pos = _attack_pairs(cfg, data, heldout)
    targeted = cfg.objective == "targeted"

    def one(params, key, eps):
        k_neg, k_attack = jax.random.split(key)
        neg = sample_uniform(data, users, jax.random.uniform(k_neg, users.shape))
        batch = {"user": users, "pos": pos, "neg": neg}
        clean = fns.get_tables(params)
        # the attack's pairs in chunks where all of them would pass memory_mb (their
        # embedding rows for level_chunk levels at once)
        chunk = chunk_examples(
            users.shape[0], _pair_bytes(fns, params, batch) * min(cfg.level_chunk, len(cfg.eps)),
            cfg.memory_mb * 2**20,
        )  # fmt: skip

        def loss_fn(t):
            p = fns.set_tables(params, t)
            return per_example_chunked(lambda b: _pair_losses(fns, p, b, targeted), batch, chunk)

        step = None if cfg.step_size is not None else 2.5 * eps / cfg.num_steps
        delta = attack(loss_fn, clean, key=k_attack, eps=eps, step_size=step)
        return jax.tree.map(jnp.add, clean, delta)

    def all_levels(params, keys, eps):  # level_chunk levels at a time: bounded memory
        return jax.lax.map(
            lambda ke: one(params, *ke), (keys, eps), batch_size=min(cfg.level_chunk, eps.size)
        )

    return jax.jit(all_levels)


def _attack_pairs(
    cfg: "SweepConfig", data: TrainArrays, heldout: tuple[np.ndarray, np.ndarray] | None
) -> tuple[Array, Array]:
    """The ``(users, positives)`` pairs the sweep's attack objective is summed over:
    the training pairs (``train``), the held-out test pairs (``oracle``), or every user
    with every target item (``targeted``)."""
    if cfg.objective == "train":
        return data.user, data.item
    if cfg.objective == "oracle":
        return jnp.asarray(heldout[0], jnp.int32), jnp.asarray(heldout[1], jnp.int32)
    targets = np.asarray(cfg.target_items, np.int32)
    u = np.repeat(np.arange(data.num_users, dtype=np.int32), targets.size)
    return jnp.asarray(u), jnp.asarray(np.tile(targets, data.num_users))


def _pair_losses(fns: ModelFns, params: Params, batch: dict, targeted: bool) -> Array:
    """BPR loss per ``(user, pos, neg)`` pair: untargeted attacks raise the ranking loss;
    targeted ones (negated) raise the target items over the sampled ones."""
    s = fns.embed(params, batch)
    sp = fns.score(params, s["user"], s["pos"], s.get("pos_bias"))
    sn = fns.score(params, s["user"], s["neg"], s.get("neg_bias"))
    return -bpr(sp, sn) if targeted else bpr(sp, sn)


def _pair_bytes(fns: ModelFns, params, batch: dict) -> int:
    """Bytes of one pair's embedding rows (``fns.embed`` of one example, float32)."""
    one = jax.eval_shape(lambda: fns.embed(params, {k: v[:1] for k, v in batch.items()}))
    return 4 * sum(math.prod(x.shape) for x in jax.tree.leaves(one))
