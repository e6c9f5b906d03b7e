"""Item texts and text features of a run's data, for text models (``TEXT_MODELS``).

The texts come from the RecBole ``.item`` file of ``cfg.data.path``
(:func:`robustjax.data.item_text.load_item_texts`), matched by the split's original item
tokens, and are encoded with ``cfg.model.text_encoder`` (cached on disk by
``robustjax.text.encode_texts``, so a reload or a second run does not re-encode).
"""

from collections.abc import Sequence

import numpy as np

from robustjax.data.item_text import load_item_texts


def run_item_texts(cfg, item_tokens: Sequence[str]) -> list[str]:
    """The text of each item (dense id order) of the data of ``cfg`` (an ExperimentConfig).

    Raises:
      ValueError: when the data has no item text file (synthetic data, or a folder without
        ``<name>.item``), naming the model and the data path.
    """
    name = cfg.model.name
    if cfg.data.path is None or cfg.data.format == "synthetic":
        raise ValueError(
            f"{name} needs item texts: a RecBole folder with <name>.item (e.g. "
            "../shared/data/ml-100k), but the run uses synthetic data (data.path=None); pass "
            "--data with such a folder."
        )
    try:
        return load_item_texts(cfg.data.path, item_tokens)
    except ValueError as e:
        raise ValueError(f"{name} needs item texts: {e}") from None


def run_item_features(cfg, item_tokens: Sequence[str]) -> np.ndarray:
    """float32 ``[I, H]`` encoder features of the run's item texts (:func:`run_item_texts`)."""
    from robustjax.models.text_tower import text_features

    texts = run_item_texts(cfg, item_tokens)
    return text_features(cfg.model.text_encoder, texts, max_len=cfg.model.text_max_len)


def run_text_adv_inputs(cfg, item_tokens: Sequence[str]):
    """The frozen encoder and item tokens (``TextAdvInputs``) of ``adv.method="text"``,
    rebuilt from ``cfg.model.text_encoder`` and the item texts at every (re)start."""
    from robustjax.losses.text_adversarial import make_text_adv_inputs
    from robustjax.text import load_checkpoint

    ckpt = load_checkpoint(cfg.model.text_encoder)
    texts = run_item_texts(cfg, item_tokens)
    return make_text_adv_inputs(ckpt, texts, max_len=cfg.model.text_max_len)


def text_model_inputs(cfg, item_tokens: Sequence[str]) -> dict:
    """``build_model``'s extra keyword arguments for ``cfg.model``: ``{"item_features":
    [I, H]}`` for a text model (:func:`run_item_features`), ``{"item_texts": [...]}`` when
    it trains top encoder layers (``text_trainable_layers > 0``: the states below them are
    computed at build time), else ``{}``."""
    from robustjax.models.registry import TEXT_MODELS

    if cfg.model.name not in TEXT_MODELS:
        return {}
    if cfg.model.text_trainable_layers:
        return {"item_texts": run_item_texts(cfg, item_tokens)}
    return {"item_features": run_item_features(cfg, item_tokens)}


__all__ = ["run_item_features", "run_item_texts", "run_text_adv_inputs", "text_model_inputs"]
