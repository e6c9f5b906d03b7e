"""BERT4Rec training (masked-item prediction, "Cloze") and next-item evaluation.

Data: the leave-one-out sequences of :func:`robustjax.seq.make_sequence_data` (last item
test, second-to-last validation). A training row is the user's last ``L`` training items.

Masking (as the official BERT4Rec data generator): each training row gets exactly
``n = clip(round(len * mask_prob), 1, P)`` of its real positions, chosen uniformly, replaced
by ``[MASK]`` (always the mask token; no 80/10/10 replacement), with ``P =
ceil(mask_prob * L)`` (the static number of prediction slots; ``len <= L`` so nothing is
truncated). With probability ``mask_last_prob`` a row instead masks only its last item,
which is exactly the next-item task used at evaluation. Masked positions are predicted with
a full softmax over items ``1..I`` (or, with ``num_sampled > 0``, a sampled softmax against
uniform negatives, accidental hits removed), and the loss is the mean over masked slots.

Evaluation (:func:`make_bert4rec_eval_fn`) works for any model with ``embed``,
``next_hidden``, ``score_items`` and ``score_all``: the sampled protocol ranks the target
against the fixed 100 negatives of ``SequenceData.valid_cands/test_cands``; full ranking
scores all items ``1..I`` with the user's history (training items; plus the validation item
for test) removed, except the target. Rank = number of competitors scored strictly higher
(ties favour the target); ``hr@k = 1[rank < k]``, ``ndcg@k = 1[rank < k] / log2(rank + 2)``
(with one target, recall@k equals hr@k).
"""

import dataclasses
import functools
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from robustjax.data.table import InteractionTable
from robustjax.models.bert4rec import BERT4Rec
from robustjax.seq import make_sequence_data
from robustjax.seq_adv import SeqAdvConfig, sequence_objective
from robustjax.seq_run import load_table, save_sequence_run
from robustjax.train.state import init_state

_NEG = -1e9


def num_predictions(mask_prob: float, max_len: int) -> int:
    """P, the static number of masked slots per row: ``max(1, ceil(mask_prob * max_len))``."""
    return max(1, math.ceil(mask_prob * max_len))


def mask_items(
    rows: Int[Array, "B L"],
    *,
    mask_prob: float,
    mask_id: int,
    num_slots: int,
    mask_last_prob: float = 0.0,
    key: PRNGKeyArray,
):
    """Masks random real positions of left-padded rows for Cloze training.

    Args:
      rows: item ids [B, L], 0 = padding.
      mask_prob: fraction of each row's real positions to mask (rounded, at least 1).
      mask_id: the ``[MASK]`` id (``I + 1``).
      num_slots: P, prediction slots per row (static); at most P positions are masked.
      mask_last_prob: probability that a row masks only its last position instead.
      key: PRNG key.

    Returns:
      ``(seq, positions, targets, valid)``: the masked rows [B, L]; the masked positions
      [B, P] (distinct per row); the original items there [B, P] (0 where not valid); and
      bool [B, P], which slots hold a masked position.
    """
    b, length = rows.shape
    if num_slots > length:
        raise ValueError(f"mask_items: num_slots={num_slots} exceeds the row length {length}.")
    k_pos, k_last = jax.random.split(key)
    real = rows != 0
    r = jnp.where(real, jax.random.uniform(k_pos, (b, length)), 2.0)
    lengths = jnp.sum(real, axis=1)
    n = jnp.round(lengths.astype(jnp.float32) * mask_prob).astype(jnp.int32)
    n = jnp.minimum(jnp.clip(n, 1, num_slots), lengths)
    last = jax.random.bernoulli(k_last, mask_last_prob, (b,)) & real[:, -1]
    r = r.at[:, -1].set(jnp.where(last, -1.0, r[:, -1]))
    n = jnp.where(last, 1, n)
    _, positions = jax.lax.top_k(-r, num_slots)  # P smallest r
    positions = positions.astype(jnp.int32)
    valid = jnp.arange(num_slots)[None, :] < n[:, None]
    targets = jnp.where(valid, jnp.take_along_axis(rows, positions, axis=1), 0)
    hit = jax.nn.one_hot(positions, length, dtype=jnp.bool_) & valid[..., None]  # [B, P, L]
    seq = jnp.where(jnp.any(hit, axis=1), mask_id, rows).astype(rows.dtype)
    return seq, positions, targets, valid


