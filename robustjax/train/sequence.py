"""Training epochs of sequential models (SASRec's next-item BCE, BERT4Rec's Cloze task).

Each epoch is one jitted ``lax.scan`` over batches of user indices with a donated state;
step keys are ``fold_in(root_key, state.step)``, so a resumed run replays them. The loop
tasks (:class:`SequenceEpoch`, :class:`ClozeEpoch`) plan an epoch on the host: a shuffle of
the users seeded by ``(seed, epoch + 1)`` (epochs counted from 1 there, as the first
sequential runs did, so their results reproduce), dropping the last incomplete batch.
"""

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from robustjax.data.cloze import mask_items, num_predictions
from robustjax.data.sequences import SequenceData, bucketed_batches, sample_unseen
from robustjax.losses.sequence import (
    SeqAdvConfig,
    cloze_objective,
    next_item_bce,
    sequence_objective,
)
from robustjax.sharding import is_trivial, replicate, shard_batch, shard_params
from robustjax.train.step import apply_gradients


def make_sasrec_epoch_fn(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    num_items: int,
    adv: SeqAdvConfig | None = None,
):
    """``epoch(state, train [U, L+1], seen [U, I+1], batches int32 [NB, B], root_key,
    length=None)``.

    One jitted call runs a whole epoch (``lax.scan`` over batches); ``state`` is donated.
    ``adv`` adds an adversarial term on the input embeddings (:mod:`robustjax.losses.sequence`).
    ``length`` (static) trains on the last ``length`` positions only: exact for batches of
    users whose histories fit in it (see ``length_buckets``): padding is masked, positions
    are right-aligned and negatives are drawn at full width, so only the dropout masks
    differ in their draws. About ``L / length`` times cheaper.
    Returns ``(state, parts)``: ``parts["loss"]`` [NB] is each batch's objective,
    ``parts["clean"]`` its masked mean BCE, ``parts["adv"]`` the adversarial term's.
    """
    objective = sequence_objective(
        adv,
        lambda model, emb, ids, key: next_item_bce(model, emb, ids, deterministic=False, key=key),
    )

    def loss_fn(params, batch, key):
        model = nnx.merge(graphdef, params)
        return objective(model, model.embed(batch), batch["seq"], key=key)

    def step(state, users, train, seen, root_key, length):
        key = jax.random.fold_in(root_key, state.step)
        k_neg, k_drop = jax.random.split(key)
        rows = train[users] if length is None else train[:, -(length + 1) :][users]
        seq, pos = rows[:, :-1], rows[:, 1:]
        # drawn at full width, so a bucket's negatives are those of the full-length batch
        neg = sample_unseen(seen[users], (len(users), train.shape[1] - 1), num_items, key=k_neg)[
            :, -seq.shape[1] :
        ]
        neg = jnp.where(seq != 0, neg, jnp.zeros_like(neg))
        batch = {"seq": seq, "pos": pos, "neg": neg}
        (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, k_drop
        )
        return apply_gradients(state, grads, tx), {"loss": loss, **parts}

    @functools.partial(jax.jit, donate_argnames="state", static_argnames="length")
    def epoch(state, train, seen, batches, root_key, length=None):
        if length is not None and not 1 <= length <= train.shape[1] - 1:
            raise ValueError(f"epoch: length must lie in [1, {train.shape[1] - 1}], got {length}.")
        return jax.lax.scan(lambda s, u: step(s, u, train, seen, root_key, length), state, batches)

    return epoch


def make_bert4rec_epoch_fn(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    num_items: int,
    *,
    mask_prob: float,
    max_len: int,
    mask_last_prob: float = 0.0,
    num_sampled: int = 0,
    adv: SeqAdvConfig | None = None,
):
    """``epoch(state, train [U, L], batches int32 [NB, B], root_key) -> (state, losses [NB])``.

    ``adv`` adds an adversarial term on the input embeddings of the masked sequence
    (:mod:`robustjax.losses.sequence`: APR, PGD or convex-hull substitutions; [MASK] slots are never
    substituted); ``losses`` is then the whole objective.

    One jitted call runs a whole epoch (``lax.scan`` over batches of user indices);
    ``state`` is donated. Step keys are ``fold_in(root_key, state.step)`` split into
    masking, negative sampling and dropout keys, so a resumed run replays them.
    ``losses`` holds each batch's mean cross-entropy over masked slots.
    """
    _check_cloze(mask_prob, mask_last_prob, num_sampled)
    num_slots = num_predictions(mask_prob, max_len)
    mask_id = num_items + 1

    loss_fn = cloze_objective(graphdef, adv)

    def step(state, users, train, root_key):
        key = jax.random.fold_in(root_key, state.step)
        k_mask, k_neg, k_drop = jax.random.split(key, 3)
        rows = train[users]
        seq, positions, targets, valid = mask_items(
            rows,
            mask_prob=mask_prob,
            mask_id=mask_id,
            num_slots=num_slots,
            mask_last_prob=mask_last_prob,
            key=k_mask,
        )
        negatives = (
            None
            if num_sampled == 0
            else jax.random.randint(
                k_neg, (*targets.shape, num_sampled), 1, num_items + 1, jnp.int32
            )
        )
        loss, grads = jax.value_and_grad(loss_fn)(
            state.params, seq, positions, targets, valid, negatives, k_drop
        )
        return apply_gradients(state, grads, tx), loss

    @functools.partial(jax.jit, donate_argnames="state")
    def epoch(state, train, batches, root_key):
        if train.shape[1] != max_len:
            raise ValueError(
                f"bert4rec epoch: train rows have length {train.shape[1]}, "
                f"expected max_len={max_len}."
            )
        return jax.lax.scan(lambda s, u: step(s, u, train, root_key), state, batches)

    return epoch


