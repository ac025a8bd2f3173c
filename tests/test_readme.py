"""The README's Python examples run as written.

Every ```python block in README.md is executed in order in one namespace, so
an API change that breaks the documented example fails the suite. Blocks that
show CLI output are ```text or ```console and are not run.
"""
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_readme_has_python_examples():
    assert python_blocks(README.read_text()), "README.md should show a runnable Python example"


def test_readme_python_examples_run():
    namespace: dict = {"__name__": "readme_example"}
    for index, block in enumerate(python_blocks(README.read_text())):
        code = compile(block, f"README.md python block {index}", "exec")
        exec(code, namespace)  # noqa: S102 - executing our own documentation


def test_every_test_named_in_the_guarantees_section_exists():
    text = README.read_text()
    section = text.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)", section)
    assert len(named) >= 12, named
    root = README.parent
    for path, test in named:
        source = (root / path).read_text()
        assert re.search(rf"^def {test}\(", source, flags=re.MULTILINE), f"{path}::{test}"
