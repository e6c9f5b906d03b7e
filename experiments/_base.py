"""Shared pieces of the self-contained experiment configs (those that define ``run``)."""

import dataclasses
import json


class ConfigBase:
    """Mixin for frozen experiment config dataclasses that define their own ``run``.

    ``validate`` runs after every ``--set`` override has been applied (override it for
    cross-field checks); ``to_json`` is what the experiment writes to ``config.json``;
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


def build_config(cls, *, tiny: bool, tiny_fields: dict, overrides: dict):
    """``cls()``, shrunk by ``tiny_fields`` (and ``tiny=True``) for smoke tests, then
    ``overrides`` applied."""
    cfg = cls()
    if tiny:
        cfg = dataclasses.replace(cfg, tiny=True, **tiny_fields)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def start_sequence_run(cfg, out_dir: str, *, resume: bool) -> dict | None:
    """Common start of the sequential experiments: validates, writes
    ``out_dir/config.json``; returns the synthetic-data arguments of a ``--tiny`` run
    without ``--data`` (else None, meaning ``cfg.data_path``)."""
    import os

    if resume and not os.path.exists(os.path.join(out_dir, "checkpoint", "state.npz")):
        raise FileNotFoundError(
            f"{cfg.name}: --resume needs {out_dir}/checkpoint/state.npz; run without --resume."
        )
    cfg.validate()
    if cfg.data_path is None and not cfg.tiny:
        raise ValueError(f"{cfg.name} needs --data (e.g. ../shared/data/ml-1m), or --tiny.")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(cfg.to_json())
    if cfg.tiny and cfg.data_path is None:
        return {"num_users": 40, "num_items": 150, "interactions_per_user": 15, "seed": cfg.seed}
    return None


def load_split(cfg):
    """The split of a user-item experiment: ``cfg.data_path`` if set, else the synthetic
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
