"""The transfer study, part 2, history-edit transfer: substitutions crafted on a surrogate sequential model, replayed on
every model (the surrogate itself gives the white-box diagonal)."""

import hashlib
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robustjax.attacks.sequence import apply_sequence_attack
from robustjax.data import load, synthetic
from robustjax.data.sequences import SequenceData, make_sequence_data
from robustjax.data.table import InteractionTable
from robustjax.eval.seq_sweep import candidate_loss
from robustjax.runs import load_sequence_run, run_bert4rec, run_sasrec

ATTACKS = ("gradient", "random")  # substitute_gradient on a surrogate; substitute_random


def parse_seq_model(name: str) -> tuple[str, int]:
    """``"sasrec-s1" -> ("sasrec", 1)``."""
    kind, _, seed = name.rpartition("-s")
    if kind not in ("sasrec", "bert4rec") or not seed.isdigit():
        raise ValueError(
            f"sequence model name {name!r} must look like 'sasrec-s<seed>' or 'bert4rec-s<seed>'."
        )
    return kind, int(seed)


def default_seq_path(data_path: str | None) -> str | None:
    """``<parent>/ml-100k`` for a ``<parent>/ml-100k-split`` data folder (the raw, timed
    interactions the split was derived from), when that folder exists."""
    if data_path is None:
        return None
    folder = os.path.normpath(data_path)
    if not folder.endswith("-split"):
        return None
    raw = folder[: -len("-split")]
    return raw if os.path.isdir(raw) else None


def time_ordered(table: InteractionTable) -> InteractionTable:
    """Rows grouped by user, in timestamp order within a user (file order breaks ties)."""
    if table.timestamp is None:
        raise ValueError(
            "time_ordered: the table has no timestamps; sequential models need "
            "time-ordered interactions (pass a file with a timestamp column)."
        )
    return table.subset(np.lexsort((table.timestamp, table.user)))


def load_sequence_table(cfg) -> tuple[InteractionTable, str]:
    """The time-ordered table of the sequence part and a description of its source."""
    path = cfg.seq_data_path or default_seq_path(cfg.data_path)
    if path is not None:
        table = load(path)
        if not isinstance(table, InteractionTable):
            raise ValueError(
                f"TransferConfig.seq_data_path={path!r} is a split folder; give "
                "a single timed interaction file (e.g. ../shared/data/ml-100k)."
            )
        return time_ordered(table), f"{path} (sorted by user, timestamp)"
    spec = {
        "num_users": cfg.synthetic_users,
        "num_items": cfg.synthetic_items,
        "interactions_per_user": cfg.synthetic_per_user,
        "seed": cfg.seed,
    }
    return synthetic(**spec), f"synthetic {spec}"


def seq_seed_stride(names) -> int:
    """Seed step between repetitions: one more than the spread of the names' seeds, so no
    model seed of one repetition recurs in another (``sasrec-s0``, ``sasrec-s1``: 2)."""
    seeds = [parse_seq_model(n)[1] for n in names]
    return max(seeds) - min(seeds) + 1


def train_models(
    cfg, table: InteractionTable, out_dir: str, *, seed_offset: int = 0, progress: bool
) -> dict:
    """Trains every model of ``cfg.seq_models`` into ``out_dir/<name>``, ``<kind>-s<k>``
    with seed ``k + seed_offset``; returns ``{name: metrics}``."""
    out = {}
    for name in cfg.seq_models:
        kind, seed = parse_seq_model(name)
        seed += seed_offset
        common = {
            "data_path": None,
            "out_dir": os.path.join(out_dir, name),
            "table": table,
            "max_len": cfg.seq_max_len,
            "batch_size": cfg.seq_batch_size,
            "seed": seed,
            "eval_every": cfg.seq_eval_every,
            "num_blocks": cfg.seq_blocks,
            "lr": cfg.seq_lr,
            "progress": progress,
        }
        if kind == "sasrec":
            dim = 8 if cfg.tiny else 50
            out[name] = run_sasrec(epochs=cfg.epochs_sasrec, dim=dim, name=name, **common)
        else:
            dim = 8 if cfg.tiny else 64
            out[name] = run_bert4rec(epochs=cfg.epochs_bert4rec, dim=dim, **common)
    return out


def _batches(n: int, batch: int):
    for start in range(0, n, batch):
        yield slice(start, min(start + batch, n))


def _pad(x: jax.Array, rows: int) -> jax.Array:
    # padded rows repeat row 0 (valid ids); their outputs are dropped
    return jnp.concatenate([x, jnp.broadcast_to(x[:1], (rows - x.shape[0], *x.shape[1:]))])


