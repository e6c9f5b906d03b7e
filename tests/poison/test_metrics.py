import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.data import DataConfig, prepare, synthetic, user_item_csr
from robustjax.poison import eligible_users, split_target_metrics, target_metrics


def _reference(scores, train_mask, targets, users, k):
    """Brute force: stable sort of each user's ranking without training items."""
    hits, ndcg = [], []
    for u in users:
        s = scores[u].astype(np.float64).copy()
        s[train_mask[u]] = -np.inf
        order = np.argsort(-s, kind="stable")  # ties: lower item id first
        pos = np.empty_like(order)
        pos[order] = np.arange(order.size)
        for t in targets:
            r = pos[t]
            hits.append(float(r < k))
            ndcg.append(1.0 / np.log2(r + 2.0) if r < k else 0.0)
    return np.mean(hits), np.mean(ndcg)


@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("batch_size", [2, 64])
def test_target_metrics_match_brute_force(k, batch_size):
    rng = np.random.default_rng(0)
    num_users, num_items = 9, 12
    # rounded scores create ties, resolved by item id in both implementations
    scores = np.round(rng.normal(size=(num_users, num_items)), 1).astype(np.float32)
    train_mask = rng.random((num_users, num_items)) < 0.3
    targets = np.array([2, 5, 11], np.int32)
    train_mask[:, targets] = False
    indptr = np.concatenate([[0], np.cumsum(train_mask.sum(1))]).astype(np.int64)
    indices = np.nonzero(train_mask)[1].astype(np.int32)
    users = np.array([0, 2, 3, 5, 8])
    table = jnp.asarray(scores)
    out = target_metrics(
        lambda p, u: p[u],
        table,
        targets=targets,
        users=users,
        exclude_csr=(indptr, indices),
        num_items=num_items,
        k=k,
        batch_size=batch_size,
    )
    hr, ndcg = _reference(scores, train_mask, targets, users, k)
    assert out[f"hr@{k}"] == pytest.approx(hr, abs=1e-6)
    assert out[f"ndcg@{k}"] == pytest.approx(ndcg, abs=1e-6)
    assert out["num_users"] == users.size and out["num_pairs"] == users.size * 3


def test_eligible_users_exclude_every_part_and_fakes():
    split = prepare(DataConfig(synthetic_users=30, synthetic_items=40, synthetic_per_user=8))
    targets = np.array([split.test.item[0], split.valid.item[0]])
    el = eligible_users(split, targets, num_real_users=25)
    assert el.max() < 25
    for part in (split.train, split.valid, split.test):
        assert not np.isin(part.user[np.isin(part.item, targets)], el).any()
    out = split_target_metrics(
        lambda p, u: p[u], jnp.zeros((30, 40)), split, targets, num_real_users=25, k=5
    )
    assert out["num_users"] == el.size
    # all-zero scores: ties go to lower ids, so a target is a hit iff few lower unseen ids
    assert 0.0 <= out["hr@5"] <= 1.0


def test_target_metrics_validate_arguments():
    csr = user_item_csr(synthetic(num_users=5, num_items=10, interactions_per_user=2, seed=0))
    kw = {"targets": [1], "users": np.array([0]), "exclude_csr": csr, "num_items": 10}
    with pytest.raises(ValueError, match="k must"):
        target_metrics(lambda p, u: p[u], jnp.zeros((5, 10)), k=11, **kw)
    empty = target_metrics(
        lambda p, u: p[u], jnp.zeros((5, 10)), k=3, **{**kw, "users": np.zeros(0, int)}
    )
    assert empty["hr@3"] == 0.0 and empty["num_pairs"] == 0
