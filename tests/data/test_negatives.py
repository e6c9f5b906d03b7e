import jax
import jax.numpy as jnp
import numpy as np
import pytest

from robustjax.train import build_train_arrays, is_positive, sample_negatives


def _random_pairs(seed, num_users=30, num_items=50, density=0.3):
    rng = np.random.default_rng(seed)
    dense = rng.random((num_users, num_items)) < density
    dense[np.arange(num_users), rng.integers(0, num_items, num_users)] = True  # >= 1 each
    dense[:, -1] = False  # nobody owns every item
    dense[3] = True  # one user owns all but the last item (the hardest case)
    dense[3, -1] = False
    u, i = np.nonzero(dense)
    return u, i, dense


@pytest.mark.parametrize("global_keys", [True, False])
@pytest.mark.parametrize("kind", ["uniform", "popularity"])
@pytest.mark.parametrize("seed", [0, 1])
def test_never_returns_a_training_positive(kind, seed, global_keys):
    u, i, dense = _random_pairs(seed)
    data = build_train_arrays(u, i, *dense.shape, global_keys=global_keys)
    users = jnp.asarray(np.random.default_rng(seed).integers(0, dense.shape[0], 20000), jnp.int32)
    neg = np.asarray(sample_negatives(data, users, jax.random.key(seed), kind=kind))
    assert neg.min() >= 0 and neg.max() < dense.shape[1]
    assert not dense[np.asarray(users), neg].any()
    assert (neg[np.asarray(users) == 3] == dense.shape[1] - 1).all()


@pytest.mark.parametrize("global_keys", [True, False])
def test_uniform_is_uniform_over_non_positives(global_keys):
    u, i, dense = _random_pairs(0)
    data = build_train_arrays(u, i, *dense.shape, global_keys=global_keys)
    users = jnp.full((60000,), 7, jnp.int32)
    neg = np.asarray(sample_negatives(data, users, jax.random.key(0)))
    counts = np.bincount(neg, minlength=dense.shape[1])
    free = ~dense[7]
    expected = users.size / free.sum()
    assert counts[~free].sum() == 0
    # chi-square style bound: every free item within 5 sigma of its expectation
    assert np.all(np.abs(counts[free] - expected) < 5 * np.sqrt(expected))


def test_multiple_negatives_shape_and_exclusion():
    u, i, dense = _random_pairs(2)
    data = build_train_arrays(u, i, *dense.shape)
    users = jnp.arange(dense.shape[0], dtype=jnp.int32)
    neg = np.asarray(sample_negatives(data, users, jax.random.key(0), num=5))
    assert neg.shape == (dense.shape[0], 5)
    assert not dense[np.arange(dense.shape[0])[:, None], neg].any()


def test_is_positive_matches_dense():
    u, i, dense = _random_pairs(3)
    data = build_train_arrays(u, i, *dense.shape)
    uu, ii = np.meshgrid(np.arange(dense.shape[0]), np.arange(dense.shape[1]), indexing="ij")
    got = np.asarray(
        is_positive(data, jnp.asarray(uu.ravel(), jnp.int32), jnp.asarray(ii.ravel(), jnp.int32))
    )
    np.testing.assert_array_equal(got, dense.ravel())


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="item ids must lie in"):
        build_train_arrays(np.array([0]), np.array([9]), 2, 5)
    with pytest.raises(ValueError, match="every item"):
        build_train_arrays(np.array([0, 0]), np.array([0, 1]), 1, 2)
    with pytest.raises(ValueError, match="empty"):
        build_train_arrays(np.array([], int), np.array([], int), 1, 2)
