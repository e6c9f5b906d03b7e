""" "Free" adversarial training (Shafahi et al., NeurIPS 2019) as a fused epoch.

Each batch is replayed ``replays`` (m) times. One backward pass per replay yields both the
parameter gradient (used for an optimizer step) and the gradient with respect to the
embedding perturbation (used for one ascent step on ``delta``, then projected onto the
eps ball), so the perturbation costs no extra passes. ``delta`` starts at zero for each
batch: in recommendation a batch's gathered embeddings are not reused by the next batch.
An epoch therefore takes ``m`` times as many optimizer steps; compare at equal passes.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from robustjax.attacks import normalize, project
from robustjax.data.negatives import TrainArrays
from robustjax.losses.adversarial import add_delta
from robustjax.losses.combine import masked_mean
from robustjax.losses.reg import l2_embeddings
from robustjax.models.base import ModelFns
from robustjax.train.state import TrainState
from robustjax.train.step import apply_gradients, make_batch, scan_epoch


def _check_free_args(fns: ModelFns, *, replays: int, eps: float, names) -> None:
    if replays < 1:
        raise ValueError(f"make_free_train_epoch: replays must be >= 1, got {replays}.")
    if eps < 0:
        raise ValueError(f"make_free_train_epoch: eps must be >= 0, got {eps}.")
    bad = [n for n in names if n not in fns.embedding_names]
    if bad:
        raise ValueError(
            f"make_free_train_epoch: the model does not expose {bad}; valid "
            f"names: {fns.embedding_names}."
        )


def make_free_train_epoch(
    fns: ModelFns,
    loss_on_emb,
    tx: optax.GradientTransformation,
    *,
    replays: int,
    eps: float,
    step_size: float | None = None,
    names: tuple[str, ...] = ("user", "pos", "neg"),
    norm: str = "l2",
    scope: str = "row",
    sampler: str = "uniform",
    l2: float = 0.0,
):
    """Returns ``train_epoch(state, perm, data, key) -> (state, metrics)`` like
    :func:`robustjax.train.make_train_epoch`, training on ``loss(emb + delta)`` plus
    ``l2`` times the batch-level L2 of the clean embeddings (``losses.l2_embeddings``, on
    ``fns.l2_embed`` where the model has it, as the other objectives' ``train.l2``)."""
    _check_free_args(fns, replays=replays, eps=eps, names=names)
    step_size = eps if step_size is None else step_size
    gather = fns.l2_embed or fns.embed

    def objective(params, delta, batch):
        emb = fns.embed(params, batch)
        per_example = loss_on_emb(params, add_delta(emb, delta))
        if l2:
            per_example = per_example + l2 * l2_embeddings(gather(params, batch))
        return masked_mean(per_example, batch["mask"])

    grad_fn = jax.value_and_grad(objective, argnums=(0, 1))

    def one_batch(data, state: TrainState, rows, u01, key):
        batch = make_batch(data, rows, u01, sampler=sampler, key=key)
        emb = fns.embed(state.params, batch)
        delta = {n: jnp.zeros_like(emb[n]) for n in names}

        def replay(_, carry):
            state, delta, _ = carry
            loss, (g_params, g_delta) = grad_fn(state.params, delta, batch)
            state = apply_gradients(state, g_params, tx)
            step = normalize(g_delta, norm=norm, scope=scope)
            delta = project(
                jax.tree.map(lambda d, s: d + step_size * s, delta, step),
                eps,
                norm=norm,
                scope=scope,
            )
            return state, delta, loss

        state, _, loss = jax.lax.fori_loop(0, replays, replay, (state, delta, jnp.float32(0)))
        return state, {"loss": loss, "free_adv": loss}

    @functools.partial(jax.jit, donate_argnums=0)
    def train_epoch(state: TrainState, perm, data: TrainArrays, key):
        return scan_epoch(functools.partial(one_batch, data), state, perm, data, key)

    return train_epoch
