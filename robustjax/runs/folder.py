"""The run folder every training run writes, whatever the model family.

``config.json`` (the resolved ``ExperimentConfig``), ``data.json`` (what the data was),
``history.jsonl`` (one record per epoch), ``metrics.json`` (flat ``<split>/<metric>`` keys
plus timings), ``checkpoint/`` (``state.npz`` for resume, ``best_model.npz``,
``params.npz`` of the selected model) and, for pair models, ``recommendations.tsv``.

Guarantees: every JSON file is strict JSON (a non-finite float is written as the string
``"nan"``, ``"inf"`` or ``"-inf"``, which ``float()`` reads back). The result files
(:data:`RESULT_FILES`) are removed when a run starts and written only at its end, the
metrics last, so a failed run leaves nothing that looks like a result. A resumed run cuts
``history.jsonl`` back to the checkpoint's epoch (each epoch appears once) and refuses a
changed config unless the change is allowed; ``config.json`` then lists it under
``resumed_with_changes``.
"""

import json
import math
import os
import tempfile

import optax

from robustjax._json_files import read_json
from robustjax.train.checkpoint import load_meta
from robustjax.train.state import make_optimizer

RESULT_FILES = (
    "metrics.json",
    "recommendations.tsv",
    os.path.join("checkpoint", "params.npz"),
    os.path.join("checkpoint", "params.json"),
)
CHANGES_KEY = "resumed_with_changes"
# how long a run goes on, not what its epochs do: a resume may extend it without a flag
# (the change is still recorded in config.json)
RESUME_MAY_CHANGE = (
    "train.epochs",
    "train.time_budget_s",
    "train.checkpoint_every",
    "train.mesh",  # where the epochs run (same results up to float summation order)
)  # in config.json: config changes made on --resume


class RunFolder:
    """Writes one run's files into ``out_dir``.

    Args:
      resume: the folder must hold a checkpoint; the history is continued from its epoch.
      overwrite: without ``resume``, a folder that already holds a run (``metrics.json`` or
        a checkpoint) is an error unless this is set (the CLI's ``--overwrite``); its
        checkpoint is then removed.
    """

    def __init__(self, out_dir: str, *, resume: bool = False, overwrite: bool = True):
        self.out_dir = out_dir
        self.checkpoint_dir = os.path.join(out_dir, "checkpoint")
        self.state_path = os.path.join(self.checkpoint_dir, "state.npz")
        self.history_path = os.path.join(out_dir, "history.jsonl")
        self.resume = resume
        if resume and not os.path.exists(self.state_path):
            raise FileNotFoundError(
                f"resume: no checkpoint at {self.state_path}; run without --resume to start afresh."
            )
        existing = [
            p for p in ("metrics.json", "checkpoint/state.npz") if os.path.exists(self.path(p))
        ]
        if not resume and existing and not overwrite:
            raise ValueError(
                f"--out {out_dir!r} already holds a run ({', '.join(existing)}); pass "
                "--overwrite to replace it, --resume to continue it, or choose another --out."
            )
        # reads (and so checks) the checkpoint before anything in the folder changes
        self.checkpoint_epoch = int(load_meta(self.state_path)["epoch"]) if resume else 0
        os.makedirs(out_dir, exist_ok=True)

    def _start(self) -> None:
        """Clears what the run replaces (after every check passed)."""
        for name in RESULT_FILES:  # a failed run must not leave an old run's results
            if os.path.exists(self.path(name)):
                os.remove(self.path(name))
        if self.resume:
            self._cut_history(self.checkpoint_epoch)
        else:
            for name in _checkpoint_files(self.checkpoint_dir):  # --overwrite: a fresh start
                os.remove(os.path.join(self.checkpoint_dir, name))
            open(self.history_path, "w").close()

    def _cut_history(self, epoch: int) -> None:
        """Keeps the records of epochs ``<= epoch`` (those the checkpoint holds)."""
        keep = []
        if os.path.exists(self.history_path):
            with open(self.history_path) as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:  # a line cut short by the crash
                        continue
                    if record.get("epoch", 0) <= epoch:
                        keep.append(line if line.endswith("\n") else line + "\n")
        self._atomic(self.history_path, "".join(keep))

    def path(self, name: str) -> str:
        return os.path.join(self.out_dir, name)

    def write_json(self, name: str, obj, **kwargs) -> None:
        self._atomic(self.path(name), dumps(obj, indent=1, **kwargs))

    def write_config(self, cfg, *, allow_change: bool = False) -> None:
        """Starts the run: clears the old results (and, without resume, the old checkpoint
        and history; with resume, the history after the checkpoint), then writes
        ``config.json``. On resume, a config that differs from the run's is an
        error listing the differing keys (except :data:`RESUME_MAY_CHANGE`, which
        extend the run), unless ``allow_change`` (``--allow-config-change``):
        then ``config.json`` holds the new config and, under ``resumed_with_changes``, each
        change with the epoch it took effect from."""
        new = json.loads(cfg.to_json())
        path = self.path("config.json")
        if self.resume and os.path.exists(path):
            old = read_json(path, lambda e: f"resume: {path} is not valid JSON ({e}).")
            history = old.pop(CHANGES_KEY, [])
            diff = config_diff(old, new)
            refused = [d for d in diff if d[0] not in RESUME_MAY_CHANGE]
            if refused and not allow_change:
                lines = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in refused)
                raise ValueError(
                    f"resume: the config differs from the run's in {out_keys(refused)} ({lines}). "
                    "Resume with the same settings, or pass --allow-config-change to "
                    "continue with the new ones (config.json then records the change)."
                )
            if diff:
                history.append(
                    {
                        "from_epoch": self.checkpoint_epoch + 1,
                        "changes": {k: [a, b] for k, a, b in diff},
                    }
                )
            if history:
                new[CHANGES_KEY] = history
        self._start()
        self.write_json("config.json", new, sort_keys=True)

    def log(self, record: dict) -> None:
        """Appends one epoch's record to ``history.jsonl``."""
        with open(self.history_path, "a") as f:
            f.write(dumps(record) + "\n")

    def write_metrics(self, metrics: dict) -> None:
        self.write_json("metrics.json", metrics, sort_keys=True)

    @staticmethod
    def _atomic(path: str, text: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)


