"""Neural matrix factorisation (NeuMF; He et al., "Neural Collaborative Filtering", WWW 2017).

Two towers share nothing but the final layer:

* GMF: ``g = p_u * q_i`` (elementwise product of GMF embeddings, ``[.., Dg]``);
* MLP: ``h = MLP([p'_u ; q'_i])`` with ReLU hidden layers (``[.., H_last]``);

and ``s(u, i) = w^T [g ; h] + b``. At the functional boundary a user (item) embedding is the
concatenation ``[p_u ; p'_u]`` (``[.., Dg + Dm]``) of its two tower embeddings, so an
attack on the ``"user"``/``"pos"``/``"neg"`` embeddings perturbs both towers at once and
every loss and attack written against ``embed``/``score`` works unchanged.

Concatenations inside ``score`` are never materialised: the first MLP layer and the final
layer are applied as sums of per-part matrix products (``W [a ; b] = W_a a + W_b b``), so
user and item embeddings may have any broadcast-compatible leading shapes (``[B, 1, D]``
against ``[B, N, D]``, or ``[B, 1, D]`` against ``[1, I, D]`` in ``score_all``) and
``score_all`` needs ``B x I x H1`` floats, not ``B x I x 2 Dm``.
"""

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Float, Int

from robustjax.models.base import Bound, ModelFns, lookup_model_fns, split_model
from robustjax.types import Array, Batch, Emb


