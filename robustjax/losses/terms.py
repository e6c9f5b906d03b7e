"""Ready-made clean terms for the combinator, built from a model's functions."""

from collections.abc import Callable

from robustjax.losses.pairwise import bce, bpr, sampled_softmax
from robustjax.losses.reg import l2_embeddings
from robustjax.models.base import ModelFns, slot_scores
from robustjax.types import Array, Emb

SCORE_LOSSES: dict[str, Callable[[Array, Array], Array]] = {
    "bpr": bpr,
    "bce": bce,
    "softmax": sampled_softmax,
}


def emb_loss(fns: ModelFns, name: str = "bpr"):
    """``loss_on_emb(params, emb) -> [B]``: a score loss evaluated on given embeddings.

    This is the function attacks differentiate: it sees embeddings, never tables.
    """
    if name not in SCORE_LOSSES:
        raise ValueError(
            f"emb_loss: loss {name!r} is unknown; expected one of {sorted(SCORE_LOSSES)}."
        )
    loss = SCORE_LOSSES[name]

    def loss_on_emb(params, emb: Emb) -> Array:
        s = slot_scores(fns, params, emb)
        return loss(s["pos"], s["neg"])

    return loss_on_emb


def clean_term(fns: ModelFns, name: str = "bpr"):
    """Term fn: the score loss on the clean embeddings of the batch."""
    loss_on_emb = emb_loss(fns, name)

    def fn(params, batch, *, key):
        del key
        return loss_on_emb(params, fns.embed(params, batch))

    return fn


def l2_term(fns: ModelFns, names: tuple[str, ...] = ("user", "pos", "neg")):
    """Term fn: batch-level L2 of the gathered embeddings (``fns.l2_embed`` where the model
    regularises other embeddings than it scores with, e.g. LightGCN's layer 0)."""
    gather = fns.l2_embed or fns.embed

    def fn(params, batch, *, key):
        del key
        return l2_embeddings(gather(params, batch), names)

    return fn
