"""Field checks shared by the frozen config dataclasses (run from ``__post_init__``).

Messages name the config class and the field, as ``PoisonConfig.k must be an int >= 1,
got 0.``
"""

from collections.abc import Iterable


def check_int_fields(cfg, names: Iterable[str], *, minimum: int = 1) -> None:
    """Raises ValueError unless every field in ``names`` is an int >= ``minimum``."""
    for name in names:
        v = getattr(cfg, name)
        if not isinstance(v, int) or v < minimum:
            raise ValueError(f"{type(cfg).__name__}.{name} must be an int >= {minimum}, got {v!r}.")


def check_name_fields(cfg, fields: Iterable[tuple[str, tuple[str, ...]]]) -> None:
    """For each ``(field, allowed)``: stores the field as a tuple (on the frozen ``cfg``)
    and raises ValueError unless it is a non-empty tuple of distinct names from
    ``allowed``."""
    for name, allowed in fields:
        value = tuple(getattr(cfg, name))
        object.__setattr__(cfg, name, value)
        bad = [v for v in value if v not in allowed]
        if not value or bad or len(set(value)) != len(value):
            raise ValueError(
                f"{type(cfg).__name__}.{name}={value!r}: expected distinct names from {allowed}."
            )


def check_choice_fields(cfg, fields: Iterable[tuple[str, Iterable]]) -> None:
    """For each ``(field, choices)``: raises ValueError unless the field's value is one of
    ``choices`` (``<Class>.<field>=<value> is unknown; expected one of <choices>.``)."""
    for name, choices in fields:
        value = getattr(cfg, name)
        if value not in choices:
            raise ValueError(
                f"{type(cfg).__name__}.{name}={value!r} is unknown; expected one of "
                f"{tuple(choices)}."
            )


def field_error(cfg, field: str, expected: str) -> ValueError:
    """``ValueError("<Class>.<field> must be <expected>, got <field>=<value>.")`` for
    ``raise field_error(self, "eps", "a finite number >= 0")`` in ``__post_init__``."""
    return ValueError(
        f"{type(cfg).__name__}.{field} must be {expected}, got {field}={getattr(cfg, field)!r}."
    )


def check_int_at_least(cfg, field: str, minimum: int, expected: str | None = None) -> None:
    """Raises :func:`field_error` unless the field is an int (not a bool) >= ``minimum``;
    ``expected`` words the requirement (default ``"an int >= <minimum>"``), e.g.
    ``check_int_at_least(self, "seed", 0, "an int >= 0 (numpy seeds cannot be negative)")``."""
    value = getattr(cfg, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise field_error(cfg, field, expected or f"an int >= {minimum}")