def masked_item_loss(
    model: BERT4Rec,
    seq_emb: Float[Array, "B L D"],
    seq_ids: Int[Array, "B L"],
    positions: Int[Array, "B P"],
    targets: Int[Array, "B P"],
    valid: Bool[Array, "B P"],
    *,
    negatives: Int[Array, "B P N"] | None = None,
    deterministic: bool,
    key: PRNGKeyArray | None = None,
) -> Float[Array, "B P"]:
    """Per-slot cross-entropy of the masked items [B, P] (0 at invalid slots).

    Full softmax over items ``1..I`` when ``negatives`` is None, else a sampled softmax
    over ``[target, negatives]`` with negatives equal to the target removed.
    """
    hidden = model.encode(seq_emb, seq_ids, deterministic=deterministic, key=key)
    h = jnp.take_along_axis(hidden, positions[..., None], axis=1)  # [B, P, D]
    if negatives is None:
        logits = model.score_all(h)  # [B, P, I]
        labels = jnp.where(valid, targets - 1, 0)
    else:
        b, p, d = h.shape
        cands = jnp.concatenate([targets[..., None], negatives], axis=-1)  # [B, P, 1 + N]
        logits = model.score_items(h.reshape(b * p, d), cands.reshape(b * p, -1))
        logits = logits.reshape(cands.shape)
        accidental = jnp.concatenate(
            [jnp.zeros_like(targets[..., None], bool), negatives == targets[..., None]], -1
        )
        logits = jnp.where(accidental, _NEG, logits)
        labels = jnp.zeros_like(targets)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return jnp.where(valid, ce, jnp.zeros_like(ce))


