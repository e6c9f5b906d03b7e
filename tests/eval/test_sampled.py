import jax.numpy as jnp
import numpy as np
import pytest
from eval_reference import ref_rank_metrics

from robustjax.eval import evaluate_sampled, make_sampled_candidates, metric_keys

U, I, D, N = 30, 60, 5, 9
KS = (1, 3, 10)


def mf_item_scores(params, users, items):
    return jnp.einsum("bd,bcd->bc", params["user"][users], params["item"][items])


def constant_scores(params, users, items):
    return jnp.zeros(items.shape, jnp.float32)


def _csr(mask):
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    return indptr, np.nonzero(mask)[1].astype(np.int32)


def _case():
    rng = np.random.default_rng(0)
    train = rng.random((U, I)) < 0.3
    test = (rng.random((U, I)) < 0.05) & ~train
    test[3] = False
    test[4, :] = False
    test[4, 7] = True
    params = {
        "user": jnp.asarray(rng.integers(-1, 2, (U, D)), jnp.float32),
        "item": jnp.asarray(rng.integers(-1, 2, (I, D)), jnp.float32),
    }
    return params, train, test


def test_candidates_exclude_positives_and_are_reproducible():
    _, train, test = _case()
    cands = make_sampled_candidates(_csr(test), [_csr(train)], num_items=I, num_negatives=N, seed=7)
    rows_u, rows_i = np.nonzero(test)
    np.testing.assert_array_equal(cands.users, rows_u)
    np.testing.assert_array_equal(cands.items[:, 0], rows_i)
    assert cands.items.shape == (test.sum(), 1 + N) and cands.items.dtype == np.int32
    negatives = cands.items[:, 1:]
    positives = train | test
    assert not positives[cands.users[:, None], negatives].any()
    assert all(np.unique(row).size == N for row in negatives)
    again = make_sampled_candidates(_csr(test), [_csr(train)], num_items=I, num_negatives=N, seed=7)
    other = make_sampled_candidates(_csr(test), [_csr(train)], num_items=I, num_negatives=N, seed=8)
    np.testing.assert_array_equal(again.items, cands.items)
    assert not np.array_equal(other.items, cands.items)


def test_evaluate_sampled_matches_reference(strict_promotion):
    params, train, test = _case()
    cands = make_sampled_candidates(_csr(test), [_csr(train)], num_items=I, num_negatives=N, seed=0)
    out = evaluate_sampled(mf_item_scores, params, cands, ks=KS, batch_size=16)
    user_emb, item_emb = np.asarray(params["user"]), np.asarray(params["item"])
    scores = np.einsum("bd,bcd->bc", user_emb[cands.users], item_emb[cands.items])
    target = np.zeros(scores.shape, bool)
    target[:, 0] = True
    ref = ref_rank_metrics(scores, target, np.zeros_like(target), KS)
    for name in metric_keys(KS):
        np.testing.assert_allclose(out[name], ref[name].mean(), rtol=1e-5, err_msg=name)
    assert out["num_rows"] == test.sum() and out["num_users"] == test.any(axis=1).sum()
    np.testing.assert_allclose(out["recall@3"], out["hr@3"])  # one positive per row


def test_ties_favour_the_positive_and_errors():
    params, train, test = _case()
    cands = make_sampled_candidates(_csr(test), [_csr(train)], num_items=I, num_negatives=N, seed=0)
    out = evaluate_sampled(constant_scores, params, cands, ks=(1,))
    assert out["hr@1"] == 1.0 and out["auc"] == 0.5  # documented optimistic tie rule
    with pytest.raises(ValueError, match="fewer than num_negatives=59"):
        make_sampled_candidates(_csr(test), [_csr(train)], num_items=I, num_negatives=59, seed=0)
    with pytest.raises(ValueError, match="K=11 exceeds"):
        evaluate_sampled(mf_item_scores, params, cands, ks=(11,))
