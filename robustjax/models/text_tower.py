"""Text-aware item towers and text-MF: items read by a frozen pretrained text encoder.

Each item's text (``robustjax.data.item_text``) is embedded once by a frozen encoder
(:func:`text_features`, cached on disk by ``robustjax.text.encode_texts``) into a feature
row ``f_i`` (float32 ``[H]``, L2-normalised). The item tower maps it to the model dim,

    e_i = W f_i + b (+ id_i),

with a trainable projection ``W: [H, D]``, ``b: [D]`` and, optionally, a trainable ID
embedding ``id_i`` initialised at zero, so an item that was never trained on (a cold item)
is scored from its text alone. New items are recommendable from text.

The features live in ``params`` (leaf ``items/features``) so that jit receives them as an
argument, not as a constant baked into every compiled step. They are not trained: the
model reads them through ``jax.lax.stop_gradient``, and :class:`ModelFns` lists them in
``frozen_params``, which :func:`robustjax.train.sparse_step.optimizer_for` maps to
``optax.set_to_zero`` (no update even under weight decay).

With ``ModelConfig.text_trainable_layers = k > 0`` the top ``k`` encoder layers are
trained with the tower (:class:`TextTop`): the frozen layers below run once, their token
states ``[R, T, H]`` (and mask) become frozen leaves ``items/top/states`` and
``items/top/mask``, and ``f_i = pool(top_k(states_i))`` is recomputed at every step from
the trainable copies of the checkpoint's top layers (initialised from it, so a fresh
model's features equal the frozen encoder's).

For text attacks, text models expose :class:`TextSpec` as ``ModelFns.text``:
``fns.text.item_from_text(params, text_emb [N, H], items int32 [N]) -> [N, D]`` (the tower
on given, e.g. perturbed, encoder outputs) and ``fns.text.encoder`` /
``fns.text.max_len`` (the encoder checkpoint and token length the features came from),
``fns.text.features(params) -> [R, H]`` (the tower's current text features) and
``fns.text.encoder_state(params, enc_graphdef, enc_state)`` (the checkpoint encoder's
state with the model's trained top layers in place: what an attack must run).
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Float, Int

from robustjax.models.base import Bound, ModelFns, split_model, user_item_layout
from robustjax.models.text_top import TextTop, load_top_layers, store_top_layers
from robustjax.types import Array, Batch, Emb

FEATURES_LEAF = "features"  # the frozen leaf's name inside a TextItemTower
TOP_LEAVES = ("top/states", "top/mask")  # frozen leaves of a TextTop, below the tower


@dataclasses.dataclass(frozen=True)
class TextSpec:
    """What a text attack needs to know about a text model (``ModelFns.text``).

    Attributes:
      encoder: the encoder checkpoint (``ModelConfig.text_encoder``: a known name such as
        ``"all-minilm-l6-v2"`` or a folder), for ``robustjax.text.load_checkpoint``.
      max_len: tokens per text (``ModelConfig.text_max_len``).
      item_from_text: ``item_from_text(params, text_emb float32 [N, H], items int32 [N])
        -> float32 [N, D]``, the item tower applied to given encoder outputs (``items``
        selects the ID embedding rows, when the model has them). With the features
        themselves, ``item_from_text(params, features[items], items)`` is the item
        embedding ``embed`` returns.
      trainable_layers: ``ModelConfig.text_trainable_layers`` (0: frozen encoder).
      features: ``features(params) -> float32 [R, H]``, the tower's current text features
        of every item row (the frozen matrix, or the trainable top on its cached states).
      encoder_state: ``encoder_state(params, enc_graphdef, enc_state) -> enc_state``, the
        state of the checkpoint's :class:`~robustjax.text.TextEncoder` with its top
        ``trainable_layers`` layers replaced by the model's (unchanged when 0), so that
        ``encode_embeds`` under it gives this model's features (eager: outside jit).
      top_features: ``top_features(params, states [N, T, H], mask [N, T]) -> [N, H]``, the
        model's trainable top layers and pooling on states leaving the frozen layers below
        (``TextEncoder.hidden(..., stop_layer=num_layers - trainable_layers)``); None when
        ``trainable_layers`` is 0. Traceable.
    """

    encoder: str
    max_len: int
    item_from_text: Callable
    trainable_layers: int = 0
    features: Callable | None = None
    encoder_state: Callable | None = None
    top_features: Callable | None = None


class TextItemTower(nnx.Module):
    """Text features ``[R, H]`` -> ``Dense(H -> D)`` (+ a zero-initialised ID embedding
    ``[R, D]``).

    Args:
      features: float32 ``[R, H]``, one row per item id (for sequence models row 0 is the
        padding item); a ``(R, H)`` shape makes zeros, to be filled by
        :func:`with_text_features` (a checkpoint restores them). Ignored (pass None) with
        ``top``.
      dim: D.
      id_embedding: add a trainable ID embedding.
      top: a :class:`TextTop` (trainable top encoder layers over cached states) that
        computes the features instead of a frozen matrix.
      rngs: NNX random streams (``params``).
    """

    def __init__(
        self,
        features: Float[Array, "R H"] | tuple[int, int] | None,
        dim: int,
        *,
        id_embedding: bool = True,
        top: TextTop | None = None,
        rngs: nnx.Rngs,
    ):
        if top is not None:
            rows, _, hidden = top.states[...].shape
            self.features = None
        else:
            if isinstance(features, tuple):
                features = np.zeros(features, np.float32)
            if np.ndim(features) != 2 or min(np.shape(features)) < 1:
                raise ValueError(
                    f"TextItemTower: features must be a non-empty float [items, H] matrix, "
                    f"got shape {np.shape(features)}."
                )
            rows, hidden = np.shape(features)
            self.features = nnx.Param(jnp.asarray(features, jnp.float32))
        if dim < 1:
            raise ValueError(f"TextItemTower: dim must be >= 1, got {dim}.")
        self.top = top
        self.proj = nnx.Linear(hidden, dim, rngs=rngs)
        self.ids = (
            nnx.Embed(rows, dim, embedding_init=nnx.initializers.zeros_init(), rngs=rngs)
            if id_embedding
            else None
        )
        self.num_rows, self.text_dim, self.dim = rows, hidden, dim

    def from_text(
        self, text_emb: Float[Array, "*N H"], items: Int[Array, "*N"]
    ) -> Float[Array, "*N D"]:
        """The tower on given encoder outputs: ``text_emb @ W + b (+ id[items])``."""
        out = self.proj(text_emb)
        if self.ids is not None:
            out = out + self.ids.embedding[...][items]
        return out

    def __call__(self, items: Int[Array, "*N"]) -> Float[Array, "*N D"]:
        """Item embeddings of ids ``items``."""
        if self.top is not None:
            return self.from_text(self.top.features(items), items)
        return self.from_text(self.text_features()[items], items)

    def text_features(self) -> Float[Array, "R H"]:
        """Every row's text features: the frozen matrix (outside the gradient), or the
        trainable top's output on its cached states."""
        if self.top is not None:
            return self.top.features()
        return jax.lax.stop_gradient(self.features[...])

    def frozen_params(self) -> tuple[str, ...]:
        """The tower's frozen leaves, relative to the tower."""
        return TOP_LEAVES if self.top is not None else (FEATURES_LEAF,)

    def table(self) -> Float[Array, "R D"]:
        """Every item's embedding, ``[R, D]``."""
        return self.from_text(self.text_features(), jnp.arange(self.num_rows))


