"""Robustness sweeps: a whole grid of perturbation levels evaluated in one compiled call.

A sweep evaluates a trained model under ``kind`` (Gaussian or uniform noise, FGSM, PGD-K)
at every ``eps`` of a grid and for every seed. The levels (``seeds x eps``) are a vmapped
axis everywhere: one compiled call crafts the perturbed embedding tables of all levels, and
one compiled step per user batch scores, ranks and compares all levels at once, so the cost
of a 32-level sweep is far below 32 single-level evaluations. Per user batch it computes,
for every level:

* every ranking metric (Recall/NDCG/HR/Precision/MRR at each K; AUC optional), for all
  test users and broken down by user-activity quantile groups and by head/tail test items
  (popularity-stratified targets: the shifted-data view);
* top-K list stability against the clean list (Jaccard@K, finite-list RBO@K);
* prediction shift (mean absolute and signed score change over the candidates);
* in targeted mode, the hit ratio of the target items in the top-K.

Threat models (``objective``): ``"train"`` maximises the BPR loss over one sampled epoch of
training triples (the APR paper's study; label-free); ``"oracle"`` maximises the BPR loss
of the held-out test positives against sampled negatives (an upper bound: the attacker
knows the test items; its outputs say so);
``"targeted"`` maximises the scores of ``target_items`` for every user against sampled
items (promotion). Attacks perturb the embedding tables named in ``targets``.
"""

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from robustjax._config_checks import field_error
from robustjax.attacks import AttackConfig
from robustjax.attacks.budget import BUDGETS
from robustjax.data.negatives import TrainArrays
from robustjax.eval import _host
from robustjax.eval.attacked import make_level_attack
from robustjax.eval.sweep_batch import sweep_step
from robustjax.eval.sweep_engine import (
    OBJECTIVES,
    ORACLE_LABEL,
    check_kind,
    check_objective,
    parse_eps,
    per_seed,
    sum_batches,
)
from robustjax.models.base import ModelFns

_USER_LEVEL = ("jaccard", "rbo", "prediction_shift", "mean_score_change")


