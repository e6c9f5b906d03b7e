"""A whole training epoch as one compiled call.

``lax.scan`` runs every step of the epoch on device: it slices the (host-shuffled) index
block, gathers users and positives, samples negatives on device, differentiates the
objective, and applies the optimizer. The host dispatches one call per epoch, and because
dispatch is asynchronous it shuffles the next epoch while the device trains.
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from robustjax.data.negatives import TrainArrays, sample_negatives, sample_uniform
from robustjax.train.sparse import apply_updates
from robustjax.train.sparse_step import RowSparseOptimizer, row_value_and_grad
from robustjax.train.state import TrainState
from robustjax.types import Params

Objective = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def apply_gradients(
    state: TrainState, grads: Params, tx: optax.GradientTransformation
) -> TrainState:
    """One optimizer step: the library's only ``tx.update``. Returns the state with the
    updated parameters and optimizer state, and ``step + 1``. ``grads`` may hold
    :class:`robustjax.train.sparse.SparseRows` leaves for the row-sparse optimizers of
    :mod:`robustjax.train.sparse` (their updates are added to the named rows only)."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return dataclasses.replace(
        state,
        step=state.step + 1,
        params=apply_updates(state.params, updates),
        opt_state=opt_state,
    )


def epoch_permutation(
    num_interactions: int, batch_size: int, *, seed: int, epoch: int
) -> np.ndarray:
    """Host-side shuffle of the training rows for one epoch, padded to whole batches.

    Returns int32 ``[S, B]``; entries ``>= num_interactions`` mark padding. Seeded by
    ``(seed, epoch)`` so a resumed run replays the same order.
    """
    steps = -(-num_interactions // batch_size)
    perm = np.random.default_rng((seed, epoch)).permutation(num_interactions)
    out = np.full(steps * batch_size, num_interactions, np.int32)
    out[:num_interactions] = perm
    return out.reshape(steps, batch_size)


def make_batch(
    data: TrainArrays, rows: jax.Array, u01: jax.Array, *, sampler: str, key: jax.Array
) -> dict[str, jax.Array]:
    """Builds ``{"user", "pos", "neg", "mask"}`` for the training rows ``rows`` (padding
    rows, ``>= n``, point at row 0 and get mask 0). With per-interaction weights
    (``data.weight``) the mask of each row is its weight (0 for padding)."""
    n = data.num_interactions
    mask = (rows < n).astype(jnp.float32)
    rows = jnp.where(rows < n, rows, 0)
    if data.weight is not None:
        mask = mask * data.weight[rows]
    user, pos = data.user[rows], data.item[rows]
    if sampler == "uniform":
        neg = sample_uniform(data, user, u01)
    else:
        neg = sample_negatives(
            data, user, key, num=1 if u01.ndim == 1 else u01.shape[-1], kind=sampler
        )
    return {"user": user, "pos": pos, "neg": neg, "mask": mask}


def make_train_epoch(
    objective: Objective,
    tx: optax.GradientTransformation,
    *,
    num_negatives: int = 1,
    sampler: str = "uniform",
):
    """Returns ``train_epoch(state, perm, data, key, inputs=None) -> (state, metrics)``,
    jitted. ``inputs`` (any pytree, e.g. a frozen encoder) reaches the objective as
    ``batch["inputs"]``: an argument of the compiled epoch, not a baked-in constant.

    Args:
      objective: ``objective(params, batch, *, key) -> (total, parts)``.
      tx: the optax optimizer, or a :class:`robustjax.train.sparse_step.RowSparseOptimizer`:
        then the objective is differentiated with respect to the rows the batch looks up
        (:func:`robustjax.train.sparse_step.row_value_and_grad`) and only those rows move.
      num_negatives: negatives per positive (``neg`` is ``[B]`` for 1, else ``[B, N]``).
      sampler: ``"uniform"`` or ``"popularity"``.

    ``key`` is the epoch key (``fold_in(root_key, epoch)``); step keys are folded from it,
    so a run resumed at an epoch boundary replays identical randomness. The state is
    donated. ``metrics`` holds the epoch means of ``loss`` and every named part.
    """
    if num_negatives < 1:
        raise ValueError(f"make_train_epoch: num_negatives must be >= 1, got {num_negatives}.")
    if isinstance(tx, RowSparseOptimizer):
        value_and_grad = row_value_and_grad(tx.fns)
    else:

        def value_and_grad(objective, params, batch, *, key):
            return jax.value_and_grad(objective, has_aux=True)(params, batch, key=key)

    def one_step(data, state: TrainState, rows, u01, key, inputs):
        k_sample, k_obj = jax.random.split(key)
        batch = make_batch(data, rows, u01, sampler=sampler, key=k_sample)
        if inputs is not None:  # the phase's extra arrays (ObjectivePhase.inputs)
            batch["inputs"] = inputs
        (loss, parts), grads = value_and_grad(objective, state.params, batch, key=k_obj)
        return apply_gradients(state, grads, tx), {"loss": loss, **parts}

    @functools.partial(jax.jit, donate_argnums=0)
    def train_epoch(
        state: TrainState, perm: jax.Array, data: TrainArrays, key: jax.Array, inputs=None
    ):
        def step(state, rows, u01, key):
            return one_step(data, state, rows, u01, key, inputs)

        return scan_epoch(step, state, perm, data, key, num_negatives=num_negatives)

    return train_epoch


def scan_epoch(
    step: Callable, state, perm: jax.Array, data: TrainArrays, key: jax.Array, *, num_negatives=1
):
    """Runs ``step(state, rows, u01, key) -> (state, metrics)`` over the batches (rows) of
    ``perm`` [S, B] in one ``lax.scan``; returns the final state and the epoch means of the
    metrics, each step weighted by its valid rows (the last batch may be partial).

    From the epoch ``key``: ``u01``, uniform draws for the negatives ([S, B], or
    [S, B, N] with ``num_negatives`` N > 1), and one key per step."""
    shape = perm.shape if num_negatives == 1 else (*perm.shape, num_negatives)
    k_uniform, k_steps = jax.random.split(key)
    u01 = jax.random.uniform(k_uniform, shape)
    step_keys = jax.random.split(k_steps, perm.shape[0])
    state, metrics = jax.lax.scan(lambda s, xs: step(s, *xs), state, (perm, u01, step_keys))
    return state, epoch_means(metrics, perm, data.num_interactions)


def epoch_means(metrics, perm: jax.Array, num_interactions: int):
    """The epoch means of per-step ``metrics`` ([S] leaves) over the batches of ``perm``
    [S, B], each step weighted by its valid rows (ids below ``num_interactions``)."""
    w = jnp.sum((perm < num_interactions).astype(jnp.float32), axis=1)
    w = w / jnp.maximum(jnp.sum(w), 1.0)
    return jax.tree.map(lambda m: jnp.sum(m * w), metrics)
