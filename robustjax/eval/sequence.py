"""Evaluation of sequential models: each held-out target's rank among candidates.

Full ranking: all items ``1..I`` with the user's history removed, except the target.
Sampled protocol: the target (``cands[:, 0]``) against the fixed sampled negatives
``cands[:, 1:]`` of :class:`robustjax.data.sequences.SequenceData`. Rank = number of
competitors scored strictly higher (ties favour the target); ``hr@k = 1[rank < k]``,
``ndcg@k = 1[rank < k] / log2(rank + 2)`` (:func:`robustjax.eval.ranking.single_target_metrics`;
with one target, recall@k equals hr@k). Keys follow the pair models' convention: full
ranking ``hr@k``, ``recall@k``, ``ndcg@k``; sampled ``sampled_hr@k``, ``sampled_ndcg@k``.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from robustjax.eval.ranking import single_target_metrics


def make_sequence_eval_fn(graphdef: nnx.GraphDef, *, ks: tuple[int, ...], batch_size: int = 256):
    """``evaluate(params, inputs [U, L], cands [U, C], exclude [U, I + 1]) -> metrics``.

    Works for any sequence model with ``embed``/``next_hidden``/``score_items``/
    ``score_all``. ``cands[:, 0]`` is the target; with ``C > 1`` the other columns are the
    sampled negatives and the sampled metrics are added. ``exclude`` marks each user's
    history (column 0, padding, is ignored). Returns the means over users of the metrics
    named in the module docstring, for every ``k`` in ``ks``.
    """
    ks = tuple(ks)

    def one(params, inputs, cands, exclude):
        model = nnx.merge(graphdef, params)
        emb = model.embed({"seq": inputs})
        hidden = model.next_hidden(emb["seq"], inputs, deterministic=True)  # [B, D]
        out = {}
        if cands.shape[1] > 1:
            s = model.score_items(hidden, cands)  # [B, C]
            rank = jnp.sum(s[:, 1:] > s[:, :1], axis=1)
            for k in ks:
                out[f"sampled_hr@{k}"], out[f"sampled_ndcg@{k}"] = single_target_metrics(rank, k)
        full = model.score_all(hidden)  # [B, I]
        target = cands[:, :1]
        t_score = jnp.take_along_axis(full, target - 1, axis=1)
        items = jnp.arange(1, full.shape[1] + 1)[None, :]
        drop = exclude[:, 1:] & (items != target)
        full_rank = jnp.sum((full > t_score) & ~drop, axis=1)
        for k in ks:
            out[f"hr@{k}"], out[f"ndcg@{k}"] = single_target_metrics(full_rank, k)
            out[f"recall@{k}"] = out[f"hr@{k}"]
        return out

    @jax.jit
    def evaluate(params, inputs, cands, exclude):
        n = inputs.shape[0]
        if cands.shape[0] != n or exclude.shape[0] != n:
            raise ValueError(
                f"sequence evaluate: inputs {inputs.shape}, cands {cands.shape} "
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
