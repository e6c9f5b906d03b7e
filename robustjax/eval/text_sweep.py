"""Sweeps of text attacks on text-aware user-item runs (``robustjax sweep --attack text_*``).

For each checkpoint, target item ``t`` and seed, the target's text is attacked
(``TEXT_ATTACKS``, :mod:`robustjax.text.attacks`) at every level: a token budget ``k``
(edits, integers) for the substitution kinds, a radius ``eps`` for the continuous kinds.
Discrete attacks run once at the largest budget; greedy and random edits are nested, so the
text after ``k`` edits is the attack at budget ``k``. The rewritten text is encoded, the
tower gives the new item embedding ``e_t`` (every other item is unchanged), and:

* ``target_hr@K`` / ``target_mean_rank``: HR@K and mean 0-based rank of ``t`` over the
  users who never interacted with ``t`` (train, valid, test or, for a cold item, its
  held-out rows), each user's training
  items removed: ``rank(u, t) = #{j : s_uj > s_ut} + #{j < t : s_uj = s_ut}``, the
  definition of :mod:`robustjax.poison.metrics` (:func:`target_ranks`);
* ``ndcg@K``: the clean test metric with the rewritten item embedding in place
  (``evaluate_full``, train and valid items excluded): what the rewrite costs the others;
* ``objective``: the attacker's surrogate; ``passes``: encoder passes spent.

The attacker's objective uses only training data (the users with no training interaction
with ``t``, :func:`robustjax.text.attacks.make_problem`). Metric rows are one per
(target, seed), so the report's bands and intervals are over targets and seeds.
"""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from robustjax.attacks.budget import BUDGETS
from robustjax.attacks.project import NORMS, SCOPES
from robustjax.eval.full import evaluate_full
from robustjax.poison.metrics import eligible_users

DEFAULT_NUM_TARGETS = 5  # targets drawn (seeded) when none are given


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextSweepConfig:
    """One text-attack sweep.

    Attributes:
      kind: a key of ``robustjax.attacks.registry.TEXT_ATTACKS``.
      levels: budgets (discrete kinds: integers >= 0, tokens edited) or radii (continuous).
      seeds: attack seeds (random substitution draws); deterministic kinds (``seeded`` False
        in the registry) run the first seed only, so repeated identical rows do not narrow
        the intervals.
      targets: dense target item ids; empty for :func:`default_targets`.
      k: cutoff of the target HR@K and of the objective's thresholds.
      ndcg_k: cutoff of the clean test NDCG.
      objective: ``"logsigmoid"`` or ``"sigmoid"`` (:mod:`robustjax.text.attacks`).
      temperature: tau in units of the clean score spread.
      rescore: candidates scored exactly per greedy edit (0: first-order only).
      norm, scope, budget, num_steps: the continuous kinds' ball and PGD steps.
    """

    kind: str
    levels: tuple[float, ...]
    seeds: tuple[int, ...] = (0,)
    targets: tuple[int, ...] = ()
    k: int = 20
    ndcg_k: int = 20
    objective: str = "sigmoid"
    temperature: float = 0.5
    rescore: int = 64
    norm: str = "l2"
    scope: str = "row"
    budget: str = "relative"
    num_steps: int = 10

    def __post_init__(self):
        from robustjax.attacks.registry import TEXT_ATTACKS
        from robustjax.text.attacks import check_objective

        if self.kind not in TEXT_ATTACKS:
            raise ValueError(
                f"TextSweepConfig.kind={self.kind!r}; expected one of {tuple(TEXT_ATTACKS)}."
            )
        check_objective(self.objective, "TextSweepConfig")
        if TEXT_ATTACKS[self.kind].discrete:
            bad = [x for x in self.levels if float(x) != int(x) or x < 0]
            if bad:
                raise ValueError(
                    f"{self.kind}: budgets must be integers >= 0 (tokens edited), got "
                    f"{list(self.levels)}; use e.g. --eps 0,1,2,4,8."
                )
        if self.norm not in NORMS or self.scope not in SCOPES or self.budget not in BUDGETS:
            raise ValueError(
                f"TextSweepConfig: norm={self.norm!r}, scope={self.scope!r}, "
                f"budget={self.budget!r}; expected {NORMS}, {SCOPES}, {BUDGETS}."
            )


