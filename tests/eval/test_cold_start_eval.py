"""Cold-start evaluation (robustjax.eval.cold) and its use in run_experiment."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.config import apply_overrides
from robustjax.data import DataConfig, prepare, user_item_csr
from robustjax.data.negatives import build_train_arrays, sample_negatives
from robustjax.eval import column_scores, evaluate_cold, shift_csr
from robustjax.experiments import get_config
from robustjax.models import build_model
from robustjax.run import load_run, run_experiment


def _table_scores(params, users):
    return params[users]


COLD_SCORES = column_scores(_table_scores, 3)  # built once: a static jit argument


def _csr(rows, num_users=3):
    indptr = np.zeros(num_users + 1, np.int64)
    np.cumsum(np.bincount([u for u, _ in rows], minlength=num_users), out=indptr[1:])
    return indptr, np.asarray([i for _, i in sorted(rows)], np.int32)


# 3 users x 5 items, items 3 and 4 cold. Warm scores are the highest: they must not count.
SCORES = jnp.asarray(
    [[9.0, 9.0, 9.0, 0.5, 0.9], [9.0, 9.0, 9.0, 0.1, 0.2], [9.0, 9.0, 9.0, 0.3, 0.4]]
)


def test_hand_computed_cold_metrics():
    target = _csr([(0, 4), (1, 3)])  # user 0: its best cold item; user 1: its 2nd
    m = evaluate_cold(
        COLD_SCORES, SCORES, target_csr=target, exclude_csrs=[], num_warm_items=3,
        num_items=5, ks=(1, 2, 10),
    )  # fmt: skip
    assert m["num_users"] == 2
    assert "ndcg@10" not in m  # 10 > 2 cold items: skipped
    np.testing.assert_allclose(m["recall@1"], 0.5)
    np.testing.assert_allclose(m["recall@2"], 1.0)
    np.testing.assert_allclose(m["ndcg@2"], (1.0 + 1.0 / np.log2(3)) / 2, rtol=1e-6)
    np.testing.assert_allclose(m["mrr@2"], (1.0 + 0.5) / 2, rtol=1e-6)
    np.testing.assert_allclose(m["auc"], 0.5)  # user 0: 1, user 1: 0
    # excluding user 1's other cold item (a valid row) makes its target first
    m = evaluate_cold(
        COLD_SCORES, SCORES, target_csr=target, exclude_csrs=[_csr([(1, 4), (2, 0)])],
        num_warm_items=3, num_items=5, ks=(1, 2),
    )  # fmt: skip
    np.testing.assert_allclose(m["ndcg@2"], 1.0)


def test_shift_csr_keeps_cold_entries_only():
    indptr, idx = shift_csr(_csr([(0, 1), (0, 4), (2, 3), (2, 2)]), 3, 5)
    assert indptr.tolist() == [0, 1, 1, 2] and idx.tolist() == [1, 0]


def test_no_cutoff_fits_and_bad_warm_count():
    args = {"target_csr": _csr([(0, 4)]), "exclude_csrs": [], "num_items": 5}
    assert evaluate_cold(COLD_SCORES, SCORES, num_warm_items=3, ks=(5,), **args) == {}
    with pytest.raises(ValueError, match="num_warm_items=5 must be in"):
        evaluate_cold(COLD_SCORES, SCORES, num_warm_items=5, ks=(1,), **args)


def _chance_ndcg(csr, num_cold: int, k: int) -> float:
    """Expected NDCG@k of a uniformly random ranking of ``num_cold`` candidates."""
    n = np.diff(csr[0])
    n = n[n > 0]
    disc = 1.0 / np.log2(np.arange(k) + 2.0)
    idcg = np.array([disc[: min(m, k)].sum() for m in n])
    return float(np.mean(n / num_cold * disc.sum() / idcg))


def test_untrained_id_model_is_at_chance_on_cold_items():
    split = prepare(DataConfig(split="cold_items", cold_item_ratio=0.2, synthetic_per_user=20))
    cold = split.num_cold_items  # 148 of the 740 items with rows
    target = user_item_csr(split.cold_test, split.num_users)
    got = []
    for seed in range(3):
        cfg = get_config("bpr-mf", tiny=True).model
        fns, params = build_model(cfg, split.num_users, split.num_items, seed=seed)
        m = evaluate_cold(
            column_scores(fns.score_all, split.num_warm_items), params, target_csr=target,
            exclude_csrs=[], num_warm_items=split.num_warm_items, num_items=split.num_items,
            ks=(20,),
        )  # fmt: skip
        got.append((m["ndcg@20"], m["auc"]))
    ndcg, auc = np.mean(got, axis=0)
    chance = _chance_ndcg(target, cold, 20)  # about 0.07; one random ranking: sd about 0.007
    assert 0.05 < chance < 0.5
    np.testing.assert_allclose(ndcg, chance, atol=0.015)
    np.testing.assert_allclose(auc, 0.5, atol=0.02)


@pytest.mark.parametrize("kind", ["uniform", "popularity"])
def test_negatives_never_sample_cold_items(kind):
    split = prepare(DataConfig(split="cold_items", cold_item_ratio=0.5, synthetic_items=100))
    data = build_train_arrays(
        split.train.user, split.train.item, split.num_users, split.num_warm_items
    )
    users = jnp.asarray(np.repeat(np.arange(split.num_users), 20), jnp.int32)
    neg = sample_negatives(data, users, jax.random.key(0), num=8, kind=kind)
    assert int(neg.max()) < split.num_warm_items
    assert np.unique(np.asarray(neg)).size > split.num_warm_items // 2


def test_run_reports_cold_metrics_and_keeps_cold_rows_at_init(tmp_path):
    cfg = apply_overrides(
        get_config("bpr-mf", tiny=True),
        ["data.split=cold_items", "data.cold_item_ratio=0.2", "train.epochs=2"],
    )
    metrics = run_experiment(cfg, str(tmp_path / "run"), progress=False)
    for part in ("valid", "test", "valid_cold", "test_cold"):
        assert {f"{part}/ndcg@5", f"{part}/recall@10", f"{part}/auc"} <= set(metrics)
    run = load_run(str(tmp_path / "run"))
    warm = run.split.num_warm_items
    assert run.split.num_cold_items == 12
    _, init = build_model(cfg.model, run.split.num_users, run.split.num_items, seed=cfg.train.seed)
    before = np.asarray(run.fns.get_tables(init)["item"])
    after = np.asarray(run.fns.get_tables(run.params)["item"])
    np.testing.assert_array_equal(after[warm:], before[warm:])
    assert not np.allclose(after[:warm], before[:warm])  # warm rows did train