class TextMF(nnx.Module):
    """Text-MF: ``s(u, i) = <e_u, tower(i)>`` with a user ID table and a text item tower.

    Args:
      num_users: U.
      features: float32 ``[I, H]`` text features of items ``0..I-1`` (or a shape, see
        :class:`TextItemTower`).
      dim: D.
      id_embedding: add a trainable (zero-initialised) item ID embedding.
      top: trainable top encoder layers (:class:`TextTop`) instead of frozen features.
      rngs: NNX random streams.
    """

    def __init__(
        self,
        num_users: int,
        features: Float[Array, "I H"] | tuple[int, int] | None,
        dim: int,
        *,
        id_embedding: bool = True,
        top: TextTop | None = None,
        rngs: nnx.Rngs,
    ):
        if num_users < 1:
            raise ValueError(f"TextMF: num_users must be >= 1, got {num_users}.")
        self.items = TextItemTower(features, dim, id_embedding=id_embedding, top=top, rngs=rngs)
        init = nnx.initializers.xavier_normal()
        self.users = nnx.Embed(num_users, dim, embedding_init=init, rngs=rngs)
        self.num_users, self.num_items = num_users, self.items.num_rows

    def embed(self, batch: Batch) -> Emb:
        """``{"user": [B, D], "pos": [B, D], "neg": [B, D] or [B, N, D]}`` (slots present)."""
        emb = {"user": self.users.embedding[...][batch["user"]]}
        slots = [s for s in ("pos", "neg") if s in batch]
        # static choice: projecting the whole table is cheaper once the batch looks up
        # more rows than there are items (ml-100k: 4,096 lookups, 1,682 items)
        if sum(batch[s].size for s in slots) >= self.num_items:
            table = self.items.table()
            return emb | {s: table[batch[s]] for s in slots}
        return emb | {s: self.items(batch[s]) for s in slots}

    def tables(self) -> tuple[Float[Array, "U D"], Float[Array, "I D"]]:
        """The user table and the tower's item table."""
        return self.users.embedding[...], self.items.table()

    def item_from_text(
        self, text_emb: Float[Array, "N H"], items: Int[Array, " N"]
    ) -> Float[Array, "N D"]:
        return self.items.from_text(text_emb, items)


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=("params", "user", "item"), meta_fields=()
)
@dataclasses.dataclass(frozen=True)
class TextTables:
    """Text-MF parameters whose user and (tower output) item tables are replaced.

    Returned by ``ModelFns.set_tables``: table-level attacks perturb the item embeddings the
    tower outputs (as LightGCN's ``perturb="output"``); every function of
    :func:`text_mf_fns` accepts it.
    """

    params: nnx.State
    user: Float[Array, "U D"]
    item: Float[Array, "I D"]


def _base(p):
    return p.params if isinstance(p, TextTables) else p


def _tables(graphdef, p) -> tuple[Array, Array]:
    if isinstance(p, TextTables):
        return p.user, p.item
    return nnx.merge(graphdef, p).tables()


def _embed(graphdef, p, batch: Batch) -> Emb:
    if not isinstance(p, TextTables):
        return nnx.merge(graphdef, p).embed(batch)
    emb = {"user": p.user[batch["user"]]}
    for slot in ("pos", "neg"):
        if slot in batch:
            emb[slot] = p.item[batch[slot]]
    return emb


def _score(p, user: Array, item: Array, bias: Array | None = None) -> Array:
    s = jnp.sum(user * item, axis=-1)
    return s if bias is None else s + bias


def _score_all(graphdef, p, users: Int[Array, " B"]) -> Float[Array, "B I"]:
    u, i = _tables(graphdef, p)
    return u[users] @ i.T


def _score_items(graphdef, p, users: Int[Array, " B"], items: Int[Array, "B C"]):
    u, i = _tables(graphdef, p)
    return jnp.sum(u[users][:, None, :] * i[items], axis=-1)


def _get_tables(graphdef, p) -> dict[str, Array]:
    u, i = _tables(graphdef, p)
    return {"user": u, "item": i}


def _set_tables(graphdef, sizes: tuple[int, int, int], p, tables: dict) -> TextTables:
    num_users, num_items, dim = sizes
    for name, rows in (("user", num_users), ("item", num_items)):
        if name in tables and tuple(tables[name].shape) != (rows, dim):
            raise ValueError(
                f"text-mf set_tables: table {name!r} has shape {tuple(tables[name].shape)}; "
                f"expected ({rows}, {dim})."
            )
    if "user" not in tables or "item" not in tables:
        tables = {**_get_tables(graphdef, p), **tables}
    return TextTables(_base(p), tables["user"], tables["item"])