def make_craft_fn(graphdef: nnx.GraphDef, kind: str, budget: int, num_items: int):
    """Jitted ``craft(params, ids [B, L], cands [B, C], key) -> ids [B, L]``: ``budget``
    substitutions per history (``kind`` ``"gradient"``: ``substitute_gradient`` maximising
    the target's cross-entropy among ``cands`` under ``params``; ``"random"``: uniform
    items), never writing a candidate."""
    if kind not in ATTACKS:
        raise ValueError(f"make_craft_fn: kind={kind!r} is unknown; expected one of {ATTACKS}.")

    @jax.jit
    def craft(params, ids, cands, key):
        model = nnx.merge(graphdef, params)

        def loss_rows(rows, seq_ids):
            return candidate_loss(model, rows * model.input_scale, seq_ids, cands)

        return apply_sequence_attack(
            f"substitute_{kind}",
            ids,
            budget,
            num_items=num_items,
            key=key,
            loss_fn=loss_rows,
            table=model.item_table(),
            exclude=cands,
        )

    return craft


def craft_histories(
    graphdef,
    params,
    inputs,
    cands,
    *,
    kind: str,
    budget: int,
    num_items: int,
    key: jax.Array,
    batch_size: int = 256,
) -> np.ndarray:
    """int32 ``[U, L]`` edited test histories (:func:`make_craft_fn` over user batches;
    batch ``i`` uses ``fold_in(key, i)``)."""
    craft = make_craft_fn(graphdef, kind, budget, num_items)
    inputs, cands = jnp.asarray(inputs), jnp.asarray(cands)
    n = inputs.shape[0]
    b = min(batch_size, n)
    out = []
    for i, sl in enumerate(_batches(n, b)):
        rows = sl.stop - sl.start
        new = craft(params, _pad(inputs[sl], b), _pad(cands[sl], b), jax.random.fold_in(key, i))
        out.append(np.asarray(jax.device_get(new))[:rows])
    return np.concatenate(out).astype(np.int32)


def make_sasrec_eval_fn(graphdef: nnx.GraphDef):
    """Jitted ``evaluate(params, ids [B, L], cands [B, C]) -> (hit [B], ndcg [B])`` at 10
    (sampled protocol: rank = candidates scored strictly above the target)."""

    @jax.jit
    def evaluate(params, ids, cands):
        model = nnx.merge(graphdef, params)
        hidden = model.next_hidden(model.embed({"seq": ids})["seq"], ids)
        scores = model.score_items(hidden, cands)
        rank = jnp.sum(scores[:, 1:] > scores[:, :1], axis=1)
        hit = rank < 10
        return hit.astype(jnp.float32), jnp.where(hit, 1.0 / jnp.log2(rank + 2.0), 0.0)

    return evaluate


def evaluate_histories(
    graphdef, params, inputs, cands, *, batch_size: int = 256, evaluate=None
) -> dict:
    """``{"hr@10", "ndcg@10", "histories_sha1"}`` of a model on the given histories; the
    hash identifies the exact ids evaluated. ``evaluate``: a :func:`make_sasrec_eval_fn` of
    ``graphdef`` to reuse (compiled once per model)."""
    evaluate = evaluate or make_sasrec_eval_fn(graphdef)
    inputs_np = np.asarray(inputs, np.int32)
    inputs, cands = jnp.asarray(inputs_np), jnp.asarray(cands)
    n = inputs.shape[0]
    b = min(batch_size, n)
    hits, gains = [], []
    for sl in _batches(n, b):
        rows = sl.stop - sl.start
        h, g = jax.device_get(evaluate(params, _pad(inputs[sl], b), _pad(cands[sl], b)))
        hits.append(np.asarray(h)[:rows])
        gains.append(np.asarray(g)[:rows])
    return {
        "hr@10": float(np.concatenate(hits).mean()),
        "ndcg@10": float(np.concatenate(gains).mean()),
        "histories_sha1": histories_hash(inputs_np),
    }


def histories_hash(ids: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(ids, np.int32).tobytes()).hexdigest()


