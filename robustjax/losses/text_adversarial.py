"""Adversarial training of a text item tower on the word embeddings of the item texts.

Objective (``AdvConfig(method="text")``, built by :func:`robustjax.objectives.build_phases`)::

    L = BPR(clean) + weight * BPR(adversarial point)

The adversarial point perturbs the word embeddings ``w_i [T, H]`` of item ``i``'s text
(real tokens only: never ``[CLS]``/``[SEP]``/padding), L2 per token row with
``||delta_t|| <= eps`` (``budget_kind="absolute"``) or ``<= eps * ||w_t||``
(``"relative"``), runs the frozen encoder to get perturbed features
``f~_i = Enc(w_i + delta_i)`` and scores through the trainable tower
``item_from_text(params, f~_i, i)``. ``delta`` is FGSM (or PGD-K from zero) on the sum of the
batch's BPR losses that read item ``i``, one perturbation per item text (the attacker edits
the text, which every user sees), and is ``stop_gradient``-ed (Danskin / APR convention).
Since the encoder is frozen too, ``f~`` is a constant for the outer gradient, which reaches
the projection, the ID embeddings and the users through the tower only: no encoder
backward pass for the parameter update. With trainable top encoder layers
(``ModelConfig.text_trainable_layers > 0``) the encoder runs with the model's current top
layers (``ModelFns.text.top_features``), and the outer gradient reaches them through
``f~`` (``delta`` fixed).

Cost and what is approximate. Each step attacks ``M = items_per_step`` distinct items
drawn uniformly (without replacement) from the items the batch reads (positives and
negatives of its real rows): one encoder forward and backward (FGSM's gradient; PGD-K: K of
them) and one forward at the adversarial point, on ``[M, T]`` tokens, ``T`` the longest
item text (padding trimmed: exact, since padded keys get no attention and are not pooled).
Examples with at least one sampled item ("covered") get the adversarial loss, with their
unsampled item (if any) at its clean features; the term is the mean over covered real
examples (ratio re-weighting: :func:`text_adversarial_term` returns per-example values
whose batch mean is that mean). With ``M`` at least the number of distinct items of every
batch this is the exact full objective; otherwise it is a stochastic estimate that (a)
leaves the unsampled side of a half-covered pair clean, so it under-estimates the loss
at the joint adversarial point, and (b) weights examples by coverage, so items of many
examples are covered more often.

The encoder weights and the items' token ids reach the compiled epoch as the phase's
``inputs`` (:class:`TextAdvInputs`, a jit argument, ``batch["inputs"]`` inside the step),
never as parameters: checkpoints do not grow, and a resumed run rebuilds them from the
encoder checkpoint and the item texts (:func:`robustjax.runs.text.run_text_adv_inputs`).
"""

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Float, Int

from robustjax.attacks import AttackConfig, make_attack
from robustjax.attacks.budget import relative_budget
from robustjax.losses.adversarial import checked
from robustjax.losses.terms import emb_loss
from robustjax.models.base import ModelFns
from robustjax.types import Array

INPUTS_KEY = "inputs"  # batch key under which a phase's inputs reach the objective
TEXT_ATTACK_KINDS = ("fgsm", "pgd")


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=("encoder", "ids", "mask", "editable"),
    meta_fields=("graphdef",),
)
@dataclasses.dataclass(frozen=True)
class TextAdvInputs:
    """What the text adversarial term reads besides the parameters: a jit argument.

    Attributes:
      graphdef: the encoder's NNX graph (static).
      encoder: the frozen encoder weights (``nnx.State``; float32).
      ids: int32 ``[I, T]`` token ids of every item's text (``[CLS] ... [SEP] [PAD]...``),
        ``T`` the longest text's length.
      mask: int32 ``[I, T]``, 1 at real tokens (CLS/SEP included).
      editable: float32 ``[I, T]``, 1 at the tokens that may be perturbed (real tokens
        other than CLS/SEP).
    """

    graphdef: Any
    encoder: Any
    ids: Int[Array, "I T"]
    mask: Int[Array, "I T"]
    editable: Float[Array, "I T"]


