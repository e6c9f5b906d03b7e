"""Data loading, preprocessing and splitting: files -> dense-id tables -> train/valid/test."""

from robustjax.data.config import DataConfig, prepare
from robustjax.data.csr import padded_lists, user_item_csr
from robustjax.data.download import KNOWN_SHA256, download_movielens
from robustjax.data.fingerprint import (
    FingerprintWarning,
    check_fingerprint,
    data_fingerprint,
    read_fingerprint,
    source_of,
)
from robustjax.data.folder import FORMATS, carve_valid, detect_format, load, load_split_folder
from robustjax.data.loaders import (
    load_atomic,
    load_delimited,
    load_movielens,
    load_pairs_in_order,
    load_user_lines,
)
from robustjax.data.negatives import (
    SAMPLERS,
    TrainArrays,
    build_train_arrays,
    is_positive,
    sample_negatives,
    sample_uniform,
)
from robustjax.data.noise import KINDS as NOISE_KINDS
from robustjax.data.noise import add, apply_noise, drop, subsample, swap
from robustjax.data.preprocess import deduplicate, kcore, remap, to_implicit
from robustjax.data.splits import (
    DataWarning,
    check_cold,
    split_leave_one_out,
    split_random,
    split_temporal,
)
from robustjax.data.synthetic import synthetic
from robustjax.data.table import InteractionTable, SplitData

__all__ = [
    "FORMATS",
    "KNOWN_SHA256",
    "NOISE_KINDS",
    "SAMPLERS",
    "DataConfig",
    "DataWarning",
    "FingerprintWarning",
    "InteractionTable",
    "SplitData",
    "TrainArrays",
    "add",
    "apply_noise",
    "build_train_arrays",
    "carve_valid",
    "check_cold",
    "check_fingerprint",
    "data_fingerprint",
    "deduplicate",
    "detect_format",
    "download_movielens",
    "drop",
    "is_positive",
    "kcore",
    "load",
    "load_atomic",
    "load_delimited",
    "load_movielens",
    "load_pairs_in_order",
    "load_split_folder",
    "load_user_lines",
    "padded_lists",
    "prepare",
    "read_fingerprint",
    "remap",
    "sample_negatives",
    "sample_uniform",
    "source_of",
    "split_leave_one_out",
    "split_random",
    "split_temporal",
    "subsample",
    "swap",
    "synthetic",
    "to_implicit",
    "user_item_csr",
]
