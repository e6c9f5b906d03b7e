import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.data import split_random, synthetic, user_item_csr
from robustjax.eval import evaluate_full
from robustjax.eval.sweep import SweepConfig, parse_eps, run_sweep
from robustjax.models import ModelConfig, build_model
from robustjax.train import build_train_arrays


@pytest.fixture(scope="module")
def setup():
    table = synthetic(num_users=60, num_items=90, interactions_per_user=12, seed=0)
    split = split_random(table, seed=0)
    fns, params = build_model(ModelConfig(dim=8), split.num_users, split.num_items, seed=0)
    params = jax.tree.map(lambda x: 3.0 * x, params)
    data = build_train_arrays(split.train.user, split.train.item, split.num_users, split.num_items)
    csr = lambda t: user_item_csr(t, split.num_users)
    return {
        "fns": fns,
        "params": params,
        "data": data,
        "target_csr": csr(split.test),
        "exclude_csrs": [csr(split.train), csr(split.valid)],
        "num_items": split.num_items,
    }


def _sweep(setup, **kw):
    return run_sweep(
        setup["fns"],
        setup["params"],
        data=setup["data"],
        target_csr=setup["target_csr"],
        exclude_csrs=setup["exclude_csrs"],
        num_items=setup["num_items"],
        cfg=SweepConfig(**kw),
        progress=False,
    )


def test_eps0_reproduces_clean_metrics_exactly(setup):
    res = _sweep(setup, kind="pgd", eps=(0.0, 0.5), ks=(5, 10), auc=True, user_batch=16)
    clean = evaluate_full(
        setup["fns"].score_all,
        setup["params"],
        target_csr=setup["target_csr"],
        exclude_csrs=setup["exclude_csrs"],
        num_items=setup["num_items"],
        ks=(5, 10),
    )
    for name in ("recall@10", "ndcg@10", "hr@5", "precision@5", "mrr@10", "auc"):
        assert res["metrics"][name][0][0] == pytest.approx(clean[name], abs=1e-6), name
    assert res["metrics"]["jaccard@20"][0][0] == 1.0
    assert res["metrics"]["rbo@20"][0][0] == pytest.approx(1.0)
    assert res["metrics"]["prediction_shift"][0][0] == 0.0


def test_vmapped_levels_equal_looped_levels(setup):
    grid = (0.0, 0.2, 0.6)
    joint = _sweep(setup, kind="fgsm", eps=grid, seeds=(0, 1), user_batch=16)
    for si, seed in enumerate((0, 1)):
        for ei, eps in enumerate(grid):
            one = _sweep(setup, kind="fgsm", eps=(eps,), seeds=(seed,), user_batch=16)
            for name in ("ndcg@20", "recall@10", "jaccard@20", "tail/ndcg@20"):
                assert joint["metrics"][name][si][ei] == pytest.approx(
                    one["metrics"][name][0][0], abs=1e-5
                ), (name, seed, eps)


def test_a_chunked_attack_equals_the_unchunked_one(setup, monkeypatch):
    """Where the attack's pairs would pass memory_mb they go in rematerialised chunks
    (robustjax.eval.attacked.per_example_chunked): the sweep's results do not change."""
    from robustjax.eval import attacked

    whole = _sweep(setup, kind="pgd", eps=(0.0, 0.3, 0.8), user_batch=16)
    seen = []

    def small(num_examples, bytes_per_example, budget_bytes):
        seen.append(num_examples)
        return 97  # several chunks and a padded last one

    monkeypatch.setattr(attacked, "chunk_examples", small)
    chunked = _sweep(setup, kind="pgd", eps=(0.0, 0.3, 0.8), user_batch=16)
    assert seen and seen[0] > 97
    for name in ("ndcg@20", "recall@10", "jaccard@20", "prediction_shift"):
        np.testing.assert_allclose(
            chunked["metrics"][name], whole["metrics"][name], rtol=1e-5, atol=1e-6, err_msg=name
        )


@pytest.mark.slow
def test_worst_case_attack_is_monotone_on_a_toy_model(setup):
    """The held-out objective directly lowers the test positives' scores: NDCG must not
    rise with eps (PGD from the same start, nested balls)."""
    res = _sweep(
        setup,
        kind="pgd",
        eps=tuple(np.linspace(0, 2, 6)),
        objective="oracle",
        num_steps=20,
        ks=(10,),
    )
    curve = np.asarray(res["metrics"]["ndcg@10"][0])
    assert curve[-1] < curve[0]
    assert np.all(np.diff(curve) <= 1e-6)


def test_targeted_mode_promotes_targets(setup):
    res = _sweep(
        setup,
        kind="pgd",
        eps=(0.0, 1.0, 3.0),
        objective="targeted",
        target_items=(3, 7),
        num_steps=10,
    )
    hr = res["metrics"]["target_hr@20"][0]
    assert hr[2] > hr[0]


