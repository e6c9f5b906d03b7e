"""The run folder every training run writes, whatever the model family.

``config.json`` (the resolved ``ExperimentConfig``), ``data.json`` (what the data was),
``history.jsonl`` (one record per epoch), ``metrics.json`` (flat ``<split>/<metric>`` keys
plus timings), ``checkpoint/`` (``state.npz`` for resume, ``best_model.npz``,
``params.npz`` of the selected model) and, for pair models, ``recommendations.tsv``.
"""

import json
import os

import optax

from robustjax.train.state import make_optimizer


class RunFolder:
    """Writes one run's files into ``out_dir``. With ``resume`` the folder must hold a
    checkpoint and the history is continued; otherwise a previous history is replaced."""

    def __init__(self, out_dir: str, *, resume: bool = False):
        self.out_dir = out_dir
        self.checkpoint_dir = os.path.join(out_dir, "checkpoint")
        state = os.path.join(self.checkpoint_dir, "state.npz")
        if resume and not os.path.exists(state):
            raise FileNotFoundError(
                f"resume: no checkpoint at {state}; run without --resume to start afresh."
            )
        os.makedirs(out_dir, exist_ok=True)
        self.history_path = os.path.join(out_dir, "history.jsonl")
        if not resume:
            open(self.history_path, "w").close()

    def path(self, name: str) -> str:
        return os.path.join(self.out_dir, name)

    def write_json(self, name: str, obj, **kwargs) -> None:
        with open(self.path(name), "w") as f:
            json.dump(obj, f, indent=1, **kwargs)

    def write_config(self, cfg) -> None:
        with open(self.path("config.json"), "w") as f:
            f.write(cfg.to_json())

    def log(self, record: dict) -> None:
        """Appends one epoch's record to ``history.jsonl``."""
        with open(self.history_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def write_metrics(self, metrics: dict) -> None:
        self.write_json("metrics.json", metrics, sort_keys=True)


def optimizer_of(train_cfg) -> optax.GradientTransformation:
    """The optimizer a ``TrainConfig`` names, with its weight decay, beta2 and clipping."""
    return make_optimizer(
        train_cfg.optimizer,
        train_cfg.learning_rate,
        weight_decay=train_cfg.weight_decay,
        beta2=train_cfg.beta2,
        clip_norm=train_cfg.clip_norm,
    )
