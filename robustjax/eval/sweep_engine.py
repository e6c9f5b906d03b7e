"""The sweep engine shared by every model family: level grid, checks, batch loop, output.

A sweep evaluates trained models under one attack kind at every level of a grid (``eps``
radii for embedding attacks, integer budgets for history attacks) and for every seed. The
families differ only in how a batch is scored and what is perturbed:

- user-item models (``robustjax.eval.sweep``): the embedding tables, full ranking;
- sequential models (``robustjax.eval.seq_sweep``): the input history (its embeddings or
  its items), sampled candidates.

Everything else is here: the grid syntax (``parse_eps``), the attack kinds a family
offers (read from the registries of ``robustjax.attacks`` at call time, so a registered
attack is available at once), the checks common to both configs, the host loop that
sums one compiled step's per-level outputs over user batches, and the per-seed layout of
the results (``robustjax.report`` writes the report).
"""

import operator
from collections.abc import Callable, Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from robustjax.attacks.registry import embedding_kinds, history_kinds, text_kinds

OBJECTIVES = ("train", "oracle", "targeted", "prediction")
# every output of an objective that sees test data says so
ORACLE_LABEL = "oracle / upper bound (the attacker knows the test items)"


def sweep_kinds(family: str) -> tuple[str, ...]:
    """Attack kinds a sweep of ``family`` (``"items"`` or ``"sequence"``) offers: the
    sweepable embedding attacks, plus the history attacks for sequential models."""
    if family not in ("items", "sequence"):
        raise ValueError(f"sweep_kinds: family={family!r} must be 'items' or 'sequence'.")
    return embedding_kinds(sweep=True) + (history_kinds() if family == "sequence" else ())


def all_sweep_kinds() -> tuple[str, ...]:
    """Every kind some family offers (``robustjax sweep --attack`` choices), the text
    attacks of text-aware runs (``robustjax.cli.text_sweep``) last."""
    return sweep_kinds("sequence") + text_kinds()


def parse_eps(text: str) -> tuple[float, ...]:
    """``"0:1:32"`` (32 evenly spaced levels from 0 to 1) or ``"0,0.25,0.5"``."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            if int(n) < 1:
                raise ValueError
            return tuple(float(x) for x in np.linspace(float(lo), float(hi), int(n)))
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(
            f"--eps {text!r}: expected START:STOP:COUNT (e.g. 0:1:32) or a "
            "comma-separated list (e.g. 0,0.25,0.5)."
        ) from None


def check_kind(where: str, kind: str, family: str) -> None:
    """Raises if ``kind`` is not an attack the ``family`` sweep offers."""
    kinds = sweep_kinds(family)
    if kind not in kinds:
        raise ValueError(f"{where}.kind must be one of {kinds}, got kind={kind!r}.")


def check_objective(where: str, objective: str, allowed: Sequence[str]) -> None:
    """Raises if ``objective`` is not one of ``allowed`` (a subset of ``OBJECTIVES``)."""
    if objective not in allowed:
        raise ValueError(
            f"{where}.objective must be one of {tuple(allowed)}, got objective={objective!r}."
        )


def sum_batches(
    step: Callable[[int], object],
    num_batches: int,
    *,
    desc: str,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
):
    """Sums ``step(i)`` (a pytree of per-level sums) over the batches ``i``, in order.

    Device arrays are added on the device in their dtype, host (numpy) arrays on the host
    in theirs: the family's step decides the accumulation precision.
    """
    totals = None
    for i in tqdm(
        range(num_batches),
        desc=desc,
        unit="batch",
        disable=not progress or num_batches < 2,
        dynamic_ncols=True,
    ):
        sums = step(i)
        totals = sums if totals is None else jax.tree.map(operator.add, totals, sums)
        if on_batch is not None:
            on_batch(i)
    return totals


def per_seed(values, num_seeds: int, num_levels: int) -> list[list[float]]:
    """``[S * E]`` or ``[S, E]`` values -> ``[[E values] per seed]`` (JSON-ready)."""
    return np.asarray(values).reshape(num_seeds, num_levels).tolist()


__all__ = [
    "OBJECTIVES",
    "ORACLE_LABEL",
    "all_sweep_kinds",
    "check_kind",
    "check_objective",
    "parse_eps",
    "per_seed",
    "sum_batches",
    "sweep_kinds",
]
