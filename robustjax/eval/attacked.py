"""Evaluation-time attacks on a trained model's embedding tables.

The threat model of the APR paper's robustness study: the attacker perturbs the user and
item embedding tables (each row inside an eps ball) to maximise the training loss over one
sampled epoch of training triples (every training pair with a fresh uniform negative);
the perturbed model is then evaluated by full ranking like the clean one. ``eps`` is
traced, so one compiled attack serves every level of a sweep.
"""

import functools

import jax
import jax.numpy as jnp

from robustjax.attacks import AttackConfig, make_attack
from robustjax.data.negatives import TrainArrays, sample_negatives
from robustjax.losses.terms import emb_loss
from robustjax.models.base import ModelFns
from robustjax.types import Array, Params

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
