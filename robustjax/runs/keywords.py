"""Keyword entry points for sequence-model runs: ``run_sasrec(**kwargs)`` and
``run_bert4rec(**kwargs)`` build an ``ExperimentConfig`` from the keyword arguments of the
original SASRec/BERT4Rec runs (with their defaults) and run it through
:func:`robustjax.runs.sequence.run_sequence_experiment`; the run folder records that
config. New code can build the ``ExperimentConfig`` directly.
"""

from robustjax.config import EvalConfig, ExperimentConfig, TrainConfig
from robustjax.data import DataConfig
from robustjax.losses.sequence import SeqAdvConfig
from robustjax.models import ModelConfig
from robustjax.objectives import AdvConfig
from robustjax.runs.sequence import run_sequence_experiment

_LEGACY_DEFAULTS = {
    "sasrec": {
        "epochs": 200,
        "max_len": 200,
        "dim": 50,
        "num_heads": 1,
        "dropout": 0.2,
        "eval_every": 20,
        "buckets": 1,
    },
    "bert4rec": {
        "epochs": 200,
        "max_len": 100,
        "dim": 64,
        "num_heads": 2,
        "dropout": 0.1,
        "eval_every": 10,
        "mask_prob": 0.2,
        "mask_last_prob": 0.0,
        "num_sampled": 0,
        "weight_decay": 0.0,
        "clip_norm": 5.0,
    },
}
_LEGACY_COMMON = {
    "num_blocks": 2,
    "lr": 1e-3,
    "batch_size": 128,
    "seed": 0,
    "time_budget_s": None,
    "data_path": None,
    "table": None,
    "synthetic": None,
    "adv": None,
    "name": None,
    "init_from": None,
}


def _legacy_data(model: str, kw: dict) -> DataConfig:
    synthetic = kw.pop("synthetic", None)
    if synthetic is not None:
        return DataConfig(
            synthetic_users=synthetic["num_users"],
            synthetic_items=synthetic["num_items"],
            synthetic_per_user=synthetic["interactions_per_user"],
            seed=synthetic.get("seed", 0),
        )
    if kw.get("data_path") is not None or kw.get("table") is not None:
        return DataConfig(path=kw.get("data_path"))
    raise ValueError(
        f"run_{model}: pass data_path= (e.g. ../shared/data/ml-1m), synthetic= or table=."
    )


def adv_config_of(adv: SeqAdvConfig | None) -> AdvConfig:
    """The ``AdvConfig`` of a sequence objective's config (inverse of
    :func:`robustjax.runs.sequence.sequence_adv`)."""
    adv = adv or SeqAdvConfig()
    return AdvConfig(
        method=adv.method,
        eps=adv.eps,
        weight=adv.lam,
        warm_epochs=adv.start_epoch - 1,
        num_steps=adv.num_steps,
        step_size=adv.step_size if adv.method == "hull" else None,
        norm=adv.norm,
        scope=adv.scope,
        targets=("seq",),
        budget=adv.budget,
        num_candidates=adv.num_candidates,
        random_start=adv.random_start,
    )


def _legacy_train(model: str, kw: dict) -> TrainConfig:
    keys = ("epochs", "batch_size", "seed", "eval_every", "time_budget_s", "init_from")
    keys += ("buckets", "weight_decay", "mask_prob", "mask_last_prob")
    train = {k: kw[k] for k in keys if k in kw}
    if "num_sampled" in kw:
        train["cloze_negatives"] = kw["num_sampled"]
    optimizer = {"optimizer": "adam", "beta2": 0.98}
    if model == "bert4rec":
        optimizer = {"optimizer": "adamw", "beta2": 0.999, "clip_norm": kw["clip_norm"]}
    return TrainConfig(
        learning_rate=kw["lr"],
        loss="bce" if model == "sasrec" else "softmax",
        early_metric="sampled_ndcg@10",
        checkpoint_every=kw["eval_every"],
        **optimizer,
        **train,
    )


def _legacy_config(model: str, kw: dict) -> ExperimentConfig:
    """An ``ExperimentConfig`` from the keyword arguments of :func:`run_sasrec` /
    :func:`run_bert4rec` (their defaults are those of the original runs)."""
    allowed = {**_LEGACY_COMMON, **_LEGACY_DEFAULTS[model]}
    if model == "bert4rec":
        allowed.pop("init_from")
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise TypeError(f"run_{model}: unexpected arguments {unknown}; valid: {sorted(allowed)}.")
    kw = {**allowed, **kw, "name": kw.get("name") or model}
    model_keys = ("max_len", "dim", "num_blocks", "num_heads", "dropout")
    return ExperimentConfig(
        name=kw["name"],
        data=_legacy_data(model, kw),
        model=ModelConfig(name=model, **{k: kw[k] for k in model_keys}),
        train=_legacy_train(model, kw),
        adv=adv_config_of(kw["adv"]),
        eval=EvalConfig(ks=(10,), sampled_negatives=100, batch_size=256),
    ).validate()


def run_sasrec(*, out_dir: str, resume: bool = False, progress: bool = True, **kw) -> dict:
    """SASRec through :func:`run_sequence_experiment`, configured by keywords: ``data_path``
    / ``synthetic`` (kwargs of ``robustjax.data.synthetic``) / ``table``, ``epochs``,
    ``max_len``, ``dim``, ``num_blocks``, ``num_heads``, ``dropout``, ``lr``,
    ``batch_size``, ``seed``, ``eval_every``, ``time_budget_s``, ``adv``
    (:class:`SeqAdvConfig`), ``init_from``, ``name``, ``buckets``. Adam with ``b2 = 0.98``
    (the paper's); selection on sampled NDCG@10 (100 negatives)."""
    table = kw.pop("table", None)
    cfg = _legacy_config("sasrec", {"table": table, **kw})
    return run_sequence_experiment(cfg, out_dir, resume=resume, progress=progress, table=table)


def run_bert4rec(*, out_dir: str, resume: bool = False, progress: bool = True, **kw) -> dict:
    """BERT4Rec through :func:`run_sequence_experiment`, configured by keywords: those of
    :func:`run_sasrec` (but ``buckets``, ``init_from``) and ``mask_prob``,
    ``mask_last_prob``, ``num_sampled`` (0 = full softmax), ``weight_decay``,
    ``clip_norm``. Optimiser: global-norm clipping, then AdamW."""
    table = kw.pop("table", None)
    cfg = _legacy_config("bert4rec", {"table": table, **kw})
    return run_sequence_experiment(cfg, out_dir, resume=resume, progress=progress, table=table)
