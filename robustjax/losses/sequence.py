"""Sequence losses and their adversarial objectives (SASRec, BERT4Rec).

- :func:`next_item_bce`: SASRec's per-position BCE of the next item against one sampled
  negative.
- :func:`masked_item_loss`: BERT4Rec's cross-entropy of the masked items (full or sampled
  softmax).

The threat model is the user's *history*: the input item embeddings of the sequence.

- ``"apr"``: APR on the input sequence (He et al., 2018, moved to sequences): one FGSM step,
  ``delta = eps * g / ||g||`` per input row (or the chosen norm/scope), from the gradient of
  the clean next-item loss; objective ``L(x) + lam * L(x + delta)``.
- ``"pgd"``: the same with ``num_steps`` projected steps from a random start uniform in the
  ball (Madry et al.; ``random_start=False`` starts at zero).
- ``"hull"``: training against item substitutions, relaxed to the convex hull of item
  embeddings (as published defences for sequential recommenders do): up to ``budget``
  positions per sequence are replaced by a soft item, a convex combination of the original
  item and ``num_candidates`` random items, whose weights maximise the loss by
  ``num_steps`` ascent steps; objective ``L(x) + lam * L(x_hull)``.

Perturbations are ``stop_gradient``-ed (Danskin's theorem; the APR convention): the model is
trained on the worst-case input, the inner maximisation is not differentiated. The
attack's loss uses the same dropout key and sampled negatives as the clean loss, so both
terms see the same network.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from robustjax._config_checks import field_error
from robustjax.attacks import AttackConfig, budget_excess, make_attack
from robustjax.losses.combine import CHECK_PREFIX

METHODS = ("none", "apr", "pgd", "hull")
_NEG = -1e9


def next_item_bce(
    model,
    emb: dict,
    seq_ids: jax.Array,
    *,
    deterministic: bool,
    key: PRNGKeyArray | None = None,
) -> jax.Array:
    """Per-position BCE loss [B, L] (0 at padding) from (possibly perturbed) embeddings."""
    hidden = model.encode(emb["seq"], seq_ids, deterministic=deterministic, key=key)
    v = -jax.nn.log_sigmoid(model.score(hidden, emb["pos"])) - jax.nn.log_sigmoid(
        -model.score(hidden, emb["neg"])
    )
    return jnp.where(seq_ids != 0, v, jnp.zeros_like(v))


def masked_item_loss(
    model,
    seq_emb: Float[Array, "B L D"],
    seq_ids: Int[Array, "B L"],
    positions: Int[Array, "B P"],
    targets: Int[Array, "B P"],
    valid: Bool[Array, "B P"],
    *,
    negatives: Int[Array, "B P N"] | None = None,
    deterministic: bool,
    key: PRNGKeyArray | None = None,
) -> Float[Array, "B P"]:
    """Per-slot cross-entropy of the masked items [B, P] (0 at invalid slots).

    Full softmax over items ``1..I`` when ``negatives`` is None, else a sampled softmax
    over ``[target, negatives]`` with negatives equal to the target removed.
    """
    hidden = model.encode(seq_emb, seq_ids, deterministic=deterministic, key=key)
    h = jnp.take_along_axis(hidden, positions[..., None], axis=1)  # [B, P, D]
    if negatives is None:
        logits = model.score_all(h)  # [B, P, I]
        labels = jnp.where(valid, targets - 1, 0)
    else:
        b, p, d = h.shape
        cands = jnp.concatenate([targets[..., None], negatives], axis=-1)  # [B, P, 1 + N]
        logits = model.score_items(h.reshape(b * p, d), cands.reshape(b * p, -1))
        logits = logits.reshape(cands.shape)
        accidental = jnp.concatenate(
            [jnp.zeros_like(targets[..., None], bool), negatives == targets[..., None]], -1
        )
        logits = jnp.where(accidental, _NEG, logits)
        labels = jnp.zeros_like(targets)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return jnp.where(valid, ce, jnp.zeros_like(ce))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SeqAdvConfig:
    """Adversarial training of a sequential model on its input embeddings.

    Attributes:
      method: ``"none"``, ``"apr"``, ``"pgd"`` or ``"hull"`` (see the module docstring).
      eps: radius of the perturbation of the (scaled) input embeddings, per row by default
        (``apr``/``pgd``). For scale: SASRec's input rows are ``E[i] * sqrt(D)``,
        BERT4Rec's ``E[i]``.
      lam: weight of the adversarial term.
      num_steps: PGD steps (``pgd``) or ascent steps on the hull weights (``hull``).
      norm, scope: the ball of ``robustjax.attacks`` (``l2``/``linf``; ``row``/``example``/
        ``batch``).
      start_epoch: first adversarial epoch (1-based); earlier epochs train on the clean loss
        (warm start, as APR: adversarial training from scratch learns slowly).
      budget: ``hull``: positions substituted per sequence (those with the largest clean
        loss gradient).
      num_candidates: ``hull``: random items in each position's hull besides the original.
      step_size: ``hull``: ascent step on the hull logits.
      random_start: ``pgd``: start uniformly in the ball (Madry et al.); False starts at
        zero. Other methods ignore it.
    """

    method: str = "none"
    eps: float = 0.5
    lam: float = 1.0
    num_steps: int = 1
    norm: str = "l2"
    scope: str = "row"
    start_epoch: int = 1
    budget: int = 2
    num_candidates: int = 16
    step_size: float = 1.0
    random_start: bool = True

    def __post_init__(self):
        if self.method not in METHODS:
            raise field_error(self, "method", f"one of {METHODS}")
        for name in ("eps", "lam", "step_size"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not (math.isfinite(v) and v >= 0)
            ):
                raise field_error(self, name, "a finite number >= 0")
        for name in ("num_steps", "start_epoch", "budget", "num_candidates"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise field_error(self, name, "an int >= 1")
        if not isinstance(self.random_start, bool):
            raise TypeError(
                f"SeqAdvConfig.random_start must be a bool, got random_start={self.random_start!r}."
            )
        if self.method == "apr" and self.num_steps != 1:
            raise field_error(
                self, "num_steps", "1 for method='apr' (one FGSM step; use method='pgd' for more)"
            )
        # validates norm and scope with the attack module's own messages
        AttackConfig(
            kind="pgd",
            eps=float(self.eps),
            num_steps=self.num_steps,
            norm=self.norm,
            scope=self.scope,
            targets=("seq",),
        )

    @property
    def enabled(self) -> bool:
        return self.method != "none"


def _input_attack(cfg: SeqAdvConfig):
    kind = "fgsm" if cfg.method == "apr" else "pgd"
    return make_attack(
        AttackConfig(
            kind=kind,
            eps=float(cfg.eps),
            num_steps=cfg.num_steps,
            norm=cfg.norm,
            scope=cfg.scope,
            random_start=cfg.method == "pgd" and cfg.random_start,
            targets=("seq",),
        ),
        ("seq", "pos", "neg"),
    )


def _hull_rows(model, cfg: SeqAdvConfig, per_example, emb, seq_ids, key: PRNGKeyArray):
    """Soft substitutions of the ``cfg.budget`` highest-gradient real positions inside the
    convex hull of the original item and ``cfg.num_candidates`` random items; returns scaled
    input rows. Ids beyond the item table (BERT4Rec's [MASK]) are never substituted."""
    from robustjax.attacks.hull import convex_hull_perturbation

    table = model.item_table()
    scale = model.input_scale
    special = seq_ids >= table.shape[0]
    hull_ids = jnp.where(special, jnp.zeros_like(seq_ids), seq_ids)

    def rows_to_emb(rows):
        return jnp.where(special[..., None], emb["seq"], rows * scale)

    def loss_rows(rows, ids):
        return per_example({**emb, "seq": rows_to_emb(rows)})

    hull = convex_hull_perturbation(
        loss_rows,
        table,
        hull_ids,
        num_candidates=cfg.num_candidates,
        steps=cfg.num_steps,
        step_size=cfg.step_size,
        key=key,
        budget=cfg.budget,
    )
    return rows_to_emb(hull.rows)


def sequence_objective(cfg: SeqAdvConfig | None, per_position_loss):
    """Returns ``objective(model, emb, seq_ids, *, key, count=None) -> (total, parts)``.

    ``per_position_loss(model, emb, seq_ids, key) -> [B, P]`` is the clean loss (0 at
    padding or unused slots) computed from the (possibly perturbed) embeddings ``emb``;
    ``key`` is the dropout key shared by every term. ``total`` is the mean clean loss plus
    ``lam`` times the mean loss on the perturbed input, both divided by ``count`` (the
    number of loss terms; default: the real positions of ``seq_ids``).
    """
    attack = _input_attack(cfg) if cfg is not None and cfg.method in ("apr", "pgd") else None

    def objective(model, emb, seq_ids, *, key, count=None):
        k_drop, k_adv = key, jax.random.fold_in(key, 1)  # dropout key as without adv
        n = jnp.sum(seq_ids != 0) if count is None else count
        n = jnp.maximum(n, 1).astype(jnp.float32)

        def per_example(e):
            return jnp.sum(per_position_loss(model, e, seq_ids, k_drop), axis=-1)

        clean = jnp.sum(per_example(emb)) / n
        if cfg is None or not cfg.enabled:
            return clean, {"clean": clean}
        checks = {}
        if attack is not None:
            delta = attack(per_example, emb, key=k_adv)
            adv_emb = {**emb, "seq": emb["seq"] + delta["seq"]}
            # the attack's output checked against its ball (the training loop warns)
            excess = budget_excess(emb, {"seq": delta["seq"]}, attack.budget)
            checks[f"{CHECK_PREFIX}budget_excess/adv"] = jax.lax.stop_gradient(excess)
        else:
            adv_emb = {**emb, "seq": _hull_rows(model, cfg, per_example, emb, seq_ids, k_adv)}
        adv = jnp.sum(per_example(adv_emb)) / n
        return clean + cfg.lam * adv, {"clean": clean, "adv": adv, **checks}

    return objective


__all__ = ["METHODS", "SeqAdvConfig", "sequence_objective"]


def cloze_objective(graphdef, adv: SeqAdvConfig | None):
    """BERT4Rec's training loss ``loss(params, seq, positions, targets, valid, negatives,
    key) -> scalar``: the mean masked-item cross-entropy over valid slots
    (:func:`masked_item_loss`), plus ``adv.lam`` times its value on the perturbed input with
    an enabled ``adv`` (:func:`sequence_objective`)."""
    from flax import nnx

    def loss_fn(params, seq, positions, targets, valid, negatives, key):
        model = nnx.merge(graphdef, params)
        emb = model.embed({"seq": seq})

        def per_slot(m, e, ids, k):
            return masked_item_loss(
                m, e["seq"], ids, positions, targets, valid, negatives=negatives,
                deterministic=False, key=k,
            )  # fmt: skip

        if adv is not None and adv.enabled:
            return sequence_objective(adv, per_slot)(
                model, emb, seq, key=key, count=jnp.sum(valid)
            )[0]
        v = per_slot(model, emb, seq, key)
        return jnp.sum(v) / jnp.maximum(jnp.sum(valid), 1).astype(v.dtype)

    return loss_fn
