"""What is public is a promise: exactly the documented modules have public names.

A module is public when no part of its name after ``translator`` starts with
an underscore. README documents these seven; every other module is private
and may change without notice. Plugin authors import only
``translator.plugin_api`` (pinned in ``test_plugin_api.py``), embedders the
package root and the public modules below, and README's examples show only
those.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from docutils import nodes
from docutils.core import publish_doctree

ROOT = Path(__file__).resolve().parents[2]

PUBLIC_MODULES = {
    "translator",
    "translator.config",
    "translator.errors",
    "translator.plugin_api",
    "translator.server",
    "translator.stores",
    "translator.testing",
}


def _modules() -> set[str]:
    """Every module under translator/, by the name it is imported as."""
    found = set()
    for path in (ROOT / "translator").rglob("*.py"):
        parts = ["translator", *path.relative_to(ROOT / "translator").with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found.add(".".join(parts))
    return found


def _is_public(module: str) -> bool:
    return not any(part.startswith("_") for part in module.split(".")[1:])


README = publish_doctree((ROOT / "README.rst").read_text(), settings_overrides={"report_level": 5})


def _readme_imports() -> list[tuple[str, str | None]]:
    """``(module, name)`` for every import of translator in README's Python blocks."""
    imports: list[tuple[str, str | None]] = []
    for block in README.findall(nodes.literal_block):
        try:
            tree = ast.parse(block.astext())
        except SyntaxError:
            continue  # a shell session, a TOML file
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imports += [(a.name, None) for a in node.names if a.name.startswith("translator")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("translator"):
                imports += [(node.module or "", a.name) for a in node.names]
    return imports


def test_the_public_modules_are_exactly_the_documented_ones() -> None:
    modules = _modules()
    assert {"translator._core", "translator.server._app", "translator.stores._files"} <= modules
    assert {m for m in modules if _is_public(m)} == PUBLIC_MODULES


def test_every_public_module_says_what_it_exports_and_each_name_resolves() -> None:
    for name in sorted(PUBLIC_MODULES):
        module = importlib.import_module(name)
        for member in module.__all__:
            assert hasattr(module, member), f"{name}.{member}"


def test_readme_examples_import_only_public_names() -> None:
    imports = _readme_imports()
    assert {module for module, _ in imports} >= {
        "translator",
        "translator.config",
        "translator.errors",
        "translator.plugin_api",
        "translator.server",
        "translator.testing",
    }, "README's examples are found"
    for module, name in imports:
        assert module in PUBLIC_MODULES, f"README imports the private module {module}"
        if name is not None:
            assert not name.startswith("_"), f"README imports {module}.{name}"
            assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


def test_readme_names_no_private_module() -> None:
    named = {
        literal.astext()
        for literal in README.findall(nodes.literal)
        if literal.astext().startswith("translator.")
    }
    assert "translator.stores.open_stores" in named, "README's module names are found"
    assert not sorted(n for n in named if not _is_public(n.partition("(")[0]))
