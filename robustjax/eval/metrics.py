"""Mergeable metric state: masked per-user sums that add across batches and noise levels."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


class MetricSums(NamedTuple):
    """Sums of per-user metric values over valid users, and the number of valid users.

    A pytree: add states of different batches with ``merge``; ``jax.vmap`` a function that
    returns one over an ``eps`` grid to get leaves of shape ``[E]``; ``compute`` then gives
    the means per level.

    Attributes:
      totals: ``{name: Float[Array, "*E"]}`` sums over valid users.
      count: Float[Array, "*E"] number of valid users.
    """

    totals: dict[str, Array]
    count: Array

    def merge(self, other: "MetricSums") -> "MetricSums":
        if set(self.totals) != set(other.totals):
            raise ValueError(
                "MetricSums.merge: metric names differ, got "
                f"{sorted(self.totals)} and {sorted(other.totals)}."
            )
        return jax.tree.map(jnp.add, self, other)

    def compute(self) -> dict[str, Array]:
        """Means ``total / max(count, 1)``: all-masked states give 0, never NaN."""
        denom = jnp.maximum(self.count, 1.0)
        return {name: total / denom for name, total in self.totals.items()}


def sum_metrics(
    per_user: dict[str, Float[Array, " B"]], where: Bool[Array, " B"] | None = None
) -> MetricSums:
    """Reduces ``rank_metrics``'s output to a ``MetricSums`` over its valid users.

    Args:
      per_user: ``{name: Float[Array, " B"]}`` including the ``"valid"`` float mask.
      where: optional Bool[Array, " B"] extra mask (e.g. batch padding).

    Returns:
      ``MetricSums`` with scalar float32 leaves.
    """
    if "valid" not in per_user:
        raise ValueError(
            f"sum_metrics: per_user needs a 'valid' mask, got keys {sorted(per_user)}; "
            "pass the output of rank_metrics."
        )
    valid = per_user["valid"] > 0
    if where is not None:
        valid = valid & where
    totals = {
        name: jnp.sum(v, where=valid, dtype=jnp.float32)
        for name, v in per_user.items()
        if name != "valid"
    }
    return MetricSums(totals, jnp.sum(valid, dtype=jnp.float32))
