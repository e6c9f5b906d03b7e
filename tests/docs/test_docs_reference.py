"""The API reference (docs/reference/) covers every public module of robustjax.

A module is public when no part of its dotted name starts with ``_``. Each top-level public
module ``robustjax.NAME`` has the page ``docs/reference/NAME.md`` (listed in mkdocs.yml's
nav), and every public module appears in a ``::: robustjax...`` block of its page.

After adding a module, write the pages again with::

    .venv/bin/python tests/docs/test_docs_reference.py
"""

import os
import pkgutil
import re

import robustjax

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(ROOT, "docs", "reference")
BLOCK = re.compile(r"^::: (robustjax(?:\.\w+)*)\s*$", re.MULTILINE)


def public_modules() -> list[str]:
    """Every public module and package of robustjax, by dotted name, sorted."""
    names = [m.name for m in pkgutil.walk_packages(robustjax.__path__, "robustjax.")]
    return sorted(n for n in names if not any(p.startswith("_") for p in n.split(".")))


def top_level(names: list[str]) -> list[str]:
    return sorted({n.split(".")[1] for n in names})


def page_text(top: str, names: list[str]) -> str:
    """The reference page of ``robustjax.<top>``: a package shows its own docstring (its
    re-exported names are documented where they are defined), then each public submodule."""
    full = f"robustjax.{top}"
    subs = [n for n in names if n.startswith(full + ".")]
    lines = [f"# `{full}`", ""]
    if subs:
        lines += [f"::: {full}", "    options:", "      members: false", ""]
        lines += [f"::: {n}\n" for n in subs]
    else:
        lines += [f"::: {full}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def index_text(tops: list[str]) -> str:
    rows = "\n".join(f"- [`robustjax.{t}`]({t}.md)" for t in tops)
    return (
        "# API reference\n\n"
        "One page per public module of robustjax, generated from its docstrings. A package's\n"
        "page shows the package docstring, then each public submodule; the names a package\n"
        "re-exports are documented in the submodule that defines them.\n\n"
        f"{rows}\n"
    )


def write_pages() -> None:
    names = public_modules()
    tops = top_level(names)
    os.makedirs(REFERENCE, exist_ok=True)
    for top in tops:
        with open(os.path.join(REFERENCE, f"{top}.md"), "w") as f:
            f.write(page_text(top, names))
    with open(os.path.join(REFERENCE, "index.md"), "w") as f:
        f.write(index_text(tops))
    print(f"wrote {len(tops)} pages; list them under Reference in mkdocs.yml's nav")


def documented() -> set[str]:
    found = set()
    for name in os.listdir(REFERENCE):
        if name.endswith(".md"):
            with open(os.path.join(REFERENCE, name)) as f:
                found.update(BLOCK.findall(f.read()))
    return found


def test_every_public_module_has_a_reference_block():
    missing = [n for n in public_modules() if n not in documented()]
    assert not missing, (
        f"public modules without a '::: name' block in docs/reference/: {missing}; run "
        "`.venv/bin/python tests/docs/test_docs_reference.py` to write the pages"
    )


def test_reference_blocks_name_existing_modules():
    stale = sorted(documented() - set(public_modules()))
    assert not stale, (
        f"docs/reference/ documents modules that are not public modules of robustjax: "
        f"{stale}; run `.venv/bin/python tests/docs/test_docs_reference.py` and delete "
        "pages of removed modules"
    )


def test_every_reference_page_is_in_the_nav():
    with open(os.path.join(ROOT, "mkdocs.yml")) as f:
        nav = f.read()
    tops = top_level(public_modules())
    missing = [f"reference/{t}.md" for t in tops if f"reference/{t}.md" not in nav]
    assert not missing, f"reference pages missing from mkdocs.yml's nav: {missing}"


if __name__ == "__main__":
    write_pages()