def transfer_matrix(
    models: dict,
    data: SequenceData,
    surrogates,
    *,
    budget: int,
    seed: int,
    out_dir: str | None = None,
) -> dict:
    """Crafts edits on each surrogate (and one random baseline) and evaluates every model.

    Args:
      models: ``{name: (graphdef, params)}``, all trained on ``data``'s item ids.
      data: the leave-one-out data (``test_input`` histories, ``test_cands``).
      surrogates: names in ``models`` that craft gradient substitutions.
      budget: substituted items per history.
      seed: key of the random baseline.
      out_dir: if given, every edited history array is saved to ``out_dir/edits.npz``
        (``clean`` and one array per row).

    Returns:
      ``{"clean": {model: metrics}, "rows": [{"attack", "surrogate", "histories_sha1",
      "changed", "cells": {model: metrics}}]}``; ``changed`` is the mean number of edited
      positions per history.
    """
    inputs, cands = data.test_input, data.test_cands
    clean_ids = np.asarray(inputs, np.int32)
    evals = {m: make_sasrec_eval_fn(g) for m, (g, _) in models.items()}
    clean = {
        m: evaluate_histories(g, p, clean_ids, cands, evaluate=evals[m])
        for m, (g, p) in models.items()
    }
    plans = [("gradient", s) for s in surrogates] + [("random", None)]
    rows, saved = [], {"clean": clean_ids}
    for attack, surrogate in plans:
        edited, row = _transfer_row(
            models, data, evals, clean, clean_ids, attack, surrogate, budget=budget, seed=seed
        )
        saved[row["surrogate"]] = edited
        rows.append(row)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        np.savez(os.path.join(out_dir, "edits.npz"), **saved)
    return {"clean": clean, "rows": rows}


def _transfer_row(
    models: dict,
    data: SequenceData,
    evals: dict,
    clean: dict,
    clean_ids: np.ndarray,
    attack: str,
    surrogate,
    *,
    budget: int,
    seed: int,
) -> tuple[np.ndarray, dict]:
    """One row of :func:`transfer_matrix`: ``(edited histories, row entry)`` for the edits
    crafted by ``attack`` on ``surrogate`` (``None``: the random baseline)."""
    inputs, cands = data.test_input, data.test_cands
    t0 = time.perf_counter()
    g, p = models[surrogate] if surrogate is not None else next(iter(models.values()))
    edited = craft_histories(
        g,
        p,
        inputs,
        cands,
        kind=attack,
        budget=budget,
        num_items=data.num_items,
        key=jax.random.key(seed),
    )
    craft_s = time.perf_counter() - t0
    cells = {}
    for m, (gm, pm) in models.items():
        res = evaluate_histories(gm, pm, edited, cands, evaluate=evals[m])
        res["hr@10/drop"] = clean[m]["hr@10"] - res["hr@10"]
        res["ndcg@10/drop"] = clean[m]["ndcg@10"] - res["ndcg@10"]
        cells[m] = res
    row = {
        "attack": attack,
        "surrogate": "random" if surrogate is None else surrogate,
        "histories_sha1": histories_hash(edited),
        "changed": float(np.mean(np.sum(edited != clean_ids, axis=1))),
        "craft_seconds": craft_s,
        "cells": cells,
    }
    return edited, row


def run_histories(
    cfg,
    out_dir: str,
    *,
    seed_offset: int = 0,
    attack_seed: int | None = None,
    progress: bool = True,
) -> dict:
    """One repetition of the history-edit transfer matrix (see the config docstring); a
    JSON-ready dict of plain numbers. Model ``<kind>-s<k>`` trains with seed
    ``k + seed_offset``; ``attack_seed`` (default ``cfg.seq_seed``) keys the random
    baseline. The data and their evaluation negatives (``cfg.seq_seed``) stay fixed."""
    t_start = time.perf_counter()
    table, source = load_sequence_table(cfg)
    data = make_sequence_data(table, max_len=cfg.seq_max_len, seed=cfg.seq_seed)
    seq_dir = os.path.join(out_dir, "seq")
    trained = train_models(cfg, table, seq_dir, seed_offset=seed_offset, progress=progress)
    models = {}
    for name in cfg.seq_models:
        run = load_sequence_run(os.path.join(seq_dir, name), data=data)
        models[name] = (run.graphdef, run.params)
    t_attack = time.perf_counter()
    seed = cfg.seq_seed if attack_seed is None else attack_seed
    matrix = transfer_matrix(
        models, data, cfg.seq_surrogates, budget=cfg.seq_budget, seed=seed, out_dir=seq_dir
    )
    keep = (
        "test/sampled_hr@10",
        "test/sampled_ndcg@10",
        "test/hr@10",
        "test/ndcg@10",
        "best_epoch",
        "epochs_run",
        "train_seconds",
    )
    return {
        "source": source,
        "num_users": data.num_users,
        "num_items": data.num_items,
        "max_len": data.max_len,
        "budget": cfg.seq_budget,
        "models": list(cfg.seq_models),
        "surrogates": list(cfg.seq_surrogates),
        "model_seeds": {m: parse_seq_model(m)[1] + seed_offset for m in cfg.seq_models},
        "attack_seed": seed,
        "training": {m: {k: v for k, v in r.items() if k in keep} for m, r in trained.items()},
        **matrix,
        "attack_seconds": time.perf_counter() - t_attack,
        "seconds": time.perf_counter() - t_start,
    }
