"""Victim models of the poisoning studies: training (bpr-mf protocol) and target metrics."""

import dataclasses

from robustjax.data import SplitData, user_item_csr
from robustjax.eval import evaluate_full
from robustjax.models import ModelConfig, build_model
from robustjax.objectives import AdvConfig, build_phases
from robustjax.poison import split_target_metrics
from robustjax.train import build_train_arrays, fit, make_optimizer


@dataclasses.dataclass(frozen=True, kw_only=True)
class VictimConfig:
    """How a victim is trained: BPR, Adam, selection on validation NDCG@20 (@10 if tiny)."""

    dim: int
    epochs: int
    batch_size: int
    learning_rate: float
    eval_every: int
    seed: int
    tiny: bool = False  # 2 LightGCN layers instead of 3; select on NDCG@10
    apr_epochs: int = 100  # the ``apr`` defence: APR epochs after ``epochs`` clean ones
    apr_eps: float = 0.5
    apr_weight: float = 1.0


def train_victim(
    cfg: VictimConfig,
    victim: str,
    split: SplitData,
    *,
    defence: str,
    weight=None,
    progress: bool = False,
    seed: int | None = None,
):
    """Trains ``victim`` on ``split`` (bpr-mf protocol; APR after a clean warm start for the
    ``apr`` defence); selects on validation NDCG@20. ``seed`` (default ``cfg.seed``) seeds
    the initialisation, shuffling and negatives. Returns ``(fns, params)``."""
    seed = cfg.seed if seed is None else seed
    mcfg = ModelConfig(name=victim, dim=cfg.dim, num_layers=2 if cfg.tiny else 3)
    fns, params = build_model(
        mcfg,
        split.num_users,
        split.num_items,
        seed=seed,
        train_pairs=(split.train.user, split.train.item),
    )
    data = build_train_arrays(
        split.train.user, split.train.item, split.num_users, split.num_items, weight=weight
    )
    phases, epochs = _victim_phases(cfg, fns, victim, defence=defence)
    validate = _validator(fns, split)
    result = fit(
        params=params,
        tx=make_optimizer("adam", cfg.learning_rate),
        phases=phases,
        data=data,
        epochs=epochs,
        batch_size=cfg.batch_size,
        seed=seed,
        validate=validate,
        early_metric="ndcg@20" if not cfg.tiny else "ndcg@10",
        eval_every=cfg.eval_every,
        progress=progress,
    )
    return fns, result.params


def _victim_phases(cfg: VictimConfig, fns, victim: str, *, defence: str):
    """``(phases, epochs)``: BPR (L2 for LightGCN), then APR for the ``apr`` defence."""
    epochs = cfg.epochs
    adv = AdvConfig()
    if defence == "apr":
        adv = AdvConfig(
            method="apr", eps=cfg.apr_eps, weight=cfg.apr_weight, warm_epochs=cfg.epochs
        )
        epochs = cfg.epochs + cfg.apr_epochs
    l2 = 1e-4 if victim == "lightgcn" else 0.0
    return build_phases(fns, loss="bpr", l2=l2, adv=adv, epochs=epochs), epochs


def _validator(fns, split: SplitData):
    """``validate(params)``: full-ranking validation metrics @10 and @20."""
    train_csr = user_item_csr(split.train, split.num_users)
    valid_csr = user_item_csr(split.valid, split.num_users)

    def validate(p):
        return evaluate_full(
            fns.score_all,
            p,
            target_csr=valid_csr,
            exclude_csrs=[train_csr],
            num_items=split.num_items,
            ks=(10, 20),
            batch_size=1024,
            auc=False,
        )

    return validate


def measure(fns, params, split: SplitData, clean: SplitData, targets, *, k: int) -> dict:
    """Target HR/NDCG@K over eligible real users, and clean test NDCG/Recall@20."""
    tm = split_target_metrics(
        fns.score_all, params, split, targets, num_real_users=clean.num_users, k=k
    )
    # clean quality: real users only (fake users have no valid/test rows)
    test = evaluate_full(
        fns.score_all,
        params,
        target_csr=user_item_csr(split.test, split.num_users),
        exclude_csrs=[
            user_item_csr(split.train, split.num_users),
            user_item_csr(split.valid, split.num_users),
        ],
        num_items=split.num_items,
        ks=(20,),
        batch_size=1024,
        auc=False,
    )
    return {
        f"target_hr@{k}": tm[f"hr@{k}"],
        f"target_ndcg@{k}": tm[f"ndcg@{k}"],
        "target_users": tm["num_users"],
        "test_ndcg@20": test["ndcg@20"],
        "test_recall@20": test["recall@20"],
    }
