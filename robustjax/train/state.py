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


OPTIMIZERS = ("adam", "adagrad", "sgd")


def make_optimizer(
    name: str, learning_rate: float, *, weight_decay: float = 0.0
) -> optax.GradientTransformation:
    """optax optimizer by name; ``weight_decay`` adds ``wd * w`` to every gradient (dense L2)."""
    if learning_rate <= 0:
        raise ValueError(f"make_optimizer: learning_rate must be > 0, got {learning_rate!r}.")
    if weight_decay < 0:
        raise ValueError(f"make_optimizer: weight_decay must be >= 0, got {weight_decay!r}.")
    if name == "adam":
        tx = optax.adam(learning_rate)
    elif name == "adagrad":
        tx = optax.adagrad(learning_rate)
    elif name == "sgd":
        tx = optax.sgd(learning_rate)
    else:
        raise ValueError(
            f"make_optimizer: optimizer={name!r} is unknown; expected one of {OPTIMIZERS}."
        )
    if weight_decay:
        tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
    return tx
