"""JSON run files (``data.json``, checkpoint metadata, ``config.json``) read with an error
that names the damaged file instead of a bare ``JSONDecodeError``."""

import json
from collections.abc import Callable
from typing import Any


def parse_json(text: str, error: Callable[[json.JSONDecodeError], str]) -> Any:
    """``json.loads(text)``; invalid JSON raises ``ValueError(error(e))`` (without the
    decoder's traceback)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(error(e)) from None


def read_json(path: str, error: Callable[[json.JSONDecodeError], str]) -> Any:
    """The JSON value in the file ``path``; invalid JSON raises ``ValueError(error(e))``."""
    with open(path) as f:
        return parse_json(f.read(), error)