def default_targets(num_items: int, *, seed: int = 0, count: int = DEFAULT_NUM_TARGETS):
    """``count`` distinct item ids drawn uniformly (``numpy.random.default_rng(seed)``), sorted."""
    rng = np.random.default_rng(seed)
    return tuple(
        sorted(int(i) for i in rng.choice(num_items, min(count, num_items), replace=False))
    )


@functools.partial(jax.jit, static_argnames="score_all")
def target_ranks(score_all, params: Any, users, exclude, item) -> jax.Array:
    """int32 ``[N]`` 0-based ranks of ``item`` for ``users`` (module docstring).

    Args:
      score_all: ``(params, users int32 [N]) -> [N, I]``.
      users: int32 ``[N]``; exclude: bool ``[N, I]`` items removed (training items).
      item: int32 ``[]``.
    """
    scores = jnp.where(exclude, -jnp.inf, score_all(params, users).astype(jnp.float32))
    st = scores[:, item][:, None]
    ids = jnp.arange(scores.shape[1])[None, :]
    return jnp.sum((scores > st) | ((scores == st) & (ids < item)), axis=1).astype(jnp.int32)


def _dense(csr, rows: np.ndarray, num_items: int) -> np.ndarray:
    indptr, indices = csr
    counts = indptr[rows + 1] - indptr[rows]
    local = np.repeat(np.arange(rows.size), counts)
    starts = np.repeat(indptr[rows] - np.cumsum(counts) + counts, counts)
    out = np.zeros((rows.size, num_items), bool)
    out[local, indices[starts + np.arange(local.size)]] = True
    return out


def _unexposed(split, item: int) -> np.ndarray:
    """int32 users who never interacted with ``item`` in train, valid or test
    (:func:`robustjax.poison.metrics.eligible_users`) nor, for a held-out cold item, in
    ``cold_valid``/``cold_test``."""
    users = eligible_users(split, [item])
    for part in (getattr(split, "cold_valid", None), getattr(split, "cold_test", None)):
        if part is not None:
            users = np.setdiff1d(users, part.user[part.item == item])
    return users.astype(np.int32)


class TextRun:
    """Everything one checkpoint's sweep reads: model, encoder, texts, tables and CSRs
    (``loaded``: a :class:`robustjax.run.LoadedRun` of a text-mf run)."""

    def __init__(self, loaded, cfg: TextSweepConfig):
        from flax import nnx

        from robustjax.data import user_item_csr
        from robustjax.runs.text import run_item_texts
        from robustjax.text import encoder_from_checkpoint, load_checkpoint
        from robustjax.text.attacks import TextModel, allowed_words

        spec = loaded.fns.text
        if spec is None or loaded.fns.get_tables is None:
            raise ValueError(
                f"--attack {cfg.kind}: {loaded.path} is a {loaded.config.model.name!r} run; text "
                "attacks need a text-aware user-item run (model text-mf)."
            )
        self.loaded, self.fns, self.split = loaded, loaded.fns, loaded.split
        self.ckpt = load_checkpoint(spec.encoder)
        graphdef, enc_state = nnx.split(encoder_from_checkpoint(self.ckpt))
        # a tower that trained its top encoder layers is attacked through them
        self.enc_state = spec.encoder_state(loaded.params, graphdef, enc_state)
        self.model = TextModel(graphdef, spec.item_from_text, self.fns.score, cfg.objective)
        self.max_len = spec.max_len
        self.texts = run_item_texts(loaded.config, self.split.train.item_tokens)
        self.allowed = allowed_words(self.ckpt)
        tables = self.fns.get_tables(loaded.params)
        self.user_table, self.item_table = tables["user"], tables["item"]
        n = self.split.num_users
        self.train = user_item_csr(self.split.train, n)
        self.valid = user_item_csr(self.split.valid, n)
        self.test = user_item_csr(self.split.test, n)
        self.users = np.arange(n, dtype=np.int32)
        self.exclude = _dense(self.train, self.users, self.split.num_items)  # [U, I]
        self.scores = self.fns.score_all(loaded.params, jnp.asarray(self.users))  # clean

    def with_item(self, item: int, emb) -> Any:
        """Params with item ``item``'s embedding replaced by ``emb`` ``[D]``."""
        table = self.item_table.at[item].set(emb)
        return self.fns.set_tables(self.loaded.params, {"item": table})

    def item_emb(self, text_emb, item: int):
        return self.model.item_from_text(
            self.loaded.params, text_emb, jnp.full((text_emb.shape[0],), item, jnp.int32)
        )[0]