def _check_cloze(mask_prob: float, mask_last_prob: float, num_sampled: int) -> None:
    if not 0.0 < mask_prob <= 1.0:
        raise ValueError(
            f"make_bert4rec_epoch_fn: mask_prob must be in (0, 1], got mask_prob={mask_prob!r}."
        )
    if not 0.0 <= mask_last_prob <= 1.0:
        raise ValueError(
            f"make_bert4rec_epoch_fn: mask_last_prob must be in [0, 1], got "
            f"mask_last_prob={mask_last_prob!r}."
        )
    if num_sampled < 0:
        raise ValueError(
            f"make_bert4rec_epoch_fn: num_sampled must be >= 0 (0 = full "
            f"softmax), got num_sampled={num_sampled!r}."
        )


@dataclasses.dataclass(frozen=True)
class SequenceEpoch:
    """Loop task of next-item training (SASRec): users shuffled by ``(seed, epoch + 1)``,
    batched by history length (:func:`bucketed_batches`; one bucket = plain batches), the
    buckets run in an order seeded by ``(seed, epoch + 1, 1)``. Metrics: the means over the
    epoch's batches of ``loss`` and each part.

    With a ``mesh`` (:mod:`robustjax.sharding`): the state is placed by the partition
    rules, each batch is split over the data axis, the training rows are replicated."""

    epoch_fn: object  # from make_sasrec_epoch_fn
    data: SequenceData
    lengths: np.ndarray  # history length of each user
    bounds: np.ndarray  # bucket lengths
    batch_size: int
    seed: int
    mesh: Any = None  # jax.sharding.Mesh from robustjax.sharding, or None (one device)

    def __post_init__(self):
        _replicate_rows(self)

    def plan(self, epoch: int):
        perm = np.random.default_rng((self.seed, epoch + 1)).permutation(self.data.num_users)
        plan = bucketed_batches(self.lengths, perm, self.batch_size, self.bounds)
        if len(plan) > 1:
            order = np.random.default_rng((self.seed, epoch + 1, 1)).permutation(len(plan))
            plan = [plan[b] for b in order]
        return [(length, jnp.asarray(batches)) for length, batches in plan]

    def __call__(self, state, plan, key):
        del key  # step keys come from the root key and the step count (see module doc)
        root_key = jax.random.key(self.seed)
        chunks = []
        state = shard_params(state, self.mesh)  # a no-op once placed
        for length, batches in plan:
            batches = shard_batch(batches, self.mesh, axis=1)
            state, part = self.epoch_fn(
                state, self.data.train, self.data.seen_train, batches, root_key, length=length
            )
            chunks.append(part)
        return state, {k: jnp.mean(jnp.concatenate([c[k] for c in chunks])) for k in chunks[0]}


@dataclasses.dataclass(frozen=True)
class ClozeEpoch:
    """Loop task of masked-item training (BERT4Rec): users shuffled by ``(seed, epoch +
    1)`` into full batches. Metric: ``loss``, the mean over the epoch's batches.
    ``mesh``: as :class:`SequenceEpoch`'s."""

    epoch_fn: object  # from make_bert4rec_epoch_fn
    data: SequenceData
    batch_size: int
    seed: int
    mesh: Any = None

    def __post_init__(self):
        _replicate_rows(self)

    def plan(self, epoch: int):
        perm = np.random.default_rng((self.seed, epoch + 1)).permutation(self.data.num_users)
        nb = self.data.num_users // self.batch_size
        return jnp.asarray(perm[: nb * self.batch_size].reshape(nb, self.batch_size), jnp.int32)

    def __call__(self, state, plan, key):
        del key  # step keys come from the root key and the step count (see module doc)
        train = self.data.train[:, 1:]  # the last L training items
        state = shard_params(state, self.mesh)  # a no-op once placed
        plan = shard_batch(plan, self.mesh, axis=1)
        state, losses = self.epoch_fn(state, train, plan, jax.random.key(self.seed))
        return state, {"loss": jnp.mean(losses)}


def _replicate_rows(task) -> None:
    """Replicates the training rows of an epoch task on its mesh once, at construction
    (the tasks are frozen; a one-device mesh is dropped, so nothing changes)."""
    if is_trivial(task.mesh):
        object.__setattr__(task, "mesh", None)
        return
    data = dataclasses.replace(
        task.data,
        train=replicate(task.data.train, task.mesh),
        seen_train=replicate(task.data.seen_train, task.mesh),
    )
    object.__setattr__(task, "data", data)
