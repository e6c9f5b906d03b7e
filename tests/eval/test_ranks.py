"""Rank-count metrics (robustjax.eval.ranks) against the brute-force sorted reference:
ties everywhere, users with more targets than a slot row, several item chunks, +/-inf and
NaN scores, excluded targets; plus the SWAR counter and the chunked top-K merge."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from eval_reference import ref_rank_metrics

from robustjax.eval import evaluate_full, metric_keys
from robustjax.eval.full import top_items
from robustjax.eval.ranks import count_true

KS = (1, 3, 10)


def _csr(mask):
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    return indptr, np.nonzero(mask)[1].astype(np.int32)


def _check(scores, target, exclude, **kw):
    scores = np.asarray(scores, np.float32)
    out = evaluate_full(
        lambda p, u: p[u],
        jnp.asarray(scores),
        target_csr=_csr(target),
        exclude_csrs=[_csr(exclude)],
        num_items=scores.shape[1],
        ks=KS,
        **kw,
    )
    ref = ref_rank_metrics(scores, target, exclude, KS)
    keep = ref["valid"] > 0
    assert out["num_users"] == int(keep.sum())
    for name in metric_keys(KS):
        np.testing.assert_allclose(
            out[name], ref[name][keep].mean(), rtol=1e-5, atol=1e-6, err_msg=name
        )


@pytest.mark.parametrize("item_chunk_items", [None, 128])
def test_ties_and_many_targets(item_chunk_items, monkeypatch):
    """Scores from three values only (ties everywhere), 300 items (3 chunks of 128), users
    with up to 60 targets (8 slot rows), excluded targets."""
    rng = np.random.default_rng(0)
    users, items = 12, 300
    scores = rng.integers(0, 3, (users, items)).astype(np.float32)
    scores[0, :5] = [np.inf, -np.inf, np.nan, np.inf, -np.inf]
    target = rng.random((users, items)) < rng.uniform(0.01, 0.2, (users, 1))
    target[1, :] = False
    target[2, :60] = True  # many targets, and ties among them
    target[0, :5] = True
    exclude = (rng.random((users, items)) < 0.2) & (rng.random((users, items)) < 0.9)
    if item_chunk_items:
        from robustjax.eval import full

        step = full.eval_full_step

        def chunked(*args, **kw):
            return step(*args, **{**kw, "item_chunk": item_chunk_items})

        monkeypatch.setattr(full, "eval_full_step", chunked)
    _check(scores, target, exclude, batch_size=5)


def test_single_user_all_tied():
    scores = np.zeros((1, 40), np.float32)
    target = np.zeros((1, 40), bool)
    target[0, [3, 17, 39]] = True
    exclude = np.zeros((1, 40), bool)
    exclude[0, [0, 17]] = True
    _check(scores, target, exclude)


def test_count_true_exact():
    rng = np.random.default_rng(1)
    for n in (3, 9, 1020, 1792, 4097):
        x = rng.random((3, n)) < 0.6
        np.testing.assert_array_equal(count_true(jnp.asarray(x)), x.sum(axis=1))
        v = rng.integers(0, 3, (2, n)).astype(np.uint8)
        np.testing.assert_array_equal(count_true(jnp.asarray(v), max_value=2), v.sum(axis=1))
    with pytest.raises(ValueError, match="max_value"):
        count_true(jnp.ones((2, 8), bool), max_value=256)


def test_chunked_top_items_matches_top_k():
    rng = np.random.default_rng(2)
    scores = jnp.asarray(rng.integers(0, 5, (4, 1000)).astype(np.float32))
    exclude = jnp.asarray(rng.random((4, 1000)) < 0.3)
    whole = top_items(scores, exclude, 20, item_chunk=4096)
    chunked = top_items(scores, exclude, 20, item_chunk=96)
    masked = jnp.where(exclude, -jnp.inf, scores)
    ref_s, ref_i = jax.lax.top_k(masked, 20)
    np.testing.assert_array_equal(whole[0], ref_i)
    np.testing.assert_array_equal(chunked[0], ref_i)  # ties keep the lower id
    np.testing.assert_array_equal(chunked[1], ref_s)
