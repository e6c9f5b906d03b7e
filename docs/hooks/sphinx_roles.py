"""Griffe extension for the API reference: Sphinx roles in docstrings render as code.

The docstrings name other objects with Sphinx roles (``:func:`fit```, ``:class:`~x.Y```);
Markdown has no such syntax, so the reference would show ``:func:`` before the name. This
extension rewrites each role to the plain code span of its target (``~`` dropped, as
Sphinx shows the last component only when it is given).
"""

import re

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc|const):`(~?)([^`]+)`")


def _plain(match: re.Match) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def strip_roles(text: str) -> str:
    """``text`` with every Sphinx role replaced by a code span of its target."""
    return ROLE.sub(_plain, text)


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx roles in every loaded docstring (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = strip_roles(obj.docstring.value)
