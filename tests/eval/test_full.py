import jax.numpy as jnp
import numpy as np
import pytest
from eval_reference import ref_rank_metrics

from robustjax.eval import evaluate_full, evaluate_planned, metric_keys, plan_full

KS = (1, 5, 10)
U, I, D = 50, 40, 6


def mf_scores(params, users):
    return params["user"][users] @ params["item"].T


def _csr(mask):
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    return indptr, np.nonzero(mask)[1].astype(np.int32)


def _case(seed=0):
    rng = np.random.default_rng(seed)
    # Small integer embeddings: exact scores, so jax and numpy agree on every tie.
    params = {
        "user": jnp.asarray(rng.integers(-1, 2, (U, D)), jnp.float32),
        "item": jnp.asarray(rng.integers(-1, 2, (I, D)), jnp.float32),
    }
    train = rng.random((U, I)) < 0.2
    valid = (rng.random((U, I)) < 0.05) & ~train
    test = (rng.random((U, I)) < 0.1) & ~valid
    test[::4] = False  # users without test items are skipped
    return params, train, valid, test


def _reference(params, train, valid, test):
    scores = np.asarray(params["user"]) @ np.asarray(params["item"]).T
    ref = ref_rank_metrics(scores, test, train | valid, KS)
    keep = ref["valid"] > 0
    return {name: ref[name][keep].mean() for name in metric_keys(KS)} | {
        "num_users": int(keep.sum())
    }, scores


@pytest.mark.parametrize("batch_size", [7, 50, 64])
def test_batched_matches_reference(batch_size, strict_promotion):
    params, train, valid, test = _case()
    calls = []

    def counting_scores(params, users):  # a fresh function: traced once per compile
        calls.append(users.shape)
        return mf_scores(params, users)

    out = evaluate_full(
        counting_scores,
        params,
        target_csr=_csr(test),
        exclude_csrs=[_csr(train), _csr(valid)],
        num_items=I,
        ks=KS,
        batch_size=batch_size,
    )
    expected, _ = _reference(params, train, valid, test)
    assert out["num_users"] == expected["num_users"] == np.sum(test.any(axis=1))
    assert set(out) == set(expected)
    for name in metric_keys(KS):
        assert isinstance(out[name], float)
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert len(calls) == 1  # the padded last batch reuses the compiled step


def test_plan_reused_across_params_equals_fresh_evaluations():
    """One plan (the host packing, done once) serves any number of parameter sets: each
    gives the reference metrics of its own scores, and the top-N lists as evaluate_full."""
    _, train, valid, test = _case(2)
    plan = plan_full(
        target_csr=_csr(test), exclude_csrs=[_csr(train), _csr(valid)], num_items=I,
        batch_size=16,
    )  # fmt: skip
    assert plan.users.tolist() == np.flatnonzero(test.any(axis=1)).tolist()
    for seed in (3, 4):
        params = _case(seed)[0]
        out, top = evaluate_planned(mf_scores, params, plan, ks=KS, return_topk=4)
        expected, _ = _reference(params, train, valid, test)
        for name in metric_keys(KS):
            np.testing.assert_allclose(out[name], expected[name], rtol=1e-5, atol=1e-7)
        _, fresh = evaluate_full(
            mf_scores, params, target_csr=_csr(test), exclude_csrs=[_csr(train), _csr(valid)],
            num_items=I, ks=KS, batch_size=16, return_topk=4,
        )  # fmt: skip
        np.testing.assert_array_equal(top.items, fresh.items)
    no_auc = evaluate_planned(mf_scores, params, plan, ks=KS, auc=False)
    assert "auc" not in no_auc and no_auc["recall@5"] == out["recall@5"]
    with pytest.raises(ValueError, match="K=50"):
        evaluate_planned(mf_scores, params, plan, ks=(50,))


def test_topk_and_user_subset():
    params, train, valid, test = _case(1)
    exclude = train | valid
    _, top = evaluate_full(
        mf_scores,
        params,
        target_csr=_csr(test),
        exclude_csrs=[_csr(train), _csr(valid)],
        num_items=I,
        ks=KS,
        batch_size=16,
        return_topk=5,
    )
    _, scores = _reference(params, train, valid, test)
    np.testing.assert_array_equal(top.users, np.flatnonzero(test.any(axis=1)))
    assert top.items.shape == (top.users.size, 5) and top.items.dtype == np.int32
    for row, u in enumerate(top.users):
        cand = [i for i in np.argsort(-scores[u], kind="stable") if not exclude[u, i]]
        np.testing.assert_array_equal(top.items[row], cand[:5])
        np.testing.assert_allclose(top.scores[row], scores[u, cand[:5]])
    subset = np.array([0, 1, 2, 3, 5])  # user 0 has no test items: only 4 are evaluated
    part = evaluate_full(
        mf_scores,
        params,
        target_csr=_csr(test),
        exclude_csrs=[_csr(train), _csr(valid)],
        num_items=I,
        ks=KS,
        users=subset,
    )
    assert part["num_users"] == 4


def test_no_users_and_errors():
    params, train, _, test = _case()
    empty = evaluate_full(
        mf_scores,
        params,
        target_csr=_csr(np.zeros((U, I), bool)),
        exclude_csrs=[],
        num_items=I,
        ks=KS,
    )
    assert empty["num_users"] == 0 and all(empty[n] == 0.0 for n in metric_keys(KS))
    with pytest.raises(ValueError, match="exclude_csrs\\[0\\] has 49 users"):
        evaluate_full(
            mf_scores,
            params,
            target_csr=_csr(test),
            exclude_csrs=[_csr(train[:-1])],
            num_items=I,
            ks=KS,
        )
    with pytest.raises(ValueError, match="num_items=30"):
        evaluate_full(
            mf_scores, params, target_csr=_csr(test), exclude_csrs=[], num_items=30, ks=KS
        )
    with pytest.raises(ValueError, match="K=50 exceeds"):
        evaluate_full(
            mf_scores, params, target_csr=_csr(test), exclude_csrs=[], num_items=I, ks=(50,)
        )