class NeuMF(nnx.Module):
    """NeuMF: a GMF tower and an MLP tower fused by one linear layer.

    Initialisation follows the reference implementation: embeddings ``N(0, 0.01^2)``,
    hidden layers Glorot-uniform, the prediction layer LeCun-uniform, zero biases.

    Args:
      num_users: user table size.
      num_items: item table size.
      gmf_dim: GMF embedding size ``Dg``.
      mlp_dim: MLP embedding size ``Dm`` (the MLP input is ``2 Dm``).
      hidden: MLP hidden layer sizes (ReLU after each), e.g. ``(64, 32, 16)``.
      embed_std: standard deviation of the embedding initialisation.
      rngs: NNX random streams (``params``).
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        *,
        gmf_dim: int = 32,
        mlp_dim: int = 32,
        hidden: Sequence[int] = (64, 32, 16),
        embed_std: float = 0.01,
        rngs: nnx.Rngs,
    ):
        for name, value in (
            ("num_users", num_users),
            ("num_items", num_items),
            ("gmf_dim", gmf_dim),
            ("mlp_dim", mlp_dim),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"NeuMF: {name} must be an int >= 1, got {name}={value!r}.")
        hidden = tuple(hidden)
        if not hidden or not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise ValueError(
                f"NeuMF: hidden must be a non-empty tuple of ints >= 1, got "
                f"hidden={hidden!r}; e.g. hidden=(64, 32, 16)."
            )
        if not embed_std > 0:
            raise ValueError(f"NeuMF: embed_std must be > 0, got embed_std={embed_std!r}.")
        init = nnx.initializers.normal(embed_std)
        self.gmf_users = nnx.Embed(num_users, gmf_dim, embedding_init=init, rngs=rngs)
        self.gmf_items = nnx.Embed(num_items, gmf_dim, embedding_init=init, rngs=rngs)
        self.mlp_users = nnx.Embed(num_users, mlp_dim, embedding_init=init, rngs=rngs)
        self.mlp_items = nnx.Embed(num_items, mlp_dim, embedding_init=init, rngs=rngs)
        sizes = (2 * mlp_dim,) + hidden
        self.layers = nnx.List(
            [
                nnx.Linear(a, b, kernel_init=nnx.initializers.glorot_uniform(), rngs=rngs)
                for a, b in itertools.pairwise(sizes)
            ]
        )
        self.predict = nnx.Linear(
            gmf_dim + hidden[-1], 1, kernel_init=nnx.initializers.lecun_uniform(), rngs=rngs
        )
        self.num_users, self.num_items = num_users, num_items
        self.gmf_dim, self.mlp_dim = gmf_dim, mlp_dim

    # ------------------------------------------------------------------ tables and lookups

    def user_table(self) -> Float[Array, "U D"]:
        return jnp.concatenate(
            [self.gmf_users.embedding[...], self.mlp_users.embedding[...]], axis=-1
        )

    def item_table(self) -> Float[Array, "I D"]:
        return jnp.concatenate(
            [self.gmf_items.embedding[...], self.mlp_items.embedding[...]], axis=-1
        )

    def _users(self, ids: Array) -> Array:
        return jnp.concatenate(
            [self.gmf_users.embedding[...][ids], self.mlp_users.embedding[...][ids]], axis=-1
        )

    def _items(self, ids: Array) -> Array:
        return jnp.concatenate(
            [self.gmf_items.embedding[...][ids], self.mlp_items.embedding[...][ids]], axis=-1
        )

    def embed(self, batch: Batch) -> Emb:
        """``{"user": [B, Dg+Dm], "pos": [B, Dg+Dm], "neg": [B, Dg+Dm] or [B, N, Dg+Dm]}``:
        each the concatenation of the GMF and MLP embeddings of that id."""
        emb = {"user": self._users(batch["user"])}
        for slot in ("pos", "neg"):
            if slot in batch:
                emb[slot] = self._items(batch[slot])
        return emb

    # ------------------------------------------------------------------ scores

    def score(
        self, user: Float[Array, "*bu D"], item: Float[Array, "*bi D"], bias: Array | None = None
    ) -> Float[Array, "*b"]:
        """Scores of concatenated embeddings; leading shapes broadcast (equal ranks).

        ``bias`` is accepted for the ``ModelFns.score`` signature; NeuMF has no item bias
        (its final layer's bias is a constant shift) and ``embed`` returns none.
        """
        d = self.gmf_dim + self.mlp_dim
        for name, x in (("user", user), ("item", item)):
            if x.shape[-1] != d:
                raise ValueError(
                    f"NeuMF.score: {name} has trailing size {x.shape[-1]} "
                    f"(shape {x.shape}); expected Dg + Dm = {self.gmf_dim} + "
                    f"{self.mlp_dim} = {d}."
                )
        g = self.gmf_dim
        gmf = user[..., :g] * item[..., :g]
        first = self.layers[0]
        w, b = first.kernel[...], first.bias[...]
        m = self.mlp_dim
        h = jax.nn.relu(_add_bias(user[..., g:] @ w[:m] + item[..., g:] @ w[m:], b))
        for layer in self.layers[1:]:
            h = jax.nn.relu(layer(h))
        wp, bp = self.predict.kernel[...], self.predict.bias[...]
        s = _add_bias(gmf @ wp[:g] + h @ wp[g:], bp)[..., 0]
        return s if bias is None else s + bias

    def score_all(self, users: Int[Array, " B"]) -> Float[Array, "B I"]:
        """Every item for each user. Memory ``O(B * I * H1)``: chunk the users for large I."""
        return self.score(self._users(users)[:, None, :], self.item_table()[None, :, :])

    def score_items(self, users: Int[Array, " B"], items: Int[Array, "B C"]) -> Float[Array, "B C"]:
        return self.score(self._users(users)[:, None, :], self._items(items))


def _add_bias(y: Array, b: Array) -> Array:
    # explicit reshape: the tests run with jax_numpy_rank_promotion="raise"
    return y + b.reshape((1,) * (y.ndim - 1) + (-1,))


def neumf_fns(model: NeuMF) -> tuple[ModelFns, nnx.State]:
    """Returns ``(ModelFns, params)`` for a NeuMF module.

    Tables ``"user"``/``"item"`` are the concatenated ``[rows, Dg + Dm]`` views of the two
    towers' tables; ``set_tables`` splits them back, so table-level attacks perturb both
    towers.
    """
    graphdef, params = split_model(model)
    fns = lookup_model_fns(
        graphdef,
        model,
        get_tables=Bound(_get_tables, graphdef),
        set_tables=Bound(_set_tables, graphdef),
        row_params={
            "user": ("gmf_users/embedding", "mlp_users/embedding"),
            "item": ("gmf_items/embedding", "mlp_items/embedding"),
        },
    )
    return fns, params


def _get_tables(graphdef, params):
    model = nnx.merge(graphdef, params)
    return {"user": model.user_table(), "item": model.item_table()}


def _set_tables(graphdef, params, tables):
    # merge a copy: merged modules share Variables with the state they come from
    model = nnx.merge(graphdef, jax.tree.map(lambda x: x, params))
    g, d = model.gmf_dim, model.gmf_dim + model.mlp_dim
    for name, gmf, mlp, rows in (
        ("user", model.gmf_users, model.mlp_users, model.num_users),
        ("item", model.gmf_items, model.mlp_items, model.num_items),
    ):
        if name not in tables:
            continue
        t = tables[name]
        if t.shape != (rows, d):
            raise ValueError(
                f"NeuMF set_tables: table {name!r} has shape {t.shape}; expected "
                f"({rows}, Dg + Dm = {d})."
            )
        gmf.embedding[...] = t[:, :g]
        mlp.embedding[...] = t[:, g:]
    return nnx.split(model, nnx.Param)[1]
