import numpy as np
import pytest

from robustjax.data import DataConfig, prepare
from robustjax.poison import (
    evaluate_detector,
    fit_detector,
    heuristic_attack,
    interaction_weights,
    pick_targets,
    remove_users,
    roc_auc,
    spectral_scores,
)


@pytest.fixture(scope="module")
def split():
    return prepare(DataConfig(synthetic_users=80, synthetic_items=100, synthetic_per_user=10))


def test_detector_refuses_its_training_file(split):
    targets = pick_targets(split.train, 3, "tail", seed=0)
    train_file = heuristic_attack("random", split.train, targets, 5, 10, seed=1)
    det = fit_detector(split, train_file, num_components=3, normalise="degree")
    with pytest.raises(ValueError, match="fitted on"):
        evaluate_detector(det, split, train_file)
    # the same content under another object (e.g. reloaded) is refused too
    again = heuristic_attack("random", split.train, targets, 5, 10, seed=1)
    with pytest.raises(ValueError, match="fitted on"):
        evaluate_detector(det, split, again)
    other = heuristic_attack("random", split.train, targets, 5, 10, seed=2)
    report = evaluate_detector(det, split, other)
    assert set(report) >= {"precision", "recall", "auc", "flagged"}
    assert 0.0 <= report["precision"] <= 1.0 and 0.0 <= report["recall"] <= 1.0
    clean = evaluate_detector(det, split, None)
    assert clean["num_fake"] == 0


@pytest.mark.parametrize("normalise", ["zscore", "degree"])
def test_spectral_scores_shape_and_validation(split, normalise):
    s = spectral_scores(split.train, num_components=2, normalise=normalise)
    assert s.shape == (split.num_users,) and np.isfinite(s).all()
    with pytest.raises(ValueError, match="num_components"):
        spectral_scores(split.train, num_components=0)
    with pytest.raises(ValueError, match="normalise"):
        spectral_scores(split.train, normalise="pca")


def test_roc_auc_against_pairs():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=30), 1)
    y = rng.random(30) < 0.4
    pos, neg = s[y], s[~y]
    ref = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert roc_auc(s, y) == pytest.approx(ref)


def test_interaction_weights_and_removal(split):
    flagged = np.zeros(split.num_users, bool)
    flagged[[0, 3]] = True
    w = interaction_weights(split.train, flagged, weight=0.25)
    assert w.dtype == np.float32 and w.shape == (len(split.train),)
    np.testing.assert_array_equal(w == 0.25, np.isin(split.train.user, [0, 3]))
    removed = remove_users(split, flagged)
    assert not np.isin(removed.train.user, [0, 3]).any()
    assert removed.num_users == split.num_users and removed.test is split.test
    with pytest.raises(ValueError, match="weight"):
        interaction_weights(split.train, flagged, weight=2.0)
