"""Recommender models (Flax NNX) behind a functional ``embed`` / ``score`` boundary."""
from robustjax.models.base import ModelFns, count_params, slot_scores, split_model
from robustjax.models.mf import MatrixFactorization, mf_fns
from robustjax.models.lightgcn import Graph, LightGCN, build_graph, lightgcn_fns, propagate
from robustjax.models.neumf import NeuMF, neumf_fns
from robustjax.models.registry import ModelConfig, build_model

__all__ = ["ModelFns", "MatrixFactorization", "mf_fns", "slot_scores", "split_model",
           "count_params", "ModelConfig", "build_model", "NeuMF", "neumf_fns", "LightGCN",
           "lightgcn_fns", "build_graph", "Graph", "propagate"]
