"""One user batch of a robustness sweep (:mod:`robustjax.eval.sweep`), every level at once.

:func:`sweep_step` is the sweep's compiled step: it scores the batch's users under each
level's perturbed tables, ranks them once per level, and returns per-level sums of the
ranking metrics (all test items, head items, tail items), of the stability of the top-K
list and scores against the clean ones, and, with target items, of their hit ratio, each
summed over all users and over each activity group.
"""

import functools

import jax
import jax.numpy as jnp

from robustjax.eval.full import coo_mask
from robustjax.eval.ranking import metrics_from_top, rank_metrics, top_candidates
from robustjax.eval.stability import (
    jaccard_at_k,
    prediction_shift,
    rbo_at_k,
    rbo_normalized_at_k,
    target_hit_ratio,
)
from robustjax.models.base import ModelFns


@functools.partial(
    jax.jit,
    static_argnames=("fns", "ks", "stab_k", "auc", "num_groups", "num_items", "level_chunk"),
)
def sweep_step(
    params,
    tables,
    users,
    user_mask,
    group,
    tr,
    tc,
    xr,
    xc,
    head,
    target_items,
    *,
    fns: ModelFns,
    ks,
    stab_k,
    auc,
    num_groups,
    num_items,
    level_chunk=8,
):
    """All levels for one user batch (``level_chunk`` at a time). Returns per-level sums ``{name: [L, G+1]}`` (column
    0: all users, 1..G: activity groups) and the user count per group."""
    shape = (users.shape[0], num_items)
    target = coo_mask(tr, tc, shape)
    exclude = coo_mask(xr, xc, shape)
    clean_scores = fns.score_all(params, users)
    kmax = max(max(ks), stab_k)
    clean_top = top_candidates(clean_scores, exclude, stab_k)[1]
    strata = {"": target, "head/": target & head[None, :], "tail/": target & ~head[None, :]}
    onehot = jnp.concatenate(
        [
            user_mask[:, None].astype(jnp.float32),
            jax.nn.one_hot(group, num_groups) * user_mask[:, None],
        ],
        axis=1,
    )

    def level(t):
        scores = fns.score_all(fns.set_tables(params, t), users)
        top_scores, top_items = top_candidates(scores, exclude, kmax)  # one top-k per level
        out = _strata_metrics(scores, top_items, top_scores, exclude, strata, ks=ks, auc=auc)
        top = top_items[:, :stab_k]
        out.update(_stability(clean_scores, clean_top, scores, top, exclude, stab_k))
        if target_items.shape[0]:
            out.update(_target_hits(top, exclude, target_items, stab_k))
        return {k: v @ onehot for k, v in out.items()}  # [G+1] sums

    num_levels = jax.tree.leaves(tables)[0].shape[0]
    sums = jax.lax.map(level, tables, batch_size=min(level_chunk, num_levels))
    return sums, jnp.sum(onehot, axis=0)


def _strata_metrics(scores, top_items, top_scores, exclude, strata, *, ks, auc) -> dict:
    """Ranking metrics of one level per target stratum (``{prefix: target mask}``), each
    zeroed for users without a target in the stratum, plus that ``<prefix>valid`` flag."""
    out = {}
    for prefix, tgt in strata.items():
        m = metrics_from_top(top_items, top_scores, tgt, ks=ks)
        if auc and not prefix:
            m["auc"] = rank_metrics(scores, tgt, exclude, ks=ks[:1])["auc"]
        valid = m.pop("valid")
        for name, v in m.items():
            out[prefix + name] = v * valid
        out[prefix + "valid"] = valid
    return out


def _stability(clean_scores, clean_top, scores, top, exclude, stab_k: int) -> dict:
    """The level's top-``stab_k`` list and scores against the clean ones, per user."""
    return {
        f"jaccard@{stab_k}": jaccard_at_k(clean_top, top),
        f"rbo@{stab_k}": rbo_at_k(clean_top, top),  # RBO_ext (Webber et al.)
        f"rbo_norm@{stab_k}": rbo_normalized_at_k(clean_top, top),
        "prediction_shift": prediction_shift(clean_scores, scores, ~exclude),
    }


def _target_hits(top, exclude, target_items, stab_k: int) -> dict:
    """The target items' hit ratio in the top ``stab_k`` of eligible users, and the
    eligibility flag: eligible users never interacted with a target (as
    robustjax.poison.metrics); for the others an excluded target can never be hit."""
    t = jnp.clip(target_items, 0, None)
    seen = jnp.any(exclude[:, t] & (target_items >= 0)[None, :], axis=1)
    eligible = (~seen).astype(jnp.float32)
    return {
        f"target_hr@{stab_k}": target_hit_ratio(top, target_items) * eligible,
        "target_valid": eligible,
    }
