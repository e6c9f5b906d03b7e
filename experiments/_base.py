"""Shared pieces of the self-contained experiment configs (those that define ``run``)."""
import dataclasses
import json


class ConfigBase:
    """Mixin for frozen experiment config dataclasses.

    ``validate`` runs after every ``--set`` override has been applied (override it for
    cross-field checks); ``to_json`` is what the experiment writes to ``config.json``.
    """

    def validate(self):
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)


def build_config(cls, *, tiny: bool, tiny_fields: dict, overrides: dict):
    """``cls()``, shrunk by ``tiny_fields`` (and ``tiny=True``) for smoke tests, then
    ``overrides`` applied."""
    cfg = cls()
    if tiny:
        cfg = dataclasses.replace(cfg, tiny=True, **tiny_fields)
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
