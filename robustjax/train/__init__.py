"""Training: on-device sampling, fused epochs, the host loop, checkpoints."""
from robustjax.train.checkpoint import load_meta, load_pytree, save_pytree
from robustjax.train.loop import FitResult, Phase, fit
from robustjax.train.sampler import (SAMPLERS, TrainArrays, build_train_arrays, is_positive,
                                     sample_negatives, sample_uniform)
from robustjax.train.state import OPTIMIZERS, TrainState, init_state, make_optimizer
from robustjax.train.step import epoch_permutation, make_batch, make_train_epoch

__all__ = ["FitResult", "Phase", "fit", "SAMPLERS", "TrainArrays", "build_train_arrays",
           "is_positive", "sample_negatives", "sample_uniform", "OPTIMIZERS", "TrainState",
           "init_state", "make_optimizer", "epoch_permutation", "make_batch",
           "make_train_epoch", "save_pytree", "load_pytree", "load_meta"]
