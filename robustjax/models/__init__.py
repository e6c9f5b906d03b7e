"""Recommender models (Flax NNX) behind a functional ``embed`` / ``score`` boundary."""

from robustjax.models.base import FrozenMap, ModelFns, count_params, slot_scores, split_model
from robustjax.models.bert4rec import BERT4Rec
from robustjax.models.lightgcn import Graph, LightGCN, build_graph, lightgcn_fns, propagate
from robustjax.models.mf import MatrixFactorization, mf_fns
from robustjax.models.neumf import NeuMF, neumf_fns
from robustjax.models.registry import ModelConfig, build_model

__all__ = [
    "BERT4Rec",
    "FrozenMap",
    "Graph",
    "LightGCN",
    "MatrixFactorization",
    "ModelConfig",
    "ModelFns",
    "NeuMF",
    "build_graph",
    "build_model",
    "count_params",
    "lightgcn_fns",
    "mf_fns",
    "neumf_fns",
    "propagate",
    "slot_scores",
    "split_model",
]
