"""Defences against fake users: a spectral (PCA) detector and robust training weights.

The detector scores each user by its leverage on the top principal components of the
normalised user x item matrix of the training data::

    Z = normalise(X),  Z = U S V^T,  score_u = sum_{c < C} U_uc^2

``normalise="zscore"`` standardises every item column (mean 0, variance 1), so a few
users sharing rare items (the targets) form a strong low-rank block; ``"degree"`` uses
``D_u^{-1/2} X D_i^{-1/2}`` with centred columns (the degree-normalised variant). Scores
are turned into robust z-scores ``(s - median) / (1.4826 MAD)`` so one threshold can be
used across data sets of different size. The threshold is fitted on one attack file
(maximum F1 of flagging its fake users) and must be evaluated on another:
:func:`evaluate_detector` refuses the profiles it was fitted on.

Robust training uses per-interaction weights (``build_train_arrays(..., weight=)``):
:func:`interaction_weights` gives flagged users weight ``w`` (0 removes them).
"""

import dataclasses
from types import MappingProxyType
from typing import Any

import jax.numpy as jnp
import numpy as np

from robustjax.data.csr import user_item_csr
from robustjax.data.table import InteractionTable, SplitData
from robustjax.poison.profiles import FakeProfiles, fake_user_ids, inject

NORMALISATIONS = ("zscore", "degree")


def _dense(train: InteractionTable) -> np.ndarray:
    indptr, indices = user_item_csr(train)
    x = np.zeros((train.num_users, train.num_items), np.float32)
    x[np.repeat(np.arange(train.num_users), np.diff(indptr)), indices] = 1.0
    return x


def spectral_scores(
    train: InteractionTable, *, num_components: int = 10, normalise: str = "zscore"
) -> np.ndarray:
    """float64 ``[U]`` robust z-scores of each user's leverage on the top ``C`` principal
    components (module docstring). Memory: the dense ``U x I`` matrix (fine for ml-100k
    and ml-1m sizes)."""
    if normalise not in NORMALISATIONS:
        raise ValueError(
            f"spectral_scores: normalise={normalise!r} is unknown; expected one "
            f"of {NORMALISATIONS}."
        )
    x = _dense(train)
    limit = min(x.shape)
    if not isinstance(num_components, int) or not 1 <= num_components <= limit:
        raise ValueError(
            f"spectral_scores: num_components must be an int in [1, {limit}] "
            f"(min(users, items)), got {num_components!r}."
        )
    if normalise == "zscore":
        mu = x.mean(axis=0)
        sd = x.std(axis=0)
        z = np.where(sd > 0, (x - mu) / np.where(sd > 0, sd, 1.0), 0.0)
    else:
        du = np.maximum(x.sum(axis=1, keepdims=True), 1.0)
        di = np.maximum(x.sum(axis=0, keepdims=True), 1.0)
        z = x / np.sqrt(du) / np.sqrt(di)
        z = z - z.mean(axis=0)
    u, _, _ = jnp.linalg.svd(jnp.asarray(z, jnp.float32), full_matrices=False)
    lev = np.asarray(jnp.sum(jnp.square(u[:, :num_components]), axis=1), np.float64)
    med = np.median(lev)
    mad = 1.4826 * np.median(np.abs(lev - med))
    return (lev - med) / max(mad, 1e-12)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN without both classes."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="stable")
    ranks = np.empty(order.size, np.float64)
    allv = np.concatenate([pos, neg])[order]
    # average ranks over ties
    _, first, counts = np.unique(allv, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def detection_report(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Precision, recall, F1, AUC and counts of flagging ``scores > threshold``."""
    labels = np.asarray(labels, bool)
    flagged = scores > threshold
    tp = int(np.sum(flagged & labels))
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(labels.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": roc_auc(scores, labels),
        "flagged": int(flagged.sum()),
        "true_positives": tp,
        "num_fake": int(labels.sum()),
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class SpectralDetector:
    """A fitted detector: flag users whose robust z-score exceeds ``threshold``.

    ``trained_on`` is the fingerprint of the attack file the threshold was fitted on;
    ``train_report`` its detection report there.
    """

    threshold: float
    num_components: int
    normalise: str
    trained_on: str
    train_report: Any = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "train_report", MappingProxyType(dict(self.train_report)))

    def scores(self, train: InteractionTable) -> np.ndarray:
        return spectral_scores(train, num_components=self.num_components, normalise=self.normalise)

    def flag(self, train: InteractionTable) -> np.ndarray:
        """bool ``[U]``: users of ``train`` the detector flags as fake."""
        return self.scores(train) > self.threshold


def fit_detector(
    split: SplitData, profiles: FakeProfiles, *, num_components: int = 10, normalise: str = "zscore"
) -> SpectralDetector:
    """Fits the threshold on ``profiles`` injected into the clean ``split``: the score
    threshold (midpoint between consecutive scores) with the highest F1 of flagging the
    fake users. Evaluate it on a *different* attack file (:func:`evaluate_detector`)."""
    poisoned = inject(split, profiles)
    scores = spectral_scores(poisoned.train, num_components=num_components, normalise=normalise)
    labels = np.zeros(poisoned.num_users, bool)
    labels[fake_user_ids(split, profiles)] = True
    s = np.sort(np.unique(scores))
    cands = np.concatenate([(s[1:] + s[:-1]) / 2.0, [s[-1] + 1.0]])
    f1 = [detection_report(scores, labels, t)["f1"] for t in cands]
    threshold = float(cands[int(np.argmax(f1))])
    return SpectralDetector(
        threshold=threshold,
        num_components=num_components,
        normalise=normalise,
        trained_on=profiles.fingerprint(),
        train_report=detection_report(scores, labels, threshold),
    )


def evaluate_detector(
    detector: SpectralDetector, split: SplitData, profiles: FakeProfiles | None
) -> dict:
    """Precision/recall/F1/AUC of ``detector`` on ``profiles`` injected into the clean
    ``split`` (``profiles=None``: the clean data, only false alarms).

    Raises:
      ValueError: ``profiles`` is the attack file the detector was fitted on.
    """
    if profiles is not None and profiles.fingerprint() == detector.trained_on:
        raise ValueError(
            "evaluate_detector: these profiles are the attack file the detector "
            f"was fitted on (fingerprint {detector.trained_on[:12]}...); evaluate "
            "on a different attack file (another seed or attack kind)."
        )
    poisoned = split if profiles is None else inject(split, profiles)
    labels = np.zeros(poisoned.num_users, bool)
    if profiles is not None:
        labels[fake_user_ids(split, profiles)] = True
    return detection_report(detector.scores(poisoned.train), labels, detector.threshold)


def interaction_weights(
    train: InteractionTable, flagged: np.ndarray, *, weight: float
) -> np.ndarray:
    """float32 ``[n]``: ``weight`` for interactions of flagged users, 1 for the rest."""
    flagged = np.asarray(flagged, bool)
    if flagged.shape != (train.num_users,):
        raise ValueError(
            f"interaction_weights: flagged must have shape ({train.num_users},) "
            f"(one per user), got {flagged.shape}."
        )
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"interaction_weights: weight must lie in [0, 1], got {weight!r}.")
    return np.where(flagged[train.user], np.float32(weight), np.float32(1.0)).astype(np.float32)


def remove_users(split: SplitData, flagged: np.ndarray) -> SplitData:
    """``split`` without the training rows of flagged users (ids and valid/test kept)."""
    flagged = np.asarray(flagged, bool)
    return SplitData(
        split.train.subset(~flagged[split.train.user]), split.valid, split.test, name=split.name
    )
