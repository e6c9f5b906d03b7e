"""Recommender models (Flax NNX) behind a functional ``embed`` / ``score`` boundary."""
from robustjax.models.base import ModelFns, count_params, slot_scores, split_model
from robustjax.models.mf import MatrixFactorization, mf_fns
from robustjax.models.registry import ModelConfig, build_model

__all__ = ["ModelFns", "MatrixFactorization", "mf_fns", "slot_scores", "split_model",
           "count_params", "ModelConfig", "build_model"]
