"""Cold-start evaluation: full ranking among a contiguous block of held-out items.

With ``split='cold_items'`` (:mod:`robustjax.data.cold`) the held-out items hold the
highest ids ``[start, num_items)``. Protocol: each user's held-out cold-item interactions
of one part (``cold_test``, or ``cold_valid``) are ranked among the cold items only; the
warm items are not candidates (the model scores only the cold columns). Users have no
training rows on cold items; as for warm items, test excludes the user's cold valid rows
(there are none with the by-user split of ``robustjax.data.cold``), so nothing else is
excluded. Model selection stays on the warm valid metrics. Metrics and their
definitions are those of :func:`robustjax.eval.evaluate_full`, which does the work on the
column-restricted scores; cutoffs above the number of cold items are skipped.
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from jaxtyping import Array, Float, Int

from robustjax.eval import _host
from robustjax.eval.full import CSR, evaluate_full


def column_scores(
    score_users_fn: Callable[[Any, Int[Array, " B"]], Float[Array, "B I"]], start: int
) -> Callable[[Any, Int[Array, " B"]], Float[Array, "B C"]]:
    """``score_users_fn`` restricted to the item columns ``[start, I)``.

    Build it once per evaluator: the returned function is a static argument of the jitted
    evaluation step, so a new one compiles anew.
    """
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"column_scores: start must be an int >= 0, got start={start!r}.")

    def scores(params, users):
        return score_users_fn(params, users)[:, start:]

    scores.__name__ = f"{getattr(score_users_fn, '__name__', 'score_all')}_from_{start}"
    return scores


def shift_csr(csr: CSR, start: int, num_items: int) -> CSR:
    """The entries of ``csr`` with item ids in ``[start, num_items)``, shifted by ``-start``
    (other entries dropped), as ``(indptr int64 [U+1], indices int32 [nnz'])``."""
    indptr, indices = _host.check_csr("shift_csr: csr", csr, num_items)
    keep = indices >= start
    users = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    counts = np.bincount(users[keep], minlength=indptr.size - 1)
    new_indptr = np.zeros(indptr.size, dtype=np.int64)
    np.cumsum(counts, out=new_indptr[1:])
    return new_indptr, (indices[keep] - start).astype(np.int32)


def evaluate_cold(
    cold_score_fn: Callable[[Any, Int[Array, " B"]], Float[Array, "B C"]],
    params: Any,
    *,
    target_csr: CSR,
    exclude_csrs: Sequence[CSR],
    num_warm_items: int,
    num_items: int,
    ks: tuple[int, ...],
    batch_size: int = 512,
    auc: bool = True,
) -> dict[str, float]:
    """Ranking metrics of the cold targets among the cold items ``[num_warm_items,
    num_items)`` (protocol in the module docstring).

    Args:
      cold_score_fn: ``column_scores(score_all, num_warm_items)``, built once.
      params: pytree handed to it.
      target_csr: held-out cold items per user, in the full id space.
      exclude_csrs: CSRs (full id space) of items to remove from the candidates; entries
        on warm items are ignored.
      num_warm_items: first cold id.
      num_items: I, all items.
      ks: cutoffs; those above ``num_items - num_warm_items`` are skipped.
      batch_size: users per step, as in :func:`evaluate_full`.
      auc: False skips AUC, as in :func:`evaluate_full`.

    Returns:
      The metrics of :func:`evaluate_full` (``num_users``: users with cold targets), or
      ``{}`` when no cutoff fits the cold items.
    """
    num_cold = num_items - num_warm_items
    if not 0 < num_cold <= num_items:
        raise ValueError(
            f"evaluate_cold: num_warm_items={num_warm_items} must be in [0, num_items="
            f"{num_items}) so that at least one cold item remains."
        )
    ks = tuple(k for k in ks if k <= num_cold)
    if not ks:
        return {}
    return evaluate_full(
        cold_score_fn,
        params,
        target_csr=shift_csr(target_csr, num_warm_items, num_items),
        exclude_csrs=[shift_csr(c, num_warm_items, num_items) for c in exclude_csrs],
        num_items=num_cold,
        ks=ks,
        batch_size=batch_size,
        auc=auc,
    )
