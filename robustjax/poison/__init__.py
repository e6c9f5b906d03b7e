"""Data poisoning: fake-user profiles, heuristic and unrolled attacks, target metrics and
defences (spectral detection, robust weights; adversarial training lives in objectives)."""
from robustjax.poison.detect import (
    NORMALISATIONS,
    SpectralDetector,
    detection_report,
    evaluate_detector,
    fit_detector,
    interaction_weights,
    remove_users,
    roc_auc,
    spectral_scores,
)
from robustjax.poison.heuristic import (
    BANDS,
    HEURISTIC_ATTACKS,
    average_attack,
    bandwagon_attack,
    heuristic_attack,
    item_popularity,
    pick_targets,
    random_attack,
    sample_fillers,
    segment_attack,
)
from robustjax.poison.metrics import (
    eligible_users,
    split_target_metrics,
    target_metrics,
    target_rank_step,
)
from robustjax.poison.profiles import FakeProfiles, fake_user_ids, inject, load
from robustjax.poison.unrolled import (
    UnrolledConfig,
    binarise,
    init_surrogate,
    init_victim,
    project_budget,
    promotion_loss,
    surrogate_loss,
    train_surrogate,
    train_victim_surrogate,
    unrolled_attack,
    unrolled_objective,
    victim_objective,
)

__all__ = [
    "BANDS", "HEURISTIC_ATTACKS", "NORMALISATIONS", "FakeProfiles", "SpectralDetector",
    "UnrolledConfig", "average_attack", "bandwagon_attack", "binarise", "detection_report",
    "eligible_users", "evaluate_detector", "fake_user_ids", "fit_detector",
    "heuristic_attack", "init_surrogate", "init_victim", "inject", "interaction_weights",
    "item_popularity", "load", "pick_targets", "project_budget", "promotion_loss",
    "random_attack", "remove_users", "roc_auc", "sample_fillers", "segment_attack",
    "spectral_scores", "split_target_metrics", "surrogate_loss", "target_metrics",
    "target_rank_step", "train_surrogate", "train_victim_surrogate", "unrolled_attack",
    "unrolled_objective", "victim_objective",
]
