"""Training state: a frozen dataclass registered as a pytree."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from robustjax.types import Params


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=("step", "params", "opt_state"), meta_fields=()
)
@dataclasses.dataclass(frozen=True)
class TrainState:
    step: jax.Array  # int32 scalar: optimizer steps taken
    params: Params
    opt_state: optax.OptState


def init_state(params: Params, tx: optax.GradientTransformation) -> TrainState:
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


OPTIMIZERS = ("adam", "adamw", "adagrad", "sgd")


def make_optimizer(
    name: str,
    learning_rate: float,
    *,
    weight_decay: float = 0.0,
    beta2: float = 0.999,
    clip_norm: float = 0.0,
) -> optax.GradientTransformation:
    """optax optimizer by name.

    ``weight_decay``: for ``adamw`` the decoupled decay of AdamW; for the others ``wd * w``
    added to every gradient (dense L2). ``beta2``: Adam's second-moment decay (``adam``,
    ``adamw``). ``clip_norm > 0`` clips the gradient's global norm first.
    """
    if not learning_rate > 0:
        raise ValueError(f"make_optimizer: learning_rate must be > 0, got {learning_rate!r}.")
    if weight_decay < 0:
        raise ValueError(f"make_optimizer: weight_decay must be >= 0, got {weight_decay!r}.")
    if not 0.0 <= beta2 < 1.0:
        raise ValueError(f"make_optimizer: beta2 must lie in [0, 1), got {beta2!r}.")
    if clip_norm < 0:
        raise ValueError(f"make_optimizer: clip_norm must be >= 0 (0 = off), got {clip_norm!r}.")
    if name == "adam":
        tx = optax.adam(learning_rate, b2=beta2)
    elif name == "adamw":
        tx = optax.adamw(learning_rate, b1=0.9, b2=beta2, weight_decay=weight_decay)
    elif name == "adagrad":
        tx = optax.adagrad(learning_rate)
    elif name == "sgd":
        tx = optax.sgd(learning_rate)
    else:
        raise ValueError(
            f"make_optimizer: optimizer={name!r} is unknown; expected one of {OPTIMIZERS}."
        )
    if weight_decay and name != "adamw":
        tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
    if clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    return tx
