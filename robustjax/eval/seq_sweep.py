"""Robustness sweeps of sequential recommenders (SASRec, BERT4Rec) under history attacks.

Two families of threat, one report format (``robustjax.report``):

- **embedding** kinds (``gaussian``, ``uniform``, ``fgsm``, ``pgd``): perturb the input item
  embeddings of each user's history inside an eps ball (norm and scope of
  ``robustjax.attacks``); the whole eps grid is ``vmap``-ed inside one compiled call per
  user batch.
- **discrete** kinds (``robustjax.attacks.sequence``): item substitution, insertion,
  deletion and truncation of the history, with an integer budget per level (one compiled
  call per budget: the budget is a static shape).

Objectives (what the attacker maximises):

- ``"prediction"`` (default, label-free): the cross-entropy, over the whole catalogue, of
  the item the model itself ranks first from the clean history. The attacker sees the
  history and the model, never the test item or the evaluation candidates.
- ``"oracle"``: the cross-entropy of the held-out test item among its evaluation
  candidates (the target and its sampled negatives, ``SequenceData.test_cands``). An
  upper bound: the attacker knows the test item. Its discrete attacks never insert any
  of the user's candidates into the history, so they cannot win by showing the answer.
  Every output of this objective says "oracle / upper bound".

Metrics per level: ``sampled_hr@K`` and ``sampled_ndcg@K`` (the sampled protocol, named as in training runs: the target's rank is the
number of candidates scored strictly higher) and ``target_score_shift``, the mean change
of the target's score from the clean one.

This module is the sequential family of the sweep engine (``robustjax.eval.sweep_engine``:
grid, kinds, batch loop); it scores a batch on its candidates and perturbs the history.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robustjax._config_checks import check_choice_fields
from robustjax.attacks import AttackConfig, apply_sequence_attack, make_attack
from robustjax.attacks.budget import BUDGETS, relative_budget
from robustjax.attacks.registry import HISTORY_ATTACKS, embedding_kinds
from robustjax.eval.ranking import single_target_metrics
from robustjax.eval.sweep_engine import check_kind, check_objective, per_seed, sum_batches

# The built-in embedding kinds (a snapshot; the registries of robustjax.attacks decide).
EMBEDDING_KINDS = embedding_kinds(sweep=True)
OBJECTIVES = ("prediction", "oracle")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeqSweepConfig:
    """A sweep of one attack kind over ``levels`` (eps for embedding kinds, integer budgets
    for discrete kinds) and ``seeds``."""

    kind: str = "pgd"
    levels: tuple[float, ...] = (0.0, 0.5, 1.0)
    seeds: tuple[int, ...] = (0,)
    num_steps: int = 10
    norm: str = "l2"
    scope: str = "row"
    budget: str = "relative"  # ||delta|| <= eps * ||input row|| (embedding kinds); or "absolute"
    ks: tuple[int, ...] = (10,)
    user_batch: int = 256
    objective: str = "prediction"

    def __post_init__(self):
        check_choice_fields(self, (("budget", BUDGETS),))
        check_kind("SeqSweepConfig", self.kind, "sequence")
        check_objective("SeqSweepConfig", self.objective, OBJECTIVES)
        if not self.levels:
            raise ValueError("SeqSweepConfig.levels is empty; give at least one level.")
        if any(b <= a for a, b in zip(self.levels, self.levels[1:])):
            raise ValueError(
                f"SeqSweepConfig.levels must be strictly ascending, got {self.levels!r}."
            )
        if self.levels[0] < 0:
            raise ValueError(f"SeqSweepConfig.levels must be >= 0, got {self.levels!r}.")
        if self.discrete and any(float(v) != int(v) for v in self.levels):
            raise ValueError(
                f"SeqSweepConfig.levels are budgets (item counts) for "
                f"kind={self.kind!r}; got non-integers {self.levels!r}."
            )
        if not self.seeds:
            raise ValueError("SeqSweepConfig.seeds is empty.")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"SeqSweepConfig.ks must be positive cutoffs, got {self.ks!r}.")
        if self.user_batch < 1:
            raise ValueError(f"SeqSweepConfig.user_batch must be >= 1, got {self.user_batch}.")
        # norm/scope/num_steps checked by the attack module with its own messages
        AttackConfig(
            kind="pgd", num_steps=self.num_steps, norm=self.norm, scope=self.scope, targets=("seq",)
        )

    @property
    def discrete(self) -> bool:
        return self.kind in HISTORY_ATTACKS


def candidate_loss(model, seq_emb, seq_ids, cands):
    """Cross-entropy of candidate 0 (the target) among ``cands`` [B, C]; [B]."""
    scores = model.score_items(model.next_hidden(seq_emb, seq_ids), cands)
    return -jax.nn.log_softmax(scores, axis=-1)[:, 0]


def prediction_loss(model, seq_emb, seq_ids, pseudo):
    """Cross-entropy of ``pseudo`` [B] (the clean top-ranked items, ids ``1..I``) over the
    whole catalogue; [B]. Label-free: nothing of the test data enters."""
    logits = model.score_all(model.next_hidden(seq_emb, seq_ids))  # [B, I]
    return -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), pseudo[:, None] - 1, 1)[:, 0]


def _objective(model, cfg, ids, cands, emb):
    """``loss(seq_emb, seq_ids) -> [B]`` of the configured objective (see module doc)."""
    if cfg.objective == "oracle":
        return lambda e, i: candidate_loss(model, e, i, cands)
    clean = model.score_all(model.next_hidden(emb, ids))
    pseudo = jax.lax.stop_gradient(jnp.argmax(clean, axis=-1).astype(jnp.int32) + 1)
    return lambda e, i: prediction_loss(model, e, i, pseudo)


def _metrics(scores, clean_target, valid, ks):
    """Sums over the valid users (``valid`` 1/0 weights): hr@k, ndcg@k, target score shift."""
    rank = jnp.sum(scores[:, 1:] > scores[:, :1], axis=1)
    out = {}
    for k in ks:
        hr, ndcg = single_target_metrics(rank, k)
        out[f"sampled_hr@{k}"] = jnp.sum(hr * valid)
        out[f"sampled_ndcg@{k}"] = jnp.sum(ndcg * valid)
    out["target_score_shift"] = jnp.sum((scores[:, 0] - clean_target) * valid)
    return out


def _embedding_fn(graphdef, cfg: SeqSweepConfig):
    attack = make_attack(
        AttackConfig(
            kind=cfg.kind, num_steps=cfg.num_steps, norm=cfg.norm, scope=cfg.scope, targets=("seq",)
        ),
        ("seq",),
    )
    if cfg.budget == "relative":
        attack = relative_budget(attack, norm=cfg.norm, scope=cfg.scope)

    @jax.jit
    def fn(params, ids, cands, valid, levels, key):
        model = nnx.merge(graphdef, params)
        emb = model.embed({"seq": ids})["seq"]
        clean = model.score_items(model.next_hidden(emb, ids), cands)[:, 0]

        objective = _objective(model, cfg, ids, cands, emb)

        def at(eps):
            loss = lambda e: objective(e["seq"], ids) * valid
            delta = attack(loss, {"seq": emb}, key=key, eps=eps)["seq"]
            scores = model.score_items(model.next_hidden(emb + delta, ids), cands)
            return _metrics(scores, clean, valid, cfg.ks)

        return jax.vmap(at)(levels)

    return fn


def _discrete_fn(graphdef, cfg: SeqSweepConfig, num_items: int, budget: int):
    @jax.jit
    def fn(params, ids, cands, valid, key):
        model = nnx.merge(graphdef, params)
        table = model.item_table()
        emb = model.embed({"seq": ids})["seq"]
        clean = model.score_items(model.next_hidden(emb, ids), cands)[:, 0]

        objective = _objective(model, cfg, ids, cands, emb)

        def loss_rows(rows, seq_ids):
            return objective(rows * model.input_scale, seq_ids) * valid

        new_ids = apply_sequence_attack(
            cfg.kind,
            ids,
            budget,
            loss_fn=loss_rows,
            table=table,
            num_items=num_items,
            key=key,
            exclude=cands if cfg.objective == "oracle" else None,
        )
        scores = model.score_items(
            model.next_hidden(model.embed({"seq": new_ids})["seq"], new_ids), cands
        )
        out = _metrics(scores, clean, valid, cfg.ks)
        out["changed_positions"] = jnp.sum(jnp.sum(new_ids != ids, axis=1) * valid)
        return out

    return fn


def run_seq_sweep(
    graphdef: nnx.GraphDef,
    params,
    inputs: jax.Array,
    cands: jax.Array,
    *,
    num_items: int,
    cfg: SeqSweepConfig,
    progress: bool = True,
) -> dict:
    """Evaluates a sequential model under every level of ``cfg`` (and every seed).

    Args:
      graphdef: the model's graph definition (``nnx.split(model, nnx.Param)``); the model
        must expose ``embed``, ``next_hidden``, ``score_items``, ``item_table`` and
        ``input_scale``.
      params: the model's parameters (the ``nnx.Param`` state of the same split).
      inputs: int32 [U, L] left-padded histories (``SequenceData.test_input``).
      cands: int32 [U, C] candidates, column 0 the held-out target.
      num_items: I (items are ``1..I``).

    Returns:
      ``{"metrics": {name: [[value per level] per seed]}, "num_users": U, "norms":
      {"seq": {"mean", "median"}}}`` (means over users; the input embeddings' row norms),
      the per-checkpoint entry of a ``robustjax.report`` sweep.
    """
    inputs, cands = jnp.asarray(inputs), jnp.asarray(cands)
    if inputs.ndim != 2 or cands.ndim != 2 or inputs.shape[0] != cands.shape[0]:
        raise ValueError(
            f"run_seq_sweep: inputs [U, L] and cands [U, C] must share U, got "
            f"{inputs.shape} and {cands.shape}."
        )
    if cfg.discrete and max(cfg.levels) >= inputs.shape[1]:
        raise ValueError(
            f"run_seq_sweep: budget {max(cfg.levels):g} must be smaller than the "
            f"sequence length {inputs.shape[1]}."
        )
    n = inputs.shape[0]
    b = min(cfg.user_batch, n)
    nb = -(-n // b)
    pad = nb * b - n
    ids_all = jnp.pad(inputs, ((0, pad), (0, 0)))
    cands_all = jnp.pad(cands, ((0, pad), (0, 0)))
    valid_all = (jnp.arange(nb * b) < n).astype(jnp.float32)
    levels_fn = _level_fn(graphdef, cfg, num_items)

    def step(i):  # one user batch, every seed and level; float64 sums [S, E] on the host
        sl = slice(i * b, (i + 1) * b)
        args = (params, ids_all[sl], cands_all[sl], valid_all[sl])
        outs = [levels_fn(*args, jax.random.fold_in(jax.random.key(s), i)) for s in cfg.seeds]
        return {k: np.stack([o[k] for o in outs]) for k in outs[0]}

    totals = sum_batches(step, nb, desc=f"{cfg.kind} sweep", progress=progress)
    shape = (len(cfg.seeds), len(cfg.levels))
    metrics = {k: per_seed(v / n, *shape) for k, v in totals.items()}
    return {"metrics": metrics, "num_users": int(n), "norms": input_norms(graphdef, params)}


def input_norms(graphdef: nnx.GraphDef, params) -> dict:
    """Mean and median L2 norm of the input item embeddings (``item_table()[1:] *
    input_scale``, the rows an embedding attack perturbs): what an absolute eps is measured
    against, recorded with every sequential sweep as ``table_norms`` is for pair models."""
    model = nnx.merge(graphdef, params)
    rows = np.asarray(model.item_table(), np.float64)[1:] * float(model.input_scale)
    n = np.linalg.norm(rows, axis=-1)
    return {"seq": {"mean": float(n.mean()), "median": float(np.median(n))}}


def _level_fn(graphdef, cfg: SeqSweepConfig, num_items: int):
    """``fn(params, ids, cands, valid, key) -> {name: float64 [E]}``: every level of one
    batch and seed (one vmapped call for eps, one call per static budget)."""
    if not cfg.discrete:
        emb_fn = _embedding_fn(graphdef, cfg)
        levels = jnp.asarray([float(v) for v in cfg.levels])

        def vmapped(*args):
            out = jax.device_get(emb_fn(*args[:-1], levels, args[-1]))
            return {k: np.asarray(v, np.float64) for k, v in out.items()}

        return vmapped
    fns = [_discrete_fn(graphdef, cfg, num_items, int(v)) for v in cfg.levels]

    def looped(*args):
        outs = [jax.device_get(fn(*args)) for fn in fns]
        return {k: np.asarray(np.array([o[k] for o in outs]), np.float64) for k in outs[0]}

    return looped


__all__ = [
    "EMBEDDING_KINDS",
    "OBJECTIVES",
    "SeqSweepConfig",
    "candidate_loss",
    "run_seq_sweep",
]
