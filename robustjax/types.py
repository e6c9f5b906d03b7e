"""Shared type aliases and shape-letter conventions.

Letters used in shape annotations: ``B`` batch, ``U`` users, ``I`` items, ``D`` embedding
dim, ``N`` negatives per example, ``K`` top-k, ``E`` noise levels, ``S`` steps per epoch.
"""

from collections.abc import Mapping
from typing import Any

import jax

Array = jax.Array
Params = Any  # an nnx.State (a pytree of arrays)
Batch = Mapping[
    str, jax.Array
]  # "user", "pos", "neg" int32 [B] (neg may be [B, N]); "mask" f32 [B]
Emb = dict[str, jax.Array]  # named embeddings returned by a model's ``embed``