def _checkpoint_files(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return [
        f
        for f in os.listdir(folder)
        if f.startswith(("state.", "best_")) and f.endswith((".npz", ".json"))
    ]


def config_diff(old: dict, new: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """``(dotted key, old, new)`` for every differing leaf of two config dicts."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append((f"{prefix}{k}", a, b))
    return out


def out_keys(diff) -> str:
    return ", ".join(k for k, _, _ in diff)


def strict_json(obj):
    """``obj`` with non-finite floats as the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    return obj


def dumps(obj, **kwargs) -> str:
    """Strict JSON (never a bare ``NaN``), see :func:`strict_json`."""
    default = kwargs.pop("default", None)
    if default is not None:  # apply it first, so its output is sanitised too
        obj = json.loads(json.dumps(obj, default=default, allow_nan=True))
    return json.dumps(strict_json(obj), allow_nan=False, **kwargs)


def optimizer_of(train_cfg) -> optax.GradientTransformation:
    """The optimizer a ``TrainConfig`` names, with its weight decay, beta2 and clipping."""
    return make_optimizer(
        train_cfg.optimizer,
        train_cfg.learning_rate,
        weight_decay=train_cfg.weight_decay,
        beta2=train_cfg.beta2,
        clip_norm=train_cfg.clip_norm,
    )


def loop_options(train_cfg, folder: RunFolder, *, resume: bool, progress: bool) -> dict:
    """The host loop's keywords (``robustjax.train.fit`` and ``train_loop``) that a
    ``TrainConfig`` and the run folder decide: length, seed, validation cadence, early
    stopping, checkpoints, history and the loss-growth guard."""
    return {
        "epochs": train_cfg.epochs,
        "seed": train_cfg.seed,
        "eval_every": train_cfg.eval_every,
        "patience": train_cfg.patience,
        "checkpoint_dir": folder.checkpoint_dir,
        "checkpoint_every": train_cfg.checkpoint_every,
        "resume": resume,
        "progress": progress,
        "on_epoch": folder.log,
        "strict": train_cfg.strict,
    }
