"""Runs the Python code of every tutorial page (docs/tutorials/*.md).

The ```python blocks of a page run in order in one namespace, in a fresh temporary working
directory, so a page reads like a script; a block that raises fails its page's test, with
the traceback pointing at the page's line. Other fences (```bash, ```text) are not run.

The default suite stays fast (tiny data, few epochs). A page whose later blocks take long
puts the comment ``<!-- docs-test: slow from here -->`` before them: the default suite runs
the blocks above it (the page's tiny variant), ``-m slow`` runs the whole page. A page with
``<!-- docs-test: slow -->`` runs only under ``-m slow``.
"""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TUTORIALS = os.path.join(ROOT, "docs", "tutorials")
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SLOW = "<!-- docs-test: slow -->"
SLOW_FROM = "<!-- docs-test: slow from here -->"


def python_blocks(text: str, *, end: int | None = None) -> list[tuple[int, str]]:
    """(first line number of the code, code) of each ```python block that starts before
    character ``end`` (default: all), in page order."""
    return [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1))
        for m in FENCE.finditer(text)
        if end is None or m.start() < end
    ]


def run_page(path: str, *, full: bool = True) -> dict:
    """Runs the page's blocks in one namespace (``full=False``: only those above the
    ``SLOW_FROM`` comment); returns the namespace."""
    with open(path) as f:
        text = f.read()
    end = None if full or SLOW_FROM not in text else text.index(SLOW_FROM)
    namespace = {"__name__": "__tutorial__"}
    for line, code in python_blocks(text, end=end):
        # padding with newlines makes tracebacks show the page's own line numbers
        exec(compile("\n" * (line - 1) + code, path, "exec"), namespace)  # noqa: S102
    return namespace


def _pages():
    params = []
    for name in sorted(os.listdir(TUTORIALS)):
        path = os.path.join(TUTORIALS, name)
        if not name.endswith(".md"):
            continue
        with open(path) as f:
            text = f.read()
        if not python_blocks(text):
            continue
        page = name.removesuffix(".md")
        if SLOW in text:
            params.append(pytest.param(path, True, id=page, marks=pytest.mark.slow))
        elif SLOW_FROM in text:
            params.append(pytest.param(path, False, id=f"{page}-tiny"))
            params.append(pytest.param(path, True, id=page, marks=pytest.mark.slow))
        else:
            params.append(pytest.param(path, True, id=page))
    return params


@pytest.fixture
def restored_registries():
    """A page may register attacks (module-level dicts): they are removed afterwards."""
    from robustjax.attacks.registry import EMBEDDING_ATTACKS, HISTORY_ATTACKS, TEXT_ATTACKS

    saved = [(r, dict(r)) for r in (EMBEDDING_ATTACKS, HISTORY_ATTACKS, TEXT_ATTACKS)]
    yield
    for registry, entries in saved:
        registry.clear()
        registry.update(entries)


@pytest.mark.parametrize("path, full", _pages())
def test_tutorial_runs(path, full, tmp_path, monkeypatch, restored_registries):
    monkeypatch.chdir(tmp_path)
    run_page(path, full=full)


def test_a_broken_block_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```python\nx = 1\n```\n\ntext\n\n```python\nassert x == 2\n```\n")
    with pytest.raises(AssertionError) as info:
        run_page(str(page))
    assert info.traceback[-1].lineno + 1 == 10  # the failing line of the page (1-based)


def test_slow_from_here_cuts_the_tiny_variant(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"```python\nx = 1\n```\n{SLOW_FROM}\n```python\nx = 2\n```\n")
    assert run_page(str(page), full=False)["x"] == 1
    assert run_page(str(page))["x"] == 2


def test_blocks_share_one_namespace_and_skip_other_fences(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n```bash\nexit 1\n```\n```python\ny = x + 1\n```\n")
    assert run_page(str(page))["y"] == 2
