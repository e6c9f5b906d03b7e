"""Loss primitives (per-example), regularisers, and the named-term combinator."""

from robustjax.losses.combine import Term, combine, masked_mean
from robustjax.losses.pairwise import bce, bpr, sampled_softmax
from robustjax.losses.reg import l2_embeddings, l2_params
from robustjax.losses.terms import SCORE_LOSSES, clean_term, emb_loss, l2_term

__all__ = [
    "SCORE_LOSSES",
    "Term",
    "bce",
    "bpr",
    "clean_term",
    "combine",
    "emb_loss",
    "l2_embeddings",
    "l2_params",
    "l2_term",
    "masked_mean",
    "sampled_softmax",
]
