import os
import re

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_readme_compose_snippet_runs():
    with open(README) as f:
        text = f.read()
    match = re.search(r"<!-- snippet: compose -->\s*```python\n(.*?)```", text, re.DOTALL)
    assert match, "the compose snippet is missing from README.md"
    scope = {}
    exec(compile(match.group(1), "README.md:compose", "exec"), scope)  # noqa: S102 (the README's own snippet)
    parts = scope["parts"]
    assert set(parts) == {"bpr", "adv_hinge"}
    assert float(scope["total"]) == float(parts["bpr"] + 0.5 * parts["adv_hinge"])
