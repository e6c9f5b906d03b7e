"""``--set key=value`` overrides of nested frozen config dataclasses, and configs rebuilt
from their saved dicts.

Generic over any config whose sections are dataclass fields (``ExperimentConfig`` and every
study config): keys are dotted paths (``train.epochs``), values are parsed by the field's
annotated type. Re-exported by :mod:`robustjax.config`.
"""

import dataclasses
import math
import types
import typing
from typing import Any


def valid_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every ``a.b`` key that ``--set`` accepts for this config."""
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            keys += valid_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def apply_overrides(cfg: Any, overrides: list[str] | dict[str, Any]) -> Any:
    """Applies ``key=value`` overrides (dotted keys into nested configs).

    Values are parsed by the field's annotated type (``int``, ``float``, ``bool``, ``str``,
    tuples as ``a,b,c``, ``None``). An unknown key is an error listing the valid ones.
    """
    items = overrides.items() if isinstance(overrides, dict) else [_split(o) for o in overrides]
    for key, raw in items:
        cfg = _set(cfg, key.split("."), raw, key, "")
    return cfg.validate()  # ExperimentConfig and every study config define it


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ValueError(f"--set expects key=value, got {item!r} (e.g. train.epochs=5).")
    key, value = item.split("=", 1)
    return key.strip(), value.strip()


def _set(cfg, path, raw, full_key, prefix):
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    if path[0] not in fields:
        raise ValueError(
            f"--set: unknown key {full_key!r}. Valid keys: {', '.join(valid_keys(cfg, prefix))}."
        )
    f = fields[path[0]]
    current = getattr(cfg, f.name)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"--set: {full_key!r}: {path[0]!r} is not a config section.")
        return dataclasses.replace(
            cfg, **{f.name: _set(current, path[1:], raw, full_key, f"{prefix}{path[0]}.")}
        )
    if dataclasses.is_dataclass(current):
        raise ValueError(
            f"--set: {full_key!r} is a section; set one of its fields: "
            f"{', '.join(valid_keys(current, full_key + '.'))}."
        )
    hints = typing.get_type_hints(type(cfg))
    value = raw if not isinstance(raw, str) else parse_value(raw, hints[f.name], full_key)
    return dataclasses.replace(cfg, **{f.name: value})


def parse_value(raw: str, annotation, key: str):
    """Parses ``raw`` as the type ``annotation`` (used for ``--set``)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if raw.lower() in ("none", "null", "") and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return parse_value(raw, a, key)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(f"--set {key}={raw!r}: cannot parse ({'; '.join(errors)}).")
    if origin is tuple:
        parts = [p for p in raw.strip("()[] ").split(",") if p.strip()]
        elem = args[0] if args else str
        return tuple(parse_value(p.strip(), elem, key) for p in parts)
    if annotation is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"--set {key}={raw!r}: expected a boolean (true/false).")
    if annotation in (int, float):
        try:
            value = annotation(raw)
        except ValueError:
            raise ValueError(f"--set {key}={raw!r}: expected {annotation.__name__}.") from None
        if not math.isfinite(value):
            raise ValueError(f"--set {key}={raw!r}: expected a finite number, not nan or inf.")
        return value
    if annotation is str:
        return raw
    raise ValueError(f"--set {key}: unsupported field type {annotation!r}.")


def from_dict(cls, data: dict):
    """Rebuilds a (nested) frozen config dataclass from ``dataclasses.asdict`` output
    (e.g. a run's ``config.json``); lists become tuples, unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    # a resumed run's config.json lists the config changes made on resume
    data = {k: v for k, v in data.items() if k != "resumed_with_changes"}
    data = {**getattr(cls, "SAVED_BEFORE", {}), **data}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"{cls.__name__}: unknown keys {unknown} in the saved config; valid: {sorted(names)}."
        )
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)