def make_bert4rec_epoch_fn(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    num_items: int,
    *,
    mask_prob: float,
    max_len: int,
    mask_last_prob: float = 0.0,
    num_sampled: int = 0,
    adv: SeqAdvConfig | None = None,
):
    """``epoch(state, train [U, L], batches int32 [NB, B], root_key) -> (state, losses [NB])``.

    ``adv`` adds an adversarial term on the input embeddings of the masked sequence
    (``robustjax.seq_adv``: APR, PGD or convex-hull substitutions; [MASK] slots are never
    substituted); ``losses`` is then the whole objective.

    One jitted call runs a whole epoch (``lax.scan`` over batches of user indices);
    ``state`` is donated. Step keys are ``fold_in(root_key, state.step)`` split into
    masking, negative sampling and dropout keys, so a resumed run replays them.
    ``losses`` holds each batch's mean cross-entropy over masked slots.
    """
    if not 0.0 < mask_prob <= 1.0:
        raise ValueError(
            f"make_bert4rec_epoch_fn: mask_prob must be in (0, 1], got mask_prob={mask_prob!r}."
        )
    if not 0.0 <= mask_last_prob <= 1.0:
        raise ValueError(
            f"make_bert4rec_epoch_fn: mask_last_prob must be in [0, 1], got "
            f"mask_last_prob={mask_last_prob!r}."
        )
    if num_sampled < 0:
        raise ValueError(
            f"make_bert4rec_epoch_fn: num_sampled must be >= 0 (0 = full "
            f"softmax), got num_sampled={num_sampled!r}."
        )
    num_slots = num_predictions(mask_prob, max_len)
    mask_id = num_items + 1

    def loss_fn(params, seq, positions, targets, valid, negatives, key):
        model = nnx.merge(graphdef, params)
        emb = model.embed({"seq": seq})
        if adv is not None and adv.enabled:

            def per_slot(m, e, ids, k):
                return masked_item_loss(
                    m,
                    e["seq"],
                    ids,
                    positions,
                    targets,
                    valid,
                    negatives=negatives,
                    deterministic=False,
                    key=k,
                )

            return sequence_objective(adv, per_slot)(
                model, emb, seq, key=key, count=jnp.sum(valid)
            )[0]
        v = masked_item_loss(
            model,
            emb["seq"],
            seq,
            positions,
            targets,
            valid,
            negatives=negatives,
            deterministic=False,
            key=key,
        )
        return jnp.sum(v) / jnp.maximum(jnp.sum(valid), 1).astype(v.dtype)

    def step(state, users, train, root_key):
        key = jax.random.fold_in(root_key, state.step)
        k_mask, k_neg, k_drop = jax.random.split(key, 3)
        rows = train[users]
        seq, positions, targets, valid = mask_items(
            rows,
            mask_prob=mask_prob,
            mask_id=mask_id,
            num_slots=num_slots,
            mask_last_prob=mask_last_prob,
            key=k_mask,
        )
        negatives = (
            None
            if num_sampled == 0
            else jax.random.randint(
                k_neg, (*targets.shape, num_sampled), 1, num_items + 1, jnp.int32
            )
        )
        loss, grads = jax.value_and_grad(loss_fn)(
            state.params, seq, positions, targets, valid, negatives, k_drop
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return dataclasses.replace(
            state, step=state.step + 1, params=params, opt_state=opt_state
        ), loss

    @functools.partial(jax.jit, donate_argnames="state")
    def epoch(state, train, batches, root_key):
        if train.shape[1] != max_len:
            raise ValueError(
                f"bert4rec epoch: train rows have length {train.shape[1]}, "
                f"expected max_len={max_len}."
            )
        return jax.lax.scan(lambda s, u: step(s, u, train, root_key), state, batches)

    return epoch


def _rank_metrics(rank: Array, k: int) -> tuple[Array, Array]:
    hit = rank < k
    gain = 1.0 / jnp.log2(rank.astype(jnp.float32) + 2.0)
    return hit.astype(jnp.float32), jnp.where(hit, gain, jnp.zeros_like(gain))


def make_bert4rec_eval_fn(graphdef: nnx.GraphDef, batch_size: int = 256):
    """``evaluate(params, inputs [U, L], cands [U, C], exclude [U, I + 1]) -> metrics``.

    Works for any sequence model with ``embed``/``next_hidden``/``score_items``/
    ``score_all``. ``cands[:, 0]`` is the target, the rest are the sampled negatives;
    ``exclude`` marks each user's history (column 0, padding, is ignored), removed from
    the full ranking except the target. Returns means: ``hr@10``, ``ndcg@10`` (sampled)
    and ``full/hr@10``, ``full/ndcg@10``, ``full/recall@20``, ``full/ndcg@20``.
    """

    def one(params, inputs, cands, exclude):
        model = nnx.merge(graphdef, params)
        emb = model.embed({"seq": inputs})
        hidden = model.next_hidden(emb["seq"], inputs, deterministic=True)  # [B, D]
        s = model.score_items(hidden, cands)  # [B, C]
        rank = jnp.sum(s[:, 1:] > s[:, :1], axis=1)
        full = model.score_all(hidden)  # [B, I]
        target = cands[:, :1]
        t_score = jnp.take_along_axis(full, target - 1, axis=1)
        items = jnp.arange(1, full.shape[1] + 1)[None, :]
        drop = exclude[:, 1:] & (items != target)
        full_rank = jnp.sum((full > t_score) & ~drop, axis=1)
        hr, nd = _rank_metrics(rank, 10)
        fhr10, fnd10 = _rank_metrics(full_rank, 10)
        fhr20, fnd20 = _rank_metrics(full_rank, 20)
        return {
            "hr@10": hr,
            "ndcg@10": nd,
            "full/hr@10": fhr10,
            "full/ndcg@10": fnd10,
            "full/recall@20": fhr20,
            "full/ndcg@20": fnd20,
        }

    @jax.jit
    def evaluate(params, inputs, cands, exclude):
        n = inputs.shape[0]
        if cands.shape[0] != n or exclude.shape[0] != n:
            raise ValueError(
                f"bert4rec evaluate: inputs {inputs.shape}, cands {cands.shape} "
                f"and exclude {exclude.shape} must have the same number of users."
            )
        nb = -(-n // batch_size)
        pad = nb * batch_size - n

        def split(x, fill=0):
            x = jnp.pad(x, ((0, pad), (0, 0)), constant_values=fill)
            return x.reshape(nb, batch_size, *x.shape[1:])

        # padded users get candidate ids 1 (in range); their rows are dropped below
        xs = (split(inputs), split(cands, 1), split(exclude, False))
        out = jax.lax.map(lambda x: one(params, *x), xs)
        return {k: jnp.mean(v.reshape(-1)[:n]) for k, v in out.items()}

    return evaluate


def run_bert4rec(
    *,
    data_path: str | None,
    out_dir: str,
    epochs: int = 200,
    max_len: int = 100,
    dim: int = 64,
    num_blocks: int = 2,
    num_heads: int = 2,
    dropout: float = 0.1,
    mask_prob: float = 0.2,
    mask_last_prob: float = 0.0,
    num_sampled: int = 0,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    clip_norm: float = 5.0,
    batch_size: int = 128,
    seed: int = 0,
    eval_every: int = 10,
    time_budget_s: float | None = None,
    progress: bool = True,
    table: InteractionTable | None = None,
    synthetic: dict | None = None,
    adv: SeqAdvConfig | None = None,
) -> dict:
    """Trains BERT4Rec with masked-item prediction and evaluates it (sampled + full).

    Each epoch shuffles the users on the host (``default_rng((seed, epoch))``) and drops the
    last incomplete batch. Validation runs every ``eval_every`` epochs (and after the last);
    the best validation NDCG@10 (sampled protocol) selects the parameters that are tested
    and saved to ``out_dir/checkpoint/params.npz``. Stops early once ``time_budget_s`` of
    training has elapsed (after the current epoch). Optimiser: global-norm clipping then
    AdamW (``weight_decay=0`` is Adam).

    Writes ``out_dir/metrics.json`` and ``out_dir/history.jsonl``; returns the metrics.
    """
    from tqdm.auto import tqdm

    data_spec = {"synthetic": synthetic} if synthetic is not None else {"path": data_path}
    if table is None:
        if data_path is None and synthetic is None:
            raise ValueError(
                "run_bert4rec: pass data_path= (e.g. ../shared/data/ml-1m), synthetic= or table=."
            )
        table = load_table(data_spec)
    for name, value in (("epochs", epochs), ("eval_every", eval_every), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"run_bert4rec: {name} must be >= 1, got {name}={value!r}.")
    os.makedirs(out_dir, exist_ok=True)
    data = make_sequence_data(table, max_len=max_len, seed=seed)
    batch_size = min(batch_size, data.num_users)
    model_kwargs = {
        "num_items": data.num_items,
        "max_len": max_len,
        "dim": dim,
        "num_blocks": num_blocks,
        "num_heads": num_heads,
        "dropout": dropout,
    }
    model = BERT4Rec(**model_kwargs, rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.chain(
        optax.clip_by_global_norm(clip_norm),
        optax.adamw(lr, b1=0.9, b2=0.999, weight_decay=weight_decay),
    )
    state = init_state(params, tx)
    epoch_fn = make_bert4rec_epoch_fn(
        graphdef,
        tx,
        data.num_items,
        mask_prob=mask_prob,
        max_len=max_len,
        mask_last_prob=mask_last_prob,
        num_sampled=num_sampled,
        adv=adv,
    )
    eval_fn = make_bert4rec_eval_fn(graphdef)
    root_key = jax.random.key(seed)
    num_batches = data.num_users // batch_size
    train = data.train[:, 1:]  # last L training items
    users = jnp.arange(data.num_users)
    splits = {
        "valid": (data.valid_input, data.valid_cands, data.seen_train),
        "test": (
            data.test_input,
            data.test_cands,
            data.seen_train.at[users, data.valid_target].set(True),
        ),
    }

    def evaluate(p, split):
        res = jax.device_get(eval_fn(p, *splits[split]))
        return {f"{split}/{k}": float(v) for k, v in res.items()}

    config = {
        "epochs": epochs,
        "max_len": max_len,
        "dim": dim,
        "num_blocks": num_blocks,
        "num_heads": num_heads,
        "dropout": dropout,
        "mask_prob": mask_prob,
        "mask_last_prob": mask_last_prob,
        "num_sampled": num_sampled,
        "lr": lr,
        "weight_decay": weight_decay,
        "clip_norm": clip_norm,
        "batch_size": batch_size,
        "seed": seed,
        "eval_every": eval_every,
        "time_budget_s": time_budget_s,
        "data_path": data_path,
        "adv": None if adv is None else dataclasses.asdict(adv),
    }
    ckpt = os.path.join(out_dir, "checkpoint", "params.npz")
    hist_path = os.path.join(out_dir, "history.jsonl")
    open(hist_path, "w").close()
    best, best_params, best_epoch = -math.inf, None, 0
    epoch_times, train_seconds = [], 0.0
    bar = tqdm(range(1, epochs + 1), disable=not progress, desc="bert4rec")
    for epoch in bar:
        perm = np.random.default_rng((seed, epoch)).permutation(data.num_users)
        batches = jnp.asarray(
            perm[: num_batches * batch_size].reshape(num_batches, batch_size).astype(np.int32)
        )
        t0 = time.perf_counter()
        state, losses = epoch_fn(state, train, batches, root_key)
        loss = float(jnp.mean(losses))
        dt = time.perf_counter() - t0
        epoch_times.append(dt)
        train_seconds += dt
        rec = {"epoch": epoch, "loss": loss, "seconds": dt}
        out_of_time = time_budget_s is not None and train_seconds >= time_budget_s
        if epoch % eval_every == 0 or epoch == epochs or out_of_time:
            rec.update(evaluate(state.params, "valid"))
            if rec["valid/ndcg@10"] > best:
                best, best_epoch = rec["valid/ndcg@10"], epoch
                best_params = jax.tree.map(jnp.copy, state.params)
                save_sequence_run(
                    out_dir,
                    best_params,
                    model="bert4rec",
                    model_kwargs=model_kwargs,
                    data_spec=data_spec,
                    max_len=max_len,
                    seed=seed,
                    extra={"best_epoch": epoch, "config": config},
                )
                rec.update(evaluate(state.params, "test"))
        bar.set_postfix(
            loss=f"{loss:.4f}",
            **{
                k.split("/")[-1]: f"{v:.4f}"
                for k, v in rec.items()
                if k in ("valid/hr@10", "valid/ndcg@10")
            },
        )
        with open(hist_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if out_of_time:
            break
    metrics = {
        **evaluate(best_params, "valid"),
        **evaluate(best_params, "test"),
        "best_epoch": best_epoch,
        "epochs_run": len(epoch_times),
        "epoch_seconds_median": float(np.median(epoch_times[1:] or epoch_times)),
        "first_epoch_seconds": epoch_times[0],
        "train_seconds": train_seconds,
        "num_users": data.num_users,
        "num_items": data.num_items,
        "checkpoint": ckpt,
        "config": config,
    }
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    return metrics
