"""The reference's griffe extension turns Sphinx roles into code spans."""

import importlib.util
import os

import pytest

pytest.importorskip("griffe")

PATH = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "hooks", "sphinx_roles.py")


def test_roles_become_code_spans():
    spec = importlib.util.spec_from_file_location("sphinx_roles", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = "see :func:`robustjax.train.fit` and :class:`~robustjax.models.ModelFns`, ``[B, D]``"
    assert mod.strip_roles(text) == "see `robustjax.train.fit` and `ModelFns`, ``[B, D]``"
    assert mod.strip_roles(":meth:`TextEncoder.hidden` x") == "`TextEncoder.hidden` x"
