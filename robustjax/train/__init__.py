"""Training: on-device sampling, fused epochs, the host loop, checkpoints."""

from robustjax.data.negatives import (
    SAMPLERS,
    TrainArrays,
    build_train_arrays,
    is_positive,
    sample_negatives,
    sample_uniform,
)
from robustjax.train.checkpoint import load_meta, load_pytree, save_pytree
from robustjax.train.gan import make_d_epoch, make_g_epoch
from robustjax.train.gan_fit import GanEpoch, GanResult, GanState, fit_gan
from robustjax.train.gan_ops import (
    draw_for_generator,
    generator_log_probs,
    gumbel_loss,
    positive_mask,
    reinforce_loss,
    sample_categorical,
    user_positives,
)
from robustjax.train.loop import EpochTask, LoopResult, Phase, Selected, Selector, train_loop
from robustjax.train.pairs import FitResult, PairEpoch, fit, pair_epoch_fn
from robustjax.train.state import OPTIMIZERS, TrainState, init_state, make_optimizer
from robustjax.train.step import (
    apply_gradients,
    epoch_means,
    epoch_permutation,
    make_batch,
    make_train_epoch,
    scan_epoch,
)

__all__ = [
    "OPTIMIZERS",
    "SAMPLERS",
    "EpochTask",
    "FitResult",
    "GanEpoch",
    "GanResult",
    "GanState",
    "LoopResult",
    "PairEpoch",
    "Phase",
    "Selected",
    "Selector",
    "TrainArrays",
    "TrainState",
    "apply_gradients",
    "build_train_arrays",
    "draw_for_generator",
    "epoch_means",
    "epoch_permutation",
    "fit",
    "fit_gan",
    "generator_log_probs",
    "gumbel_loss",
    "init_state",
    "is_positive",
    "load_meta",
    "load_pytree",
    "make_batch",
    "make_d_epoch",
    "make_g_epoch",
    "make_optimizer",
    "make_train_epoch",
    "pair_epoch_fn",
    "positive_mask",
    "reinforce_loss",
    "sample_categorical",
    "sample_negatives",
    "sample_uniform",
    "save_pytree",
    "scan_epoch",
    "train_loop",
    "user_positives",
]
