"""Evaluation: per-user ranking metrics, mergeable metric sums, full and sampled protocols.

The host-side batching helpers of the drivers (CSR checks, padded COO batches, the
:class:`UserBatch` of a step) are public here for other per-user drivers (poisoning target
metrics).
"""

from robustjax.eval._host import batch_capacity, check_csr, coo_batch, pad_rows
from robustjax.eval.attacked import make_table_attack, table_targets
from robustjax.eval.batches import (
    CooList,
    FullBatch,
    TargetSlots,
    UserBatch,
    full_batch_spec,
    user_batch,
)
from robustjax.eval.cold import column_scores, evaluate_cold, shift_csr
from robustjax.eval.full import (
    FullEvalPlan,
    TopK,
    coo_mask,
    eval_full_step,
    evaluate_full,
    evaluate_planned,
    plan_full,
    top_items,
)
from robustjax.eval.metrics import MetricSums, sum_metrics
from robustjax.eval.ranking import METRIC_NAMES, metric_keys, rank_metrics, single_target_metrics
from robustjax.eval.ranks import count_true, metrics_from_ranks, slot_metrics, target_counts
from robustjax.eval.sampled import (
    SampledCandidates,
    eval_sampled_step,
    evaluate_sampled,
    make_sampled_candidates,
)
from robustjax.eval.stability import (
    jaccard_at_k,
    mean_score_change,
    prediction_shift,
    rbo_at_k,
    rbo_normalized_at_k,
    target_hit_ratio,
)

__all__ = [
    "METRIC_NAMES",
    "CooList",
    "FullBatch",
    "FullEvalPlan",
    "MetricSums",
    "SampledCandidates",
    "TargetSlots",
    "TopK",
    "UserBatch",
    "batch_capacity",
    "check_csr",
    "column_scores",
    "coo_batch",
    "coo_mask",
    "count_true",
    "eval_full_step",
    "eval_sampled_step",
    "evaluate_cold",
    "evaluate_full",
    "evaluate_planned",
    "evaluate_sampled",
    "full_batch_spec",
    "jaccard_at_k",
    "make_sampled_candidates",
    "make_table_attack",
    "mean_score_change",
    "metric_keys",
    "metrics_from_ranks",
    "pad_rows",
    "plan_full",
    "prediction_shift",
    "rank_metrics",
    "rbo_at_k",
    "rbo_normalized_at_k",
    "shift_csr",
    "single_target_metrics",
    "slot_metrics",
    "sum_metrics",
    "table_targets",
    "target_counts",
    "target_hit_ratio",
    "top_items",
    "user_batch",
]
