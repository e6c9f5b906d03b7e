import numpy as np
import pytest

from robustjax.data import DataConfig, prepare
from robustjax.poison import (
    HEURISTIC_ATTACKS,
    FakeProfiles,
    fake_user_ids,
    heuristic_attack,
    inject,
    item_popularity,
    load,
    pick_targets,
)


@pytest.fixture(scope="module")
def split():
    return prepare(DataConfig(synthetic_users=60, synthetic_items=90, synthetic_per_user=10))


def _check_budget(prof: FakeProfiles, targets, num_fake, filler_size, num_items):
    assert prof.items.shape == (num_fake, len(targets) + filler_size)
    assert prof.items.dtype == np.int32
    for row in prof.items:
        assert len(set(row.tolist())) == row.size  # distinct
        assert set(targets.tolist()) <= set(row.tolist())  # all targets
        fillers = [i for i in row if i not in targets]
        assert len(fillers) == filler_size  # exactly the budget
    assert prof.items.min() >= 0 and prof.items.max() < num_items
    assert prof.fillers().shape == (num_fake, filler_size)


@pytest.mark.parametrize("attack", HEURISTIC_ATTACKS)
@pytest.mark.parametrize("filler_size", [0, 7])
def test_heuristic_profiles_respect_budget(split, attack, filler_size):
    targets = pick_targets(split.train, 3, "tail", seed=0)
    prof = heuristic_attack(attack, split.train, targets, 4, filler_size, seed=1)
    _check_budget(prof, targets, 4, filler_size, split.num_items)
    again = heuristic_attack(attack, split.train, targets, 4, filler_size, seed=1)
    assert prof.fingerprint() == again.fingerprint()  # seeded


def test_heuristic_attacks_accept_csr(split):
    from robustjax.data import user_item_csr

    targets = np.array([1, 2], np.int32)
    a = heuristic_attack("average", split.train, targets, 3, 5, seed=4)
    b = heuristic_attack(
        "average", user_item_csr(split.train), targets, 3, 5, seed=4, num_items=split.num_items
    )
    assert a.fingerprint() == b.fingerprint()
    with pytest.raises(ValueError, match="num_items"):
        heuristic_attack("random", user_item_csr(split.train), targets, 3, 5, seed=4)


def test_bandwagon_uses_most_popular_items(split):
    pop = item_popularity(split.train)
    targets = pick_targets(split.train, 2, "tail", seed=3)
    prof = heuristic_attack("bandwagon", split.train, targets, 3, 10, seed=0)
    order = [i for i in np.argsort(-pop, kind="stable") if i not in targets][:5]
    for row in prof.items:
        assert set(order) <= set(row.tolist())


def test_pick_targets_bands(split):
    pop = item_popularity(split.train)
    head = pick_targets(split.train, 4, "head", seed=0)
    tail = pick_targets(split.train, 4, "tail", seed=0)
    assert pop[head].min() > pop[tail].max()
    assert (pop[tail] >= 1).all()
    assert len(set(head.tolist())) == 4
    np.testing.assert_array_equal(head, pick_targets(split.train, 4, "head", seed=0))
    with pytest.raises(ValueError, match="band"):
        pick_targets(split.train, 2, "middle", seed=0)


def test_bad_arguments_name_the_value(split):
    with pytest.raises(ValueError, match="filler_size"):
        heuristic_attack("random", split.train, [0], 2, 10_000, seed=0)
    with pytest.raises(ValueError, match="num_fake"):
        heuristic_attack("random", split.train, [0], 0, 3, seed=0)
    with pytest.raises(ValueError, match="lacks target"):
        FakeProfiles(np.array([[1, 2]]), np.array([3]), 10, "x")
    with pytest.raises(ValueError, match="repeats"):
        FakeProfiles(np.array([[3, 2, 2]]), np.array([3]), 10, "x")


def test_inject_touches_only_train(split):
    targets = pick_targets(split.train, 2, "tail", seed=0)
    prof = heuristic_attack("segment", split.train, targets, 5, 6, seed=2)
    poisoned = inject(split, prof)
    fake = fake_user_ids(split, prof)
    np.testing.assert_array_equal(fake, np.arange(split.num_users, split.num_users + 5))
    assert poisoned.num_users == split.num_users + 5
    assert poisoned.num_items == split.num_items
    for part in ("valid", "test"):
        a, b = getattr(split, part), getattr(poisoned, part)
        np.testing.assert_array_equal(a.user, b.user)
        np.testing.assert_array_equal(a.item, b.item)
        assert not np.isin(b.user, fake).any()
    n = len(split.train)
    np.testing.assert_array_equal(poisoned.train.user[:n], split.train.user)
    np.testing.assert_array_equal(poisoned.train.item[:n], split.train.item)
    added = poisoned.train.subset(np.arange(n, len(poisoned.train)))
    assert len(added) == prof.items.size
    for f, row in zip(fake, prof.items):
        np.testing.assert_array_equal(np.sort(added.item[added.user == f]), np.sort(row))
    assert str(poisoned.train.user_tokens[fake[0]]) == "fake_0"


def test_inject_checks_the_catalogue(split):
    prof = FakeProfiles(np.array([[0, 1]]), np.array([0]), split.num_items + 1, "x")
    with pytest.raises(ValueError, match="num_items"):
        inject(split, prof)


def test_save_load_round_trip(split, tmp_path):
    targets = pick_targets(split.train, 2, "tail", seed=0)
    prof = heuristic_attack("bandwagon", split.train, targets, 3, 4, seed=9)
    path = prof.save(str(tmp_path / "sub" / "bandwagon"))
    assert path.endswith(".npz") and (tmp_path / "sub" / "bandwagon.json").exists()
    back = load(path)
    np.testing.assert_array_equal(back.items, prof.items)
    np.testing.assert_array_equal(back.targets, prof.targets)
    assert back.attack == "bandwagon" and dict(back.params) == dict(prof.params)
    assert back.fingerprint() == prof.fingerprint()
    np.savez(path, items=prof.items[:, ::-1][:, :-1], targets=prof.targets)  # tamper
    with pytest.raises(ValueError, match="fingerprint|lacks"):
        load(path)