def make_text_adv_inputs(ckpt, texts: Sequence[str], *, max_len: int) -> TextAdvInputs:
    """:class:`TextAdvInputs` of ``texts`` (one per item, dense id order) for the encoder
    checkpoint ``ckpt`` (:func:`robustjax.text.load_checkpoint`), tokenized to ``max_len``
    (``ModelConfig.text_max_len``, as the features were) and trimmed to the longest text."""
    from robustjax.text import encoder_from_checkpoint, tokenize

    tokens = tokenize(ckpt, list(texts), max_len=max_len)
    length = max(int(tokens.mask.sum(axis=1).max(initial=0)), 1)
    ids, mask = tokens.ids[:, :length], tokens.mask[:, :length]
    special = np.isin(ids, [ckpt.cls_id, ckpt.sep_id, ckpt.pad_id])
    editable = ((mask != 0) & ~special).astype(np.float32)
    graphdef, state = nnx.split(encoder_from_checkpoint(ckpt))
    return TextAdvInputs(
        graphdef, state, jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(editable)
    )


def sample_batch_items(
    pos: Int[Array, " B"],
    neg: Int[Array, "B ..."],
    valid: Float[Array, " B"],
    num_items: int,
    num_samples: int,
    *,
    key: Array,
) -> tuple[Int[Array, " M"], Float[Array, " M"]]:
    """``num_samples`` distinct items drawn uniformly among those the real rows
    (``valid > 0``) read as positive or negative.

    Returns ``(items int32 [M], real float32 [M])``: ``real`` is 0 at slots left over when
    the batch reads fewer than ``M`` items (their ids are arbitrary, unused)."""
    real_row = valid > 0
    present = jnp.zeros((num_items,), bool).at[pos].max(real_row)
    neg_rows = jnp.broadcast_to(real_row.reshape((-1,) + (1,) * (neg.ndim - 1)), neg.shape)
    present = present.at[neg].max(neg_rows)
    score = jnp.where(present, jax.random.uniform(key, (num_items,)), -1.0)
    top, items = jax.lax.top_k(score, num_samples)
    return items.astype(jnp.int32), (top >= 0).astype(jnp.float32)


def _word_attack(kind: str, eps: float, step_size, num_steps: int, budget_kind: str):
    """FGSM or PGD-``num_steps`` from zero, L2 per token row, on ``{"word": [M, T, H]}``."""
    if kind not in TEXT_ATTACK_KINDS:
        raise ValueError(
            f"text_adversarial_term: kind={kind!r}; expected one of {TEXT_ATTACK_KINDS}."
        )
    attack = make_attack(
        AttackConfig(
            kind=kind,
            eps=eps,
            step_size=step_size,
            num_steps=1 if kind == "fgsm" else num_steps,
            norm="l2",
            scope="row",
            random_start=False,
            targets=("word",),
        ),
        ("word",),
    )
    return relative_budget(attack, norm="l2", scope="row") if budget_kind == "relative" else attack


def _slots(items: Array, real: Array, num_items: int) -> Array:
    """int32 ``[num_items]``: each item's row in the sample ``items``, -1 when not sampled."""
    rows = jnp.where(real > 0, jnp.arange(items.shape[0], dtype=jnp.int32), -1)
    return jnp.full((num_items,), -1, jnp.int32).at[items].set(rows)


def _text_features_fn(fns: ModelFns, enc, params, mask: Array):
    """``word embeddings [M, T, H] -> features [M, H]`` through the checkpoint's encoder, or
    its frozen layers and the model's trainable top layers."""
    k = fns.text.trainable_layers
    if not k:
        return lambda w: enc.encode_embeds(w, mask)

    def run(w):
        states = enc.hidden(w, mask, stop_layer=len(enc.layers) - k)
        return fns.text.top_features(params, states, mask)

    return run


def _losses_at_features(fns: ModelFns, loss_on_emb, params, batch, slot: Array):
    """``losses(f_sample [M, H]) -> [B]``: the batch's per-example losses with the sampled
    items (``slot >= 0``) at the features ``f_sample``, the others at their clean ones."""
    table = fns.text.features(params)  # [I, H], clean features
    user = fns.embed(params, {"user": batch["user"]})["user"]

    def losses(f_sample: Array) -> Array:
        def side(ids):
            s = slot[ids]
            f = jnp.where((s >= 0)[..., None], f_sample[jnp.maximum(s, 0)], table[ids])
            return fns.text.item_from_text(params, f, ids)

        pos, neg = side(batch["pos"]), side(batch["neg"])
        return loss_on_emb(params, {"user": user, "pos": pos, "neg": neg})

    return losses


