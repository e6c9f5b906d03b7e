"""Evaluation of sequential models: each held-out target's rank among candidates.

Sampled protocol: the target (``cands[:, 0]``) against the fixed sampled negatives of
:class:`robustjax.data.sequences.SequenceData`. Full ranking: all items ``1..I`` with the
user's history removed, except the target. Rank = number of competitors scored strictly
higher (ties favour the target); ``hr@k = 1[rank < k]``, ``ndcg@k = 1[rank < k] /
log2(rank + 2)`` (with one target, recall@k equals hr@k).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax.eval.ranking import single_target_metrics


def make_sasrec_eval_fn(graphdef: nnx.GraphDef, batch_size: int = 512):
    """``evaluate(params, inputs [U, L], cands [U, C]) -> {"hr@10", "ndcg@10"}`` (means).

    Candidate 0 is the target; its rank is the number of candidates scored strictly higher
    (ties favour the target). ``hr@10 = 1[rank < 10]``, ``ndcg@10 = 1[rank < 10] /
    log2(rank + 2)``.
    """

    def one(params, inputs, cands):
        model = nnx.merge(graphdef, params)
        emb = model.embed({"seq": inputs})
        hidden = model.encode(emb["seq"], inputs, deterministic=True)[:, -1]  # [B, D]
        scores = model.score_items(hidden, cands)  # [B, C]
        rank = jnp.sum(scores[:, 1:] > scores[:, :1], axis=1)
        return single_target_metrics(rank, 10)

    @jax.jit
    def evaluate(params, inputs, cands):
        n = inputs.shape[0]
        nb = -(-n // batch_size)
        pad = nb * batch_size - n
        inp = jnp.pad(inputs, ((0, pad), (0, 0))).reshape(nb, batch_size, -1)
        cnd = jnp.pad(cands, ((0, pad), (0, 0))).reshape(nb, batch_size, -1)
        hr, ndcg = jax.lax.map(lambda xs: one(params, *xs), (inp, cnd))
        return {"hr@10": jnp.mean(hr.reshape(-1)[:n]), "ndcg@10": jnp.mean(ndcg.reshape(-1)[:n])}

    return evaluate


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
        hr, nd = single_target_metrics(rank, 10)
        fhr10, fnd10 = single_target_metrics(full_rank, 10)
        fhr20, fnd20 = single_target_metrics(full_rank, 20)
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