def test_target_hit_ratio_averages_over_eligible_users_only(setup):
    """Users who already interacted with a target can never be hit by it (it is excluded
    from their ranking); the hit ratio counts only users who saw no target, as
    robustjax.poison.metrics does. Checked against a NumPy recomputation at eps 0."""
    targets = (3, 7)
    res = _sweep(setup, kind="gaussian", eps=(0.0,), objective="targeted", target_items=targets)
    fns, params = setup["fns"], setup["params"]
    n_users = setup["target_csr"][0].shape[0] - 1
    users = np.nonzero(np.diff(setup["target_csr"][0]) > 0)[0]
    seen = np.zeros((n_users, setup["num_items"]), bool)
    for indptr, indices in setup["exclude_csrs"]:
        for u in range(n_users):
            seen[u, indices[indptr[u] : indptr[u + 1]]] = True
    scores = np.asarray(fns.score_all(params, jnp.asarray(users, jnp.int32)), np.float64)
    scores[seen[users]] = -np.inf
    ratios = []
    for row, u in enumerate(users):
        if seen[u, list(targets)].any():
            continue  # not eligible
        top = np.argsort(-scores[row], kind="stable")[:20]
        ratios.append(np.isin(list(targets), top).mean())
    assert 0 < len(ratios) < len(users)  # some users are not eligible
    np.testing.assert_allclose(res["metrics"]["target_hr@20"][0][0], np.mean(ratios), rtol=1e-6)


def test_groups_partition_the_users(setup):
    res = _sweep(setup, kind="gaussian", eps=(0.0, 0.1))
    assert sum(g["num_users"] for g in res["groups"].values()) == res["num_users"]


def test_bad_input_is_reported(setup):
    with pytest.raises(ValueError, match=r"eps must be finite and >= 0, got \[-0.5\]"):
        SweepConfig(eps=(0.0, -0.5))
    with pytest.raises(ValueError, match="exceed the number of items"):
        _sweep(setup, eps=(0.0,), ks=(1000,))
    with pytest.raises(ValueError, match="target_items"):
        SweepConfig(objective="targeted")
    with pytest.raises(ValueError, match="START:STOP:COUNT"):
        parse_eps("0:1")
    assert parse_eps("0:1:5") == (0.0, 0.25, 0.5, 0.75, 1.0)
    _ = jnp


def test_a_registered_attack_runs_in_the_sweep(setup, monkeypatch):
    """One registry entry, no other file: the sweep runs it (here a deterministic shift
    of every table row by eps / 2 per coordinate)."""
    from robustjax.attacks import EMBEDDING_ATTACKS, EmbeddingAttack

    def shift(loss_fn, emb, *, eps, targets, **_):
        del loss_fn
        return {k: jnp.full_like(v, 0.5 * eps) * (k in targets) for k, v in emb.items()}

    monkeypatch.setitem(EMBEDDING_ATTACKS, "shift", EmbeddingAttack(shift))
    res = _sweep(setup, kind="shift", eps=(0.0, 5.0), ks=(10,))
    base = _sweep(setup, kind="pgd", eps=(0.0,), ks=(10,))
    assert res["metrics"]["ndcg@10"][0][0] == base["metrics"]["ndcg@10"][0][0]
    assert res["metrics"]["prediction_shift"][0][1] > 0
    assert res["attack"]["kind"] == "shift"


def _rescaled(setup, a):
    """The same MF with users x a and items x 1/a: every score is unchanged."""
    fns = setup["fns"]
    t = fns.get_tables(setup["params"])
    return fns.set_tables(setup["params"], {"user": t["user"] * a, "item": t["item"] / a})


@pytest.mark.parametrize("kind", ["pgd", pytest.param("gaussian", marks=pytest.mark.slow)])
def test_relative_budget_is_invariant_to_score_preserving_rescaling(setup, kind):
    kw = {"kind": kind, "eps": (0.0, 0.25, 0.5), "num_steps": 3, "seeds": (0,)}
    curves = {}
    for a in (1.0, 2.0):
        params = _rescaled(setup, a)
        for budget in ("absolute", "relative"):
            res = run_sweep(
                setup["fns"], params, data=setup["data"], target_csr=setup["target_csr"],
                exclude_csrs=setup["exclude_csrs"], num_items=setup["num_items"],
                cfg=SweepConfig(budget=budget, **kw), progress=False,
            )  # fmt: skip
            curves[a, budget] = np.asarray(res["metrics"]["ndcg@10"][0])
            if budget == "relative":
                norms = res["norms"]
                assert set(norms) == {"user", "item"} and norms["user"]["mean"] > 0
    # relative: the same curve to float tolerance; absolute: the rescaling changes it
    np.testing.assert_allclose(curves[1.0, "relative"], curves[2.0, "relative"], atol=1e-5)
    assert curves[1.0, "absolute"][0] == curves[2.0, "absolute"][0]  # eps 0: clean
    assert not np.allclose(curves[1.0, "absolute"][1:], curves[2.0, "absolute"][1:], atol=1e-3)


def test_relative_budget_bounds_each_row_by_its_norm():
    from robustjax.attacks import AttackConfig, make_attack, relative_budget

    emb = {"user": jnp.asarray([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])}
    attack = relative_budget(
        make_attack(AttackConfig(kind="pgd", num_steps=3, targets=("user",)), ("user",))
    )
    delta = attack(lambda e: jnp.sum(e["user"] ** 2, axis=-1), emb, key=None, eps=0.5)["user"]
    n = np.linalg.norm(np.asarray(delta), axis=-1)
    np.testing.assert_allclose(n, [2.5, 0.25, 0.0], rtol=1e-5)  # eps * ||row||, 0 for 0
