"""Dependencies point one way: each module imports only its own layer and those below.

Every ``import`` counts, at any depth (inside a function, under
``TYPE_CHECKING``): an import deferred to break a cycle is still a cycle. The
layers, lowest first, are listed in :data:`LAYERS`; a module is in the layer
of its longest listed prefix, and a module no layer names is at the top (it
may import anything, and nothing below may import it).

The registry sits below the core: it needs only the backend seam, and the
core builds its backends through it (``Translator.from_settings``, the default
backend of ``Translator()``), so the core never names a plugin.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "model",
        (
            "translator._lazy",
            "translator._version",
            "translator.errors",
            "translator._json_schema",
            "translator._model",
            "translator._telemetry",
            "translator._tokens",
        ),
    ),
    ("openai codec", ("translator._openai", "translator._streaming", "translator._forced_tools")),
    ("compat", ("translator._compat",)),
    (
        "backend seam",
        (
            "translator._backend",
            "translator._hookspecs",
            "translator._http",
            "translator._fetch",
            "translator.testing",
        ),
    ),
    ("stores", ("translator.stores",)),
    ("plugin api", ("translator.plugin_api",)),
    ("registry", ("translator._plugins",)),
    ("core", ("translator._core",)),
    ("routing", ("translator._routing",)),
]
TOP = len(LAYERS)
"""Server, config, CLI, matrix rendering, the package's own facade."""


def _modules() -> dict[str, Path]:
    """Every module of the source tree, by the name it is imported as."""
    found: dict[str, Path] = {}
    for folder, package in (("translator", "translator"), ("plugins", "translator_plugins")):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The modules of the tree that module ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # ``from . import native`` imports the submodule, not the package.
            subs = {f"{module}.{a.name}" for a in node.names} & MODULES.keys()
            targets.update(subs or {module})
    found: set[str] = set()
    for target in targets:
        while target not in MODULES and "." in target:
            target = target.rpartition(".")[0]
        if target in MODULES and target != name:
            found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> int:
    best, level = "", TOP
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, i
    return level


def _layer_name(level: int) -> str:
    return LAYERS[level][0] if level < TOP else "server / cli"


def test_the_tree_is_found() -> None:
    assert {"translator._core", "translator._compat.matrix", "translator_plugins.echo"} <= set(
        MODULES
    )
    assert "translator._compat" in GRAPH["translator._core"]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("translator.")))
def test_each_module_imports_only_its_layer_and_below(name: str) -> None:
    own = _layer(name)
    upward = {
        target: _layer_name(_layer(target))
        for target in GRAPH[name]
        if target.startswith("translator.") and _layer(target) > own
    }
    assert not upward, f"{name} ({_layer_name(own)}) imports a layer above it: {upward}"


def test_nothing_in_the_library_imports_a_plugin() -> None:
    offenders = {
        name: sorted(t for t in targets if t.startswith("translator_plugins"))
        for name, targets in GRAPH.items()
        if name.startswith("translator.") or name == "translator"
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_nothing_below_the_top_imports_the_package_root() -> None:
    """``translator/__init__`` re-exports every layer: importing it from below is a cycle."""
    offenders = [
        name for name, targets in GRAPH.items() if "translator" in targets and _layer(name) < TOP
    ]
    assert not offenders


def test_built_in_plugins_import_only_the_plugin_api() -> None:
    outside = sorted(
        (name, target)
        for name, targets in GRAPH.items()
        if name.startswith("translator_plugins")
        for target in targets
        if target.startswith("translator") and not target.startswith("translator_plugins")
        if target != "translator.plugin_api"
    )
    assert not outside


def test_no_two_modules_import_each_other() -> None:
    pairs = sorted(
        (a, b) for a, targets in GRAPH.items() for b in targets if a < b and a in GRAPH[b]
    )
    # A package's __init__ re-exporting its own submodules is how packages work.
    pairs = [(a, b) for a, b in pairs if not b.startswith(a + ".")]
    assert not pairs


def test_the_built_ins_are_imported_by_their_installed_name() -> None:
    """``plugins/`` installs as ``translator_plugins``: importing ``plugins`` works only
    from a checkout, and would load a second copy of every class."""
    offenders = []
    for folder in ("tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom) and not node.level
                    else []
                )
                if any(n == "plugins" or n.startswith("plugins.") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders
