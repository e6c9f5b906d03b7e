"""Model configs and construction by name."""

import dataclasses

from flax import nnx

from robustjax._config_checks import check_choice_fields
from robustjax.models.base import ModelFns
from robustjax.types import Params

PAIR_MODELS = ("mf", "neumf", "lightgcn", "text-mf")
SEQUENCE_MODELS = ("sasrec", "bert4rec", "text-sasrec")
TEXT_MODELS = ("text-mf", "text-sasrec")  # need item texts (robustjax.data.item_text)
MODEL_NAMES = PAIR_MODELS + SEQUENCE_MODELS
INITS = ("normal", "xavier")
PERTURB_POINTS = ("layer0", "output")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Which model. ``dim`` is the embedding size (NeuMF: of each tower).

    Pair models (``PAIR_MODELS``) are built by :func:`build_model`; sequence models
    (``SEQUENCE_MODELS``) by :mod:`robustjax.runs.sequence`, from ``dim``, ``max_len``,
    ``num_blocks``, ``num_heads`` and ``dropout``.

    Text models (``TEXT_MODELS``, :mod:`robustjax.models.text_tower`) embed each item's text
    with the frozen encoder ``text_encoder`` (``text_max_len`` tokens) and project it to
    ``dim``, plus a trainable item ID embedding when ``text_id_embedding``.
    With ``text_trainable_layers = k > 0`` the top ``k`` encoder layers train
    with the tower, initialised from the checkpoint, over the cached token states of the
    frozen layers below (:class:`robustjax.models.text_tower.TextTop`); 0 keeps the whole
    encoder frozen (cached pooled features, far cheaper).
    """

    name: str = "mf"
    dim: int = 64
    use_bias: bool = False  # mf: item bias
    hidden: tuple[int, ...] = (64, 32, 16)  # neumf: MLP tower
    num_layers: int = 3  # lightgcn: propagation layers
    init: str = "normal"  # lightgcn: "normal" (std 0.1) | "xavier"
    perturb: str = "layer0"  # lightgcn: table-attack point
    max_len: int = 200  # sasrec/bert4rec: history length
    num_blocks: int = 2  # sasrec/bert4rec: transformer blocks
    num_heads: int = 1  # sasrec/bert4rec: attention heads (must divide dim)
    dropout: float = 0.2  # sasrec/bert4rec
    text_encoder: str = "all-minilm-l6-v2"  # text-*: checkpoint name or folder
    text_max_len: int = 32  # text-*: tokens per item text
    text_id_embedding: bool = True  # text-*: add a trainable item ID embedding
    text_trainable_layers: int = 0  # text-*: top encoder layers trained (0: frozen encoder)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        check_choice_fields(self, (("name", MODEL_NAMES),))
        if self.dim < 1:
            raise ValueError(f"ModelConfig.dim must be >= 1, got dim={self.dim!r}.")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(
                f"ModelConfig.hidden must be positive layer sizes, got {self.hidden!r}."
            )
        for name in ("max_len", "num_blocks", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        if self.name in SEQUENCE_MODELS and self.dim % self.num_heads:
            raise ValueError(f"ModelConfig.num_heads={self.num_heads} must divide dim={self.dim}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must lie in [0, 1), got {self.dropout!r}.")
        if self.num_layers < 0:
            raise ValueError(f"ModelConfig.num_layers must be >= 0, got {self.num_layers!r}.")
        check_choice_fields(self, (("init", INITS),))
        if self.text_max_len < 1:
            raise ValueError(
                f"ModelConfig.text_max_len must be >= 1, got text_max_len={self.text_max_len!r}."
            )
        k = self.text_trainable_layers
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise ValueError(
                f"ModelConfig.text_trainable_layers={k!r}: expected an int >= 0 (the number of "
                "top encoder layers to train; 0 freezes the encoder)."
            )
        if self.perturb not in PERTURB_POINTS:
            raise ValueError(
                f"ModelConfig.perturb={self.perturb!r} is unknown; expected one "
                f"of {PERTURB_POINTS}."
            )


def build_model(
    cfg: ModelConfig,
    num_users: int,
    num_items: int,
    *,
    seed: int,
    train_pairs=None,
    item_texts=None,
    item_features=None,
    item_states=None,
) -> tuple[ModelFns, Params]:
    """Builds the model named in ``cfg`` and returns its functions and initial parameters.

    ``train_pairs=(user, item)`` (the training interactions) is needed by graph models.
    Text models need ``item_texts`` (``num_items`` strings, dense item id order; see
    :func:`robustjax.data.item_text.load_item_texts`), encoded with ``cfg.text_encoder``
    (cached), or ready ``item_features`` (float32 ``[num_items, H]``); with
    ``cfg.text_trainable_layers > 0``, ``item_texts`` or ready ``item_states=(states
    [num_items, T, H], mask [num_items, T])`` entering the trainable layers
    (:func:`robustjax.text.encode_states`).
    """
    if cfg.name in SEQUENCE_MODELS:
        raise ValueError(
            f"build_model: {cfg.name!r} is a sequence model; its runs build it "
            "(robustjax.runs.sequence)."
        )
    rngs = nnx.Rngs(params=seed)
    if cfg.name == "mf":
        from robustjax.models.mf import MatrixFactorization, mf_fns

        return mf_fns(
            MatrixFactorization(num_users, num_items, cfg.dim, use_bias=cfg.use_bias, rngs=rngs)
        )
    if cfg.name == "neumf":
        from robustjax.models.neumf import NeuMF, neumf_fns

        return neumf_fns(
            NeuMF(
                num_users, num_items, gmf_dim=cfg.dim, mlp_dim=cfg.dim, hidden=cfg.hidden, rngs=rngs
            )
        )
    if cfg.name == "lightgcn":
        return _build_lightgcn(cfg, num_users, num_items, train_pairs, rngs)
    if cfg.name == "text-mf":
        return _build_text_mf(
            cfg, num_users, num_items, rngs, item_texts, item_features, item_states
        )
    raise AssertionError(cfg.name)


def _build_lightgcn(cfg: ModelConfig, num_users: int, num_items: int, train_pairs, rngs):
    """:func:`build_model` of ``"lightgcn"``: the graph of ``train_pairs``, then the model."""
    if train_pairs is None:
        raise ValueError(
            "build_model: ModelConfig.name='lightgcn' needs train_pairs="
            "(user, item), the training interactions its graph is built from."
        )
    from robustjax.models.lightgcn import LightGCN, build_graph, lightgcn_fns

    graph = build_graph(*train_pairs, num_users, num_items)
    return lightgcn_fns(
        LightGCN(
            num_users, num_items, cfg.dim, num_layers=cfg.num_layers, init=cfg.init, rngs=rngs
        ),
        graph,
        perturb=cfg.perturb,
    )


def _build_text_mf(
    cfg: ModelConfig, num_users: int, num_items: int, rngs, item_texts, item_features, item_states
):
    """:func:`build_model` of ``"text-mf"``: a trainable top over the items' token states, or
    the items' frozen text features, under a :class:`~robustjax.models.text_tower.TextMF`."""
    from robustjax.models.text_tower import TextMF, text_mf_fns

    top, features = None, None
    if cfg.text_trainable_layers:
        top = _text_top(cfg, num_items, item_texts, item_states, rngs)
    else:
        features = _item_features(cfg, num_items, item_texts, item_features)
    model = TextMF(
        num_users, features, cfg.dim, id_embedding=cfg.text_id_embedding, top=top, rngs=rngs
    )
    return text_mf_fns(
        model,
        encoder=cfg.text_encoder,
        max_len=cfg.text_max_len,
        trainable_layers=cfg.text_trainable_layers,
    )


def _check_texts(item_texts, num_items: int, missing: str) -> None:
    if item_texts is None:
        raise ValueError(f"build_model: {missing}")
    if len(item_texts) != num_items:
        raise ValueError(
            f"build_model: {len(item_texts)} item texts for {num_items} items; expected "
            "one text per dense item id."
        )


def _text_top(cfg: ModelConfig, num_items: int, item_texts, item_states, rngs):
    """The trainable top of ``cfg.text_trainable_layers`` layers, initialised from the
    checkpoint, over the token states of the frozen layers below."""
    from robustjax.models.text_tower import TextTop, load_top_layers
    from robustjax.text import encode_states, encoder_from_checkpoint, load_checkpoint

    ckpt = load_checkpoint(cfg.text_encoder)
    k, num = cfg.text_trainable_layers, ckpt.config.num_layers
    if k > num:
        raise ValueError(
            f"ModelConfig.text_trainable_layers={k}: the encoder {cfg.text_encoder!r} has only "
            f"{num} layers."
        )
    if item_states is None:
        _check_texts(
            item_texts,
            num_items,
            f"text_trainable_layers={k} needs item_texts= (one text per item) or "
            "item_states=(states [items, T, H], mask [items, T]).",
        )
        item_states = encode_states(ckpt, item_texts, stop_layer=num - k, max_len=cfg.text_max_len)
    states, mask = item_states
    if states.shape[0] != num_items:
        raise ValueError(
            f"build_model: item_states of shape {states.shape}; expected ({num_items}, T, H), "
            "one row per item."
        )
    top = TextTop(states, mask, ckpt.config, k, rngs=rngs)
    load_top_layers(top, encoder_from_checkpoint(ckpt))
    return top


def _item_features(cfg: ModelConfig, num_items: int, item_texts, item_features):
    """float32 ``[num_items, H]``: ``item_features``, or ``item_texts`` encoded."""
    if item_features is None:
        _check_texts(
            item_texts,
            num_items,
            f"ModelConfig.name={cfg.name!r} needs item_texts= (one text per item: "
            "robustjax.data.item_text.load_item_texts) or item_features=[items, H].",
        )
        from robustjax.models.text_tower import text_features

        item_features = text_features(cfg.text_encoder, item_texts, max_len=cfg.text_max_len)
    if item_features.shape[0] != num_items:
        raise ValueError(
            f"build_model: item_features of shape {item_features.shape}; expected "
            f"({num_items}, H), one row per item."
        )
    return item_features
