"""Pieces shared by the studies: the config base class, data loading, output files."""

import dataclasses
import json
import os
import sys


class StudyConfig:
    """Mixin for the frozen config dataclasses of studies (runs of several trainings).

    ``validate`` runs after every ``--set`` override has been applied (override it for
    cross-field checks); ``to_json`` is what the study writes to ``config.json``;
    ``with_data`` applies the CLI's ``--data``/``--format``; ``headline`` picks the metrics
    the CLI prints.
    """

    def validate(self):
        return self

    def with_data(self, path: str | None, fmt: str | None):
        if fmt is not None:
            raise ValueError(
                f"{self.name}: --format is not supported here (the data format is "
                f"auto-detected from --data); got --format {fmt!r}."
            )
        return self if path is None else dataclasses.replace(self, data_path=path)

    def headline(self, metrics: dict) -> dict:
        return {k: v for k, v in metrics.items() if k.startswith("test/")}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)


def check_no_resume(name: str, resume: bool) -> None:
    if resume:
        raise ValueError(f"{name} does not support --resume; rerun without it.")


def start(cfg, out_dir: str) -> None:
    """Creates ``out_dir`` and writes ``config.json``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(cfg.to_json())


def write_json(path: str, obj, **kwargs) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, **kwargs)


def write_text(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def try_plot(name: str, plot_fn, *args, what: str = "plot") -> None:
    """``plot_fn(*args)``, or a note on stderr when matplotlib is not installed."""
    try:
        plot_fn(*args)
    except ImportError:
        print(
            f"{name}: matplotlib not installed, {what} skipped (pip install 'robustjax[plot]').",
            file=sys.stderr,
        )


def load_split(cfg):
    """The split of a user-item study: ``cfg.data_path`` if set, else the synthetic
    data set sized by ``cfg.synthetic_users/items/per_user`` (seeded by ``cfg.seed``)."""
    from robustjax.data import DataConfig, prepare

    if cfg.data_path is not None:
        return prepare(DataConfig(path=cfg.data_path))
    return prepare(
        DataConfig(
            synthetic_users=cfg.synthetic_users,
            synthetic_items=cfg.synthetic_items,
            synthetic_per_user=cfg.synthetic_per_user,
            seed=cfg.seed,
        )
    )


def train_or_load(mcfg, run_dir: str, *, progress: bool) -> dict:
    """Trains into ``run_dir`` unless it holds a finished run; resumes an interrupted one."""
    from robustjax.run import run_experiment

    done = os.path.join(run_dir, "metrics.json")
    if os.path.exists(done) and os.path.exists(os.path.join(run_dir, "checkpoint", "params.npz")):
        from robustjax.config import from_dict

        with open(os.path.join(run_dir, "config.json")) as f:
            saved = from_dict(type(mcfg), json.load(f))  # fields added since: their defaults
            if saved.to_json() != mcfg.to_json():
                raise ValueError(
                    f"{run_dir} holds a run of another config; remove it or use another --out."
                )
        with open(done) as f:
            return json.load(f)
    resume = os.path.exists(os.path.join(run_dir, "checkpoint", "state.npz"))
    return run_experiment(mcfg, run_dir, resume=resume, progress=progress)


def start_study(cfg, out_dir: str, resume: bool) -> None:
    """Writes ``config.json``; refuses to mix studies in one folder."""
    path = os.path.join(out_dir, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        if not resume:
            raise ValueError(
                f"{out_dir} already holds a study; pass --resume to continue it, or choose "
                "another --out."
            )
        if previous != json.loads(cfg.to_json()):
            raise ValueError(
                f"--resume: {out_dir} holds a study of another config ({path}); rerun with "
                "the same settings or choose another --out."
            )
    os.makedirs(out_dir, exist_ok=True)
    write_text(path, cfg.to_json())
