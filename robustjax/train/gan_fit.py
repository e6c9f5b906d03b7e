"""IRGAN's host side: the G/D state pair, one GAN epoch as a loop task, and :func:`fit_gan`
(the alternation of :func:`robustjax.train.gan.make_d_epoch` and
:func:`robustjax.train.gan.make_g_epoch` epochs through the library's one host loop)."""

import dataclasses
import functools
from collections.abc import Callable

import jax
from jaxtyping import Array

from robustjax.data.negatives import TrainArrays
from robustjax.train.gan_ops import user_positives
from robustjax.train.loop import LoopResult, Phase, Selected, Selector, train_loop
from robustjax.train.state import TrainState
from robustjax.train.step import epoch_permutation


@dataclasses.dataclass(frozen=True)
class GanResult:
    """Outcome of :func:`fit_gan`. ``*_params`` are the validation-selected models (the final
    ones without validation); ``best_*_epoch`` is a 1-based GAN epoch."""

    g_params: object
    d_params: object
    final_g_params: object
    final_d_params: object
    best_g_epoch: int
    best_d_epoch: int
    best_g_metric: float | None
    best_d_metric: float | None
    history: list[dict]


@functools.partial(jax.tree_util.register_dataclass, data_fields=("g", "d"), meta_fields=())
@dataclasses.dataclass(frozen=True)
class GanState:
    """The generator's and the discriminator's training states."""

    g: TrainState
    d: TrainState


@dataclasses.dataclass(frozen=True)
class GanEpoch:
    """One GAN epoch as a loop task: ``d_steps`` D epochs, then ``g_steps`` G epochs.

    Sub-epoch ``j`` of GAN epoch ``e`` uses the shuffle ``(seed, e * (d_steps + g_steps) +
    j)`` and the key ``fold_in(epoch_key, j)``."""

    g_epoch: Callable
    d_epoch: Callable
    data: TrainArrays
    positives: Array
    batch_size: int
    seed: int
    d_steps: int
    g_steps: int

    def plan(self, epoch: int):
        n, per = self.data.num_interactions, self.d_steps + self.g_steps
        return [
            epoch_permutation(n, self.batch_size, seed=self.seed, epoch=epoch * per + j)
            for j in range(per)
        ]

    def __call__(self, state: GanState, plan, key):
        g, d, out = state.g, state.d, {}
        for j, perm in enumerate(plan):
            k = jax.random.fold_in(key, j)
            if j < self.d_steps:
                d, metrics = self.d_epoch(d, g.params, perm, self.data, self.positives, k)
                prefix = "d/"
            else:
                g, metrics = self.g_epoch(g, d.params, perm, self.data, self.positives, k)
                prefix = "g/"
            out.update({prefix + n: v for n, v in metrics.items()})
        return GanState(g, d), out


def fit_gan(
    *,
    g_state: TrainState,
    d_state: TrainState,
    g_epoch,
    d_epoch,
    data: TrainArrays,
    gan_epochs: int,
    batch_size: int,
    seed: int,
    d_steps: int = 1,
    g_steps: int = 1,
    validate_g: Callable | None = None,
    validate_d: Callable | None = None,
    early_metric: str = "ndcg@20",
    eval_every: int = 1,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> GanResult:
    """Alternates ``d_steps`` D epochs and ``g_steps`` G epochs, ``gan_epochs`` times,
    through the library's host loop (:func:`robustjax.train.loop.train_loop`: resume,
    checkpoints).

    ``g_epoch``/``d_epoch`` come from :func:`make_g_epoch`/:func:`make_d_epoch` (one compile
    each); see :class:`GanEpoch` for the randomness. Validation (never test) runs before the
    first GAN epoch (logged as epoch 0, not a candidate), every ``eval_every`` GAN epochs
    and after the last; G and D are selected separately on ``early_metric`` (history keys
    ``valid/g/<metric>`` and ``valid/d/<metric>``).
    """
    for name, value in (("d_steps", d_steps), ("g_steps", g_steps)):
        if value < 1:
            raise ValueError(f"fit_gan: {name} must be >= 1, got {value!r}.")
    task = GanEpoch(
        g_epoch, d_epoch, data, user_positives(data), batch_size, seed, d_steps, g_steps
    )
    validate, selectors = _validation(validate_g, validate_d, early_metric)
    result = train_loop(
        state=GanState(g_state, d_state),
        phases=[Phase(0, task, "gan")],
        epochs=gan_epochs,
        seed=seed,
        validate=validate,
        selectors=selectors,
        eval_every=eval_every,
        validate_first=True,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        resume=resume,
        progress=progress,
        desc="gan",
        on_epoch=on_epoch,
    )
    return _gan_result(result)


def _validation(validate_g: Callable | None, validate_d: Callable | None, early_metric: str):
    """``(validate, selectors)`` for :func:`~robustjax.train.loop.train_loop`: the given
    validators' metrics under ``g/`` and ``d/`` and one selector per validated network on
    ``early_metric`` (both None without validators)."""
    validators = {"g": validate_g, "d": validate_d}
    validators = {k: fn for k, fn in validators.items() if fn is not None}

    def validate(state: GanState):
        out = {}
        for name, fn in validators.items():
            params = (state.g if name == "g" else state.d).params
            out.update({f"{name}/{k}": v for k, v in fn(params).items()})
        return out

    selectors = {
        name: Selector(f"{name}/{early_metric}", lambda s, n=name: getattr(s, n).params)
        for name in validators
    }
    return (validate if validators else None), (selectors or None)


def _gan_result(result: LoopResult) -> GanResult:
    """The :class:`GanResult` of a finished loop: the selected G and D (the final ones where
    a network was not validated) and the final states' parameters."""
    final = result.state
    picked = {
        name: result.selected.get(name)
        or Selected(getattr(final, name).params, result.epochs_run, None)
        for name in ("g", "d")
    }
    return GanResult(
        g_params=picked["g"].params,
        d_params=picked["d"].params,
        final_g_params=final.g.params,
        final_d_params=final.d.params,
        best_g_epoch=picked["g"].epoch,
        best_d_epoch=picked["d"].epoch,
        best_g_metric=picked["g"].metric,
        best_d_metric=picked["d"].metric,
        history=result.history,
    )