PAIR_OBJECTIVES = ("train", "oracle", "targeted")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepConfig:
    """What to sweep. ``eps`` and ``seeds`` form the (vmapped) level axis."""

    kind: str = "pgd"
    eps: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    seeds: tuple[int, ...] = (0,)
    num_steps: int = 10
    step_size: float | None = None  # None: 2.5 * eps / num_steps
    budget: str = "relative"  # ||delta|| <= eps * ||row|| (attacks.budget); or "absolute"
    norm: str = "l2"
    scope: str = "row"
    targets: tuple[str, ...] = ("user", "item")
    objective: str = "train"
    target_items: tuple[int, ...] = ()
    ks: tuple[int, ...] = (10, 20)
    stability_k: int = 20
    auc: bool = False
    user_groups: int = 4  # activity quantile groups (0 disables)
    head_share: float = 0.2  # most popular share of items counted as "head"
    user_batch: int = 256
    # bound on the per-batch score tensor [level_chunk, B, I] and on the attack's pair
    # embeddings [level_chunk, pairs, D] (beyond it the pairs go in chunks)
    memory_mb: int = 1024
    level_chunk: int = 8  # levels attacked and scored together (lax.map batch); bounds memory

    def __post_init__(self):
        check_kind("SweepConfig", self.kind, "items")
        check_objective("SweepConfig", self.objective, PAIR_OBJECTIVES)
        if not self.eps:
            raise field_error(self, "eps", "a non-empty grid")
        negative = [e for e in self.eps if not (math.isfinite(e) and e >= 0)]
        if negative:
            raise ValueError(
                f"SweepConfig.eps must be finite and >= 0, got {negative} in the "
                f"grid {list(self.eps)}; use e.g. --eps 0:1:32."
            )
        if not self.seeds:
            raise field_error(self, "seeds", "a non-empty tuple of ints")
        if not self.ks or min(self.ks) < 1 or self.stability_k < 1:
            raise field_error(self, "ks", "positive cutoffs (and stability_k >= 1)")
        if self.objective == "targeted" and not self.target_items:
            raise field_error(self, "target_items", "non-empty with objective='targeted'")
        if not 0.0 < self.head_share < 1.0:
            raise field_error(self, "head_share", "in (0, 1)")
        if self.budget not in BUDGETS:
            raise field_error(self, "budget", f"one of {BUDGETS}")
        if self.user_batch < 1 or self.memory_mb < 1 or self.user_groups < 0:
            raise field_error(self, "user_batch", "positive (and memory_mb >= 1, user_groups >= 0)")
        if self.level_chunk < 1:
            raise field_error(self, "level_chunk", "an int >= 1")
        self.attack_config(max(self.eps))

    def attack_config(self, eps: float, **fields) -> AttackConfig:
        """The sweep's attack as an AttackConfig of radius ``eps`` (``fields``: other
        AttackConfig fields, e.g. ``targets``)."""
        return AttackConfig(
            kind=self.kind,
            eps=eps,
            step_size=self.step_size,
            num_steps=self.num_steps,
            norm=self.norm,
            scope=self.scope,
            **fields,
        )

    @property
    def levels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(seed index [L], eps [L])`` of the flattened ``seeds x eps`` level axis."""
        s, e = np.meshgrid(
            np.arange(len(self.seeds)), np.asarray(self.eps, np.float32), indexing="ij"
        )
        return s.ravel(), e.ravel()


def run_sweep(
    fns: ModelFns,
    params,
    *,
    data: TrainArrays,
    target_csr,
    exclude_csrs,
    num_items: int,
    cfg: SweepConfig,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> dict:
    """Evaluates ``params`` at every level of ``cfg``; returns a JSON-ready dict.

    Args:
      fns: the model's functions (needs embedding tables: ``fns.get_tables``).
      params: the model's parameters.
      data: training arrays (the ``train`` attack objective and negative sampling).
      target_csr: held-out items per user (test).
      exclude_csrs: CSRs of items to remove from the candidates: train (and valid).
      num_items: I.

    Returns:
      ``{"eps", "seeds", "metrics": {name: [[E] per seed]}, "groups": {label: {...}},
      "clean": {name: value}, "num_users"}``. Stratified names are prefixed ``head/`` and
      ``tail/``. Level ``eps = 0`` reproduces the clean metrics exactly.
    """
    _check_items(cfg, num_items)
    target, excludes, num_users = _host.check_csrs("run_sweep", target_csr, exclude_csrs, num_items)
    users = np.nonzero(np.diff(target[0]) > 0)[0]
    if users.size == 0:
        raise ValueError("run_sweep: no user has a held-out item to evaluate.")
    group, labels = _activity_groups(cfg, excludes, users, num_users)
    head = _head_items(cfg, excludes, num_items)

    seed_idx, eps = cfg.levels
    keys = jnp.stack([jax.random.key(s) for s in np.asarray(cfg.seeds)[seed_idx]])
    heldout = (np.repeat(np.arange(num_users), np.diff(target[0])), target[1])
    perturb = make_level_attack(fns, cfg, data, heldout)
    tables = perturb(params, keys, jnp.asarray(eps))
    num_levels = eps.size
    cap = cfg.memory_mb * 2**20 // max(1, 4 * 4 * min(cfg.level_chunk, num_levels) * num_items)
    bsz = int(max(1, min(cfg.user_batch, users.size, cap)))
    step = _batch_step(
        fns, cfg, params, tables, users, bsz, target, excludes, group, labels, head, num_items
    )
    totals, counts = sum_batches(
        step,
        -(-users.size // bsz),
        desc=f"sweep {num_levels} levels",
        progress=progress,
        on_batch=None if on_batch is None else lambda i: on_batch(i * bsz),
    )
    totals, counts = jax.device_get((totals, counts))
    return {**_finish(totals, counts, cfg, labels, num_levels), "norms": table_norms(fns, params)}


def table_norms(fns: ModelFns, params) -> dict:
    """Mean and median L2 row norm of each embedding table: what an absolute eps is
    measured against (reported with every sweep, so curves of differently scaled models
    can be read side by side)."""
    out = {}
    for name, table in fns.get_tables(params).items():
        n = np.linalg.norm(np.asarray(table, np.float64), axis=-1)
        out[name] = {"mean": float(n.mean()), "median": float(np.median(n))}
    return out


def _batch_step(
    fns, cfg, params, tables, users, bsz, target, excludes, group, labels, head, num_items
) -> Callable:
    """``step(i)``: ``sweep_step`` on the ``i``-th batch of ``bsz`` users, all levels (the
    host side pads the users and gathers their target and excluded items)."""
    t_cap = _host.batch_capacity([target], users, bsz)
    x_cap = _host.batch_capacity(excludes, users, bsz)
    targets_arr = jnp.asarray(np.asarray(cfg.target_items, np.int32))
    static = {
        "fns": fns,
        "ks": tuple(cfg.ks),
        "stab_k": cfg.stability_k,
        "auc": cfg.auc,
        "num_groups": len(labels),
        "num_items": num_items,
        "level_chunk": cfg.level_chunk,
    }

    def step(i):  # one user batch, all levels
        chunk = users[i * bsz : (i + 1) * bsz]
        tr, tc = _host.coo_batch([target], chunk, t_cap, pad_row=bsz)
        xr, xc = _host.coo_batch(excludes, chunk, x_cap, pad_row=bsz)
        padded = _host.pad_rows(chunk.astype(np.int32), bsz)
        mask = np.arange(bsz) < chunk.size
        return sweep_step(
            params, tables, padded, mask, group[padded], tr, tc, xr, xc, jnp.asarray(head),
            targets_arr, **static,
        )  # fmt: skip

    return step


def _check_items(cfg: SweepConfig, num_items: int) -> None:
    if max(cfg.ks) > num_items or cfg.stability_k > num_items:
        raise ValueError(
            f"SweepConfig.ks={cfg.ks} / stability_k={cfg.stability_k} exceed the "
            f"number of items ({num_items}); lower them."
        )
    bad_targets = [t for t in cfg.target_items if not 0 <= t < num_items]
    if bad_targets:
        raise ValueError(
            f"SweepConfig.target_items {bad_targets} are not item ids in [0, {num_items})."
        )


def _activity_groups(cfg: SweepConfig, excludes, users, num_users):
    """Group per user (quantiles of the number of training interactions) and labels."""
    activity = np.diff(excludes[0][0]) if excludes else np.zeros(num_users)
    g = max(cfg.user_groups, 1)
    edges = np.quantile(activity[users], np.linspace(0, 1, g + 1)[1:-1]) if g > 1 else []
    group = np.searchsorted(edges, activity, side="right").astype(np.int32)
    return group, [f"activity_q{i + 1}" for i in range(g)]


def _head_items(cfg: SweepConfig, excludes, num_items: int) -> np.ndarray:
    """The most popular ``head_share`` of items by training interactions."""
    pop = np.bincount(excludes[0][1], minlength=num_items) if excludes else np.zeros(num_items)
    head = np.zeros(num_items, bool)
    head[np.argsort(-pop, kind="stable")[: max(1, round(cfg.head_share * num_items))]] = True
    return head


def attack_header(cfg: SweepConfig) -> dict:
    """The ``"attack"`` entry of the report: the config without the grid and batching."""
    skip = ("eps", "seeds", "user_batch", "memory_mb", "level_chunk")
    out = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    if cfg.objective == "oracle":
        out["label"] = ORACLE_LABEL
    return out


def _finish(totals, counts, cfg: SweepConfig, labels, num_levels) -> dict:
    def means(col):
        out = {}
        for name, v in totals.items():
            if name.endswith("valid"):
                continue
            if name.startswith("target_hr"):  # eligible users only (see sweep_step)
                denom = totals["target_valid"][:, col]
            elif name.startswith(_USER_LEVEL):  # defined for every evaluated user
                denom = np.full(num_levels, counts[col])
            else:  # ranking metrics: users with a target in the (stratified) test set
                prefix = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
                denom = totals[prefix + "valid"][:, col]
            out[name] = per_seed(v[:, col] / np.maximum(denom, 1), len(cfg.seeds), len(cfg.eps))
        return out

    return {
        "eps": list(map(float, cfg.eps)),
        "seeds": list(cfg.seeds),
        "attack": attack_header(cfg),
        "metrics": means(0),
        "num_users": int(counts[0]),
        "groups": {
            label: {"num_users": int(counts[i + 1]), "metrics": means(i + 1)}
            for i, label in enumerate(labels)
        },
    }


__all__ = [
    "OBJECTIVES",
    "SweepConfig",
    "attack_header",
    "make_level_attack",
    "parse_eps",
    "run_sweep",
    "sweep_step",
]
