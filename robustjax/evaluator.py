"""The evaluation of one data split that training runs and studies share.

:class:`Evaluator` ranks every item for each user of a split's valid or test part
(full ranking, with the optional sampled protocol and cold-item metrics), building the
packed batches and CSR tables once and reusing them at every validation.
"""

import dataclasses
from typing import Any

from robustjax.data import SplitData, user_item_csr
from robustjax.eval import (
    FullEvalPlan,
    column_scores,
    evaluate_cold,
    evaluate_planned,
    evaluate_sampled,
    plan_full,
)
from robustjax.models import ModelFns
from robustjax.sharding import shard_params, shard_scores


@dataclasses.dataclass(frozen=True)
class Evaluator:
    """Full-ranking (and optional sampled) evaluation of one split, built once."""

    fns: ModelFns
    split: SplitData
    ks: tuple[int, ...]
    batch_size: int
    sampled: Any = None  # {"valid": SampledCandidates, "test": ...}
    auc: bool = True  # full-ranking AUC (EvalConfig.auc)
    valid_auc: bool | None = None  # AUC on the valid part; None: as ``auc``
    # robustjax.sharding mesh: tables row-sharded, scores split users x items over it
    mesh: Any = None

    def __post_init__(self):  # CSRs are built once, not at every validation
        if max(self.ks) > self.split.num_items:  # before training, not at the first validation
            raise ValueError(
                f"eval.ks={tuple(self.ks)!r}: K={max(self.ks)} exceeds the data's "
                f"{self.split.num_items} items; use cutoffs of at most {self.split.num_items}, "
                f"e.g. --set eval.ks={min(10, self.split.num_items)} (and a train.early_metric "
                "with one of them)."
            )
        # built once: the scoring function is a static argument of the compiled step
        object.__setattr__(self, "_score_all", shard_scores(self.fns.score_all, self.mesh))
        object.__setattr__(
            self,
            "_csr",
            {
                p: user_item_csr(getattr(self.split, p), self.split.num_users)
                for p in ("train", "valid", "test")
            },
        )

    def csr(self, part: str):
        return self._csr[part]

    def cold(self, params, part: str) -> dict[str, float]:
        """Cold-start metrics of ``part`` ("valid" or "test"): the split's ``cold_<part>``
        rows ranked among the cold items only (``robustjax.eval.cold``); as for warm items,
        test excludes the user's valid rows. ``{}`` without cold items."""
        s = self.split
        if not s.num_cold_items:
            return {}
        if "_cold_score" not in self.__dict__:
            object.__setattr__(
                self, "_cold_score", column_scores(self._score_all, s.num_warm_items)
            )
        csr = lambda p: user_item_csr(getattr(s, f"cold_{p}"), s.num_users)
        return evaluate_cold(
            self._cold_score,
            shard_params(params, self.mesh),
            target_csr=csr(part),
            exclude_csrs=[csr("valid")] if part == "test" else [],
            num_warm_items=s.num_warm_items,
            num_items=s.num_items,
            ks=self.ks,
            batch_size=self.batch_size,
            auc=self.auc,
        )

    def plan(self, part: str) -> FullEvalPlan:
        """The packed batches of ``part`` (train, plus valid for test, excluded), built at
        the first evaluation of ``part`` and reused by every later one."""
        plans = self.__dict__.setdefault("_plans", {})
        if part not in plans:
            exclude = [self.csr("train")] + ([self.csr("valid")] if part == "test" else [])
            plans[part] = plan_full(
                target_csr=self.csr(part), exclude_csrs=exclude,
                num_items=self.split.num_items, batch_size=self.batch_size,
            )  # fmt: skip
        return plans[part]

    def __call__(self, params, part: str, *, top_n: int = 0):
        params = shard_params(params, self.mesh)  # a no-op once placed
        out = evaluate_planned(
            self._score_all,
            params,
            self.plan(part),
            ks=self.ks,
            return_topk=top_n or None,
            auc=self.auc if part == "test" or self.valid_auc is None else self.valid_auc,
        )
        metrics, top = out if top_n else (out, None)
        metrics = dict(metrics)
        if self.sampled is not None:
            s = evaluate_sampled(
                self.fns.score_items,
                params,
                self.sampled[part],
                ks=tuple(k for k in self.ks if k <= self.sampled[part].items.shape[1]),
            )
            metrics.update({f"sampled_{k}": v for k, v in s.items()})
        return (metrics, top) if top_n else metrics


__all__ = ["Evaluator"]
