"""Matrix factorisation (MF) with optional user/item biases, as a Flax NNX module."""

import jax.numpy as jnp
from flax import nnx

from robustjax.models.base import Bound, lookup_model_fns, set_embedding_tables, split_model
from robustjax.types import Array, Batch, Emb


class MatrixFactorization(nnx.Module):
    """Dot-product MF: ``s(u, i) = <e_u, e_i> (+ b_i)``.

    Embeddings use Xavier-normal initialisation (the reference protocol of
    ``ml-100k-split``). A user bias cancels in every ranking and pairwise loss, so only an
    item bias is offered.
    """

    def __init__(
        self, num_users: int, num_items: int, dim: int, *, use_bias: bool = False, rngs: nnx.Rngs
    ):
        for name, value in (("num_users", num_users), ("num_items", num_items), ("dim", dim)):
            if value < 1:
                raise ValueError(f"MatrixFactorization: {name} must be >= 1, got {value}.")
        init = nnx.initializers.xavier_normal()
        self.users = nnx.Embed(num_users, dim, embedding_init=init, rngs=rngs)
        self.items = nnx.Embed(num_items, dim, embedding_init=init, rngs=rngs)
        self.item_bias = nnx.Param(jnp.zeros((num_items,), jnp.float32)) if use_bias else None
        self.num_users, self.num_items = num_users, num_items

    def embed(self, batch: Batch) -> Emb:
        """Gathers ``user``, ``pos`` and ``neg`` embeddings (and item biases) for a batch."""
        items = self.items.embedding[...]
        emb = {"user": self.users.embedding[...][batch["user"]]}
        for slot in ("pos", "neg"):
            if slot in batch:
                emb[slot] = items[batch[slot]]
                if self.item_bias is not None:
                    emb[f"{slot}_bias"] = self.item_bias[...][batch[slot]]
        return emb

    @staticmethod
    def score(user: Array, item: Array, bias: Array | None = None) -> Array:
        s = jnp.sum(user * item, axis=-1)
        return s if bias is None else s + bias

    def score_all(self, users: Array) -> Array:
        s = self.users.embedding[...][users] @ self.items.embedding[...].T
        return s if self.item_bias is None else s + self.item_bias[...][None, :]

    def score_items(self, users: Array, items: Array) -> Array:
        u = self.users.embedding[...][users][:, None, :]
        s = jnp.sum(u * self.items.embedding[...][items], axis=-1)
        return s if self.item_bias is None else s + self.item_bias[...][items]


def mf_fns(model: MatrixFactorization):
    """Returns ``(ModelFns, params)`` for an MF module."""
    graphdef, params = split_model(model)
    fns = lookup_model_fns(
        graphdef,
        model,
        get_tables=_get_tables,
        set_tables=Bound(set_embedding_tables, graphdef),
        bilinear=True,
        row_params={
            "user": ("users/embedding",),
            "item": ("items/embedding",) + (("item_bias",) if model.item_bias is not None else ()),
        },
    )
    return fns, params


def _get_tables(params):
    return {"user": params["users"]["embedding"][...], "item": params["items"]["embedding"][...]}