def _item_from_text(graphdef, p, text_emb, items):
    return nnx.merge(graphdef, _base(p)).item_from_text(text_emb, items)


def _text_features(graphdef, p):
    return nnx.merge(graphdef, _base(p)).items.text_features()


def _top_features(graphdef, p, states, mask):
    return nnx.merge(graphdef, _base(p)).items.top.run(states, mask)


def _encoder_state(graphdef, p, enc_graphdef, enc_state):
    top = nnx.merge(graphdef, _base(p)).items.top
    if top is None:
        return enc_state
    enc = nnx.merge(enc_graphdef, enc_state)
    store_top_layers(top, enc)
    return nnx.split(enc)[1]


def text_mf_fns(
    model: TextMF, *, encoder: str = "", max_len: int = 0, trainable_layers: int = 0
) -> tuple[ModelFns, nnx.State]:
    """Returns ``(ModelFns, params)`` for a :class:`TextMF` module.

    ``embed`` returns the user rows and the tower's item embeddings (``lookups`` name the
    user table and the tower's output table as ``"item"``); ``get_tables``/``set_tables``
    read and override the user table and the tower's output table (:class:`TextTables`);
    ``frozen_params`` is ``("items/features",)`` (with a trainable top:
    ``("items/top/states", "items/top/mask")``); ``text`` is a :class:`TextSpec` with
    ``encoder``/``max_len`` as given. Equal modules give equal ``ModelFns``.
    """
    top = model.items.top
    if trainable_layers != (0 if top is None else len(top.layers)):
        raise ValueError(
            f"text_mf_fns: trainable_layers={trainable_layers!r} but the tower has "
            f"{0 if top is None else len(top.layers)} trainable encoder layers."
        )
    graphdef, params = split_model(model)
    sizes = (model.num_users, model.num_items, model.items.dim)
    fns = ModelFns(
        embed=Bound(_embed, graphdef),
        score=_score,
        score_all=Bound(_score_all, graphdef),
        score_items=Bound(_score_items, graphdef),
        **user_item_layout(model),
        get_tables=Bound(_get_tables, graphdef),
        set_tables=Bound(_set_tables, graphdef, sizes),
        bilinear=True,
        frozen_params=tuple(f"items/{leaf}" for leaf in model.items.frozen_params()),
        text=TextSpec(
            encoder,
            max_len,
            Bound(_item_from_text, graphdef),
            trainable_layers,
            features=Bound(_text_features, graphdef),
            encoder_state=Bound(_encoder_state, graphdef),
            top_features=None if top is None else Bound(_top_features, graphdef),
        ),
    )
    return fns, params


def with_text_features(params: nnx.State, features: Float[Array, "R H"], *, where: str = "items"):
    """``params`` with the tower's feature matrix at ``params[where]`` replaced (same shape)."""
    old = params[where][FEATURES_LEAF][...]
    features = jnp.asarray(features, jnp.float32)
    if features.shape != old.shape:
        raise ValueError(
            f"with_text_features: features of shape {features.shape}; the tower at "
            f"{where!r} holds {old.shape}."
        )
    params = jax.tree.map(lambda x: x, params)  # a copy: do not touch the caller's state
    params[where][FEATURES_LEAF][...] = features
    return params


def text_features(
    encoder: str, texts: Sequence[str], *, max_len: int, cache_dir: str | None = None
) -> np.ndarray:
    """float32 ``[N, H]`` L2-normalised features of ``texts`` from encoder checkpoint
    ``encoder`` (``robustjax.text.encode_texts``, cached on disk per checkpoint and text)."""
    from robustjax.text import encode_texts, load_checkpoint

    if not texts:
        raise ValueError("text_features: no texts to encode (expected one per item).")
    ckpt = load_checkpoint(encoder)
    return np.asarray(encode_texts(ckpt, list(texts), max_len=max_len, cache_dir=cache_dir))


__all__ = [
    "FEATURES_LEAF",
    "TOP_LEAVES",
    "TextItemTower",
    "TextMF",
    "TextSpec",
    "TextTables",
    "TextTop",
    "load_top_layers",
    "text_features",
    "text_mf_fns",
    "with_text_features",
]