def target_setup(run: TextRun, item: int, cfg: TextSweepConfig) -> dict:
    """Tokens, editable positions, the attack problem and the evaluation users of ``item``:
    ``{"ids", "mask", "editable", "problem", "users", "exclude", "clean_objective",
    "tower_check"}`` (``tower_check``: max abs difference between the item embedding from
    the re-encoded text and the run's, ~1e-6 when the features match the encoder)."""
    from robustjax.text import tokenize
    from robustjax.text.attacks import editable_positions, make_problem, text_objective

    split, params = run.split, run.loaded.params
    tok = tokenize(run.ckpt, [run.texts[item]], max_len=run.max_len)
    ids, mask = tok.ids[0], tok.mask[0]
    seen = np.zeros(split.num_users, bool)
    seen[split.train.user[split.train.item == item]] = True
    problem = make_problem(
        run.user_table, run.scores, run.exclude, item, k=cfg.k, temperature=cfg.temperature,
        valid=~seen,
    )  # fmt: skip
    users = _unexposed(split, item)
    clean_obj, emb = text_objective(
        run.model, run.enc_state, params, problem, jnp.asarray(tok.ids), jnp.asarray(tok.mask)
    )
    check = float(jnp.max(jnp.abs(run.item_emb(emb, item) - run.item_table[item])))
    return {
        "ids": ids,
        "mask": mask,
        "editable": editable_positions(run.ckpt, ids, mask),
        "problem": problem,
        "users": users,
        "clean_objective": float(clean_obj[0]),
        "tower_check": check,
    }


def _measure(run: TextRun, item: int, setup: dict, text_emb, cfg: TextSweepConfig) -> dict:
    """Target HR@K / mean rank, test NDCG@K and the objective of a target encoding [1, H]."""
    from robustjax.text.attacks import objective_from_text

    params = run.with_item(item, run.item_emb(text_emb, item))
    out = {
        "objective": float(
            objective_from_text(run.model, run.loaded.params, setup["problem"], text_emb)[0]
        )
    }
    if setup["users"].size:
        ranks = target_ranks(run.fns.score_all, params, run.users, run.exclude, item)
        ranks = np.asarray(ranks)[setup["users"]]  # every user ranked: one compile
        out[f"target_hr@{cfg.k}"] = float(np.mean(ranks < cfg.k))
        out["target_mean_rank"] = float(np.mean(ranks))
    else:
        out[f"target_hr@{cfg.k}"], out["target_mean_rank"] = 0.0, float("nan")
    full = evaluate_full(
        run.fns.score_all,
        params,
        target_csr=run.test,
        exclude_csrs=[run.train, run.valid],
        num_items=run.split.num_items,
        ks=(cfg.ndcg_k,),
        auc=False,
    )
    out[f"ndcg@{cfg.ndcg_k}"] = float(full[f"ndcg@{cfg.ndcg_k}"])
    return out


def _discrete(run: TextRun, item: int, setup: dict, cfg: TextSweepConfig, seed: int) -> list[dict]:
    from robustjax.attacks.registry import TEXT_ATTACKS
    from robustjax.text import detokenize
    from robustjax.text.attacks import text_objective

    edit = TEXT_ATTACKS[cfg.kind].fn(
        run.model,
        run.enc_state,
        run.loaded.params,
        setup["problem"],
        setup["ids"],
        setup["mask"],
        int(max(cfg.levels)),
        editable=setup["editable"],
        allowed=run.allowed,
        key=jax.random.fold_in(jax.random.key(seed), item),
        rescore=cfg.rescore,
    )
    rows = []
    for level in cfg.levels:
        ids = edit.steps[int(level)]
        _, emb = text_objective(
            run.model,
            run.enc_state,
            run.loaded.params,
            setup["problem"],
            jnp.asarray(ids[None]),
            jnp.asarray(setup["mask"][None]),
        )
        passes = edit.passes[int(level)]
        rows.append(
            {
                **_measure(run, item, setup, emb, cfg),
                "text": detokenize(run.ckpt, ids, setup["mask"]),
                "tokens_changed": int(np.sum(ids != setup["ids"])),
                "edits": _edits(run.ckpt, setup["ids"], ids),
                "passes_forward": passes.forward,
                "passes_backward": passes.backward,
            }
        )
    return rows


