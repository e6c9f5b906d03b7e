"""Training: on-device sampling, fused epochs, the host loop, checkpoints."""
from robustjax.train.checkpoint import load_meta, load_pytree, save_pytree
from robustjax.train.loop import FitResult, Phase, fit
from robustjax.train.sampler import (
                                     SAMPLERS,
                                     TrainArrays,
                                     build_train_arrays,
                                     is_positive,
                                     sample_negatives,
                                     sample_uniform,
)
from robustjax.train.state import OPTIMIZERS, TrainState, init_state, make_optimizer
from robustjax.train.step import epoch_permutation, make_batch, make_train_epoch

__all__ = [
                                     "OPTIMIZERS",
                                     "SAMPLERS",
                                     "FitResult",
                                     "Phase",
                                     "TrainArrays",
                                     "TrainState",
                                     "build_train_arrays",
                                     "epoch_permutation",
                                     "fit",
                                     "init_state",
                                     "is_positive",
                                     "load_meta",
                                     "load_pytree",
                                     "make_batch",
                                     "make_optimizer",
                                     "make_train_epoch",
                                     "sample_negatives",
                                     "sample_uniform",
                                     "save_pytree",
]