def _sampled_words(fns: ModelFns, graphdef, inputs: TextAdvInputs, params, items, real):
    """``(x, m, run)`` of the sampled items' texts: ``x = {"word": [M, T, H]}``, their word
    embeddings at the editable tokens (0 elsewhere and in left-over slots, ``real == 0``);
    ``m``, that mask ``[M, T, 1]``; ``run(z) -> features [M, H]``, the editable rows set
    to ``z``."""
    enc = nnx.merge(graphdef, inputs.encoder)
    word = enc.embed_tokens(inputs.ids[items])  # [M, T, H]
    encode = _text_features_fn(fns, enc, params, inputs.mask[items])
    m = (inputs.editable[items] * real[:, None])[:, :, None].astype(word.dtype)
    x = {"word": word * m}

    def run(z: Array) -> Array:
        return encode(word + m * (z - x["word"]))

    return x, m, run


def text_adversarial_term(
    fns: ModelFns,
    graphdef: Any,
    *,
    loss: str = "bpr",
    eps: float,
    items_per_step: int,
    kind: str = "fgsm",
    num_steps: int = 1,
    step_size: float | None = None,
    budget_kind: str = "absolute",
):
    """Term fn ``fn(params, batch, *, key) -> {"": [B], "check/budget_excess": []}``: the
    loss at the adversarial point of the item texts' word embeddings (module docstring).

    ``batch`` must hold ``batch["inputs"]``, a :class:`TextAdvInputs` whose ``graphdef``
    equals ``graphdef``. The values are the adversarial losses of the covered real examples
    scaled by ``real / covered`` (0 elsewhere), so their masked batch mean is the mean
    over covered examples.

    Args:
      fns: a text pair model's functions (``fns.text`` set: its ``features``,
        ``item_from_text`` and, with trainable top layers, ``top_features``).
      graphdef: the encoder's graph (``TextAdvInputs.graphdef``).
      loss: the score loss (``"bpr"``, ...; :func:`robustjax.losses.emb_loss`).
      eps: radius per token row (absolute, or relative to the word embedding's norm).
      items_per_step: M, distinct items attacked per step (capped at the item count).
      kind: ``"fgsm"`` or ``"pgd"`` (PGD-``num_steps`` from zero, ``step_size`` default
        ``2.5 * eps / num_steps``).
      num_steps: PGD steps.
      step_size: PGD step size (None: the default above).
      budget_kind: ``"absolute"`` or ``"relative"``.
    """
    if fns.text is None or fns.text.features is None:
        raise ValueError(
            "text_adversarial_term: the model has no text item tower (ModelFns.text is None); "
            "AdvConfig(method='text') applies to text pair models such as text-mf."
        )
    attack = _word_attack(kind, eps, step_size, num_steps, budget_kind)
    if items_per_step < 1:
        raise ValueError(
            f"text_adversarial_term: items_per_step={items_per_step!r}; expected an int >= 1."
        )
    num_items = fns.table_sizes["item"]
    m_items = min(int(items_per_step), num_items)
    loss_on_emb = emb_loss(fns, loss)
    trainable_top = fns.text.trainable_layers > 0

    def fn(params, batch, *, key):
        inputs = batch[INPUTS_KEY]
        if inputs.graphdef != graphdef:
            raise ValueError(
                "text_adversarial_term: batch['inputs'] was built for another encoder graph "
                "than the term; build both from the same TextAdvInputs."
            )
        pos, neg, valid = batch["pos"], batch["neg"], batch["mask"]
        items, real = sample_batch_items(pos, neg, valid, num_items, m_items, key=key)
        slot = _slots(items, real, num_items)
        losses = _losses_at_features(fns, loss_on_emb, params, batch, slot)
        covered = (slot[pos] >= 0) | jnp.any((slot[neg] >= 0).reshape(neg.shape[0], -1), axis=1)
        weight = valid * covered.astype(valid.dtype)
        x, m, run = _sampled_words(fns, graphdef, inputs, params, items, real)
        delta = attack(lambda e: losses(run(e["word"])) * weight, x, key=key)
        delta = {"word": delta["word"] * m}
        f_adv = run(x["word"] + jax.lax.stop_gradient(delta["word"]))
        if not trainable_top:  # a frozen encoder: f_adv is a constant of the parameters
            f_adv = jax.lax.stop_gradient(f_adv)
        scale = jnp.sum(valid) / jnp.maximum(jnp.sum(weight), 1.0)
        # combine's masked mean multiplies by ``valid`` again: scale by coverage only
        values = losses(f_adv) * covered.astype(valid.dtype) * scale
        return checked(attack, x, delta, values, True)

    return fn


__all__ = [
    "INPUTS_KEY",
    "TEXT_ATTACK_KINDS",
    "TextAdvInputs",
    "make_text_adv_inputs",
    "sample_batch_items",
    "text_adversarial_term",
]