def _edits(ckpt, before: np.ndarray, after: np.ndarray) -> list[list]:
    """``[[position, id before, id after, token before, token after], ...]`` of the changed
    positions."""
    tok = ckpt.tokenizer.id_to_token
    return [
        [int(p), int(before[p]), int(after[p]), tok(int(before[p])), tok(int(after[p]))]
        for p in np.flatnonzero(before != after)
    ]


def _continuous(
    run: TextRun, item: int, setup: dict, cfg: TextSweepConfig, seed: int
) -> list[dict]:
    from robustjax.attacks.registry import TEXT_ATTACKS

    rows = []
    for level in cfg.levels:
        _, emb, _ = TEXT_ATTACKS[cfg.kind].fn(
            run.model,
            run.enc_state,
            run.loaded.params,
            setup["problem"],
            jnp.asarray(setup["ids"][None]),
            jnp.asarray(setup["mask"][None]),
            jnp.asarray(setup["editable"]),
            jnp.float32(level),
            norm=cfg.norm,
            scope=cfg.scope,
            budget=cfg.budget,
            num_steps=cfg.num_steps,
            key=jax.random.fold_in(jax.random.key(seed), item),
        )
        steps = 1 if cfg.kind == "text_fgsm" else cfg.num_steps
        rows.append(
            {
                **_measure(run, item, setup, emb, cfg),
                "passes_forward": steps + 1 if level else 1,
                "passes_backward": steps if level else 0,
            }
        )
    return rows


def run_text_sweep(loaded, cfg: TextSweepConfig, *, progress: bool = True) -> dict:
    """One checkpoint's entry of the sweep report (module docstring).

    Returns:
      ``{"metrics": {name: [[E values] per (target, seed)]}, "rows": [{"target", "seed"}],
      "targets": {token: {"item", "text", "clean_objective", "tower_check", "num_users",
      "levels": [[per-level dicts] per seed]}}}``; a discrete level's dict holds the metrics,
      the rewritten ``text``, ``tokens_changed``, the ``edits`` (position, ids and tokens
      before and after) and the encoder passes spent.
    """
    from tqdm.auto import tqdm

    from robustjax.attacks.registry import TEXT_ATTACKS

    run = TextRun(loaded, cfg)
    targets = cfg.targets or default_targets(run.split.num_items)
    attack = _discrete if TEXT_ATTACKS[cfg.kind].discrete else _continuous
    names = (f"target_hr@{cfg.k}", "target_mean_rank", f"ndcg@{cfg.ndcg_k}", "objective")
    metrics = {n: [] for n in names}
    rows, per_target = [], {}
    seeds = cfg.seeds if TEXT_ATTACKS[cfg.kind].seeded else cfg.seeds[:1]
    for item in tqdm(targets, desc="targets", unit="item", disable=not progress):
        setup = target_setup(run, item, cfg)
        token = str(run.split.train.item_tokens[item])
        entry = {
            "item": int(item),
            "text": run.texts[item],
            "clean_objective": setup["clean_objective"],
            "tower_check": setup["tower_check"],
            "editable_tokens": int(setup["editable"].sum()),
            "num_users": int(setup["users"].size),
            "levels": [],
        }
        for seed in seeds:
            levels = attack(run, item, setup, cfg, seed)
            entry["levels"].append(levels)
            rows.append({"target": token, "seed": seed})
            for n in names:
                metrics[n].append([lv[n] for lv in levels])
        per_target[token] = entry
    return {"metrics": metrics, "rows": rows, "seeds_run": list(seeds), "targets": per_target}


__all__ = [
    "DEFAULT_NUM_TARGETS",
    "TextRun",
    "TextSweepConfig",
    "default_targets",
    "run_text_sweep",
    "target_ranks",
    "target_setup",
]
