"""``import translator`` is cheap: no backend, no aiohttp, no plugin loading, no I/O.

The import runs in a fresh interpreter that records, through an audit hook,
every file it opens and every socket it touches, and watches pluggy's plugin
manager for any use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import json, sys

opened, sockets = [], []

def audit(event, args):
    if event == "open":
        opened.append(str(args[0]))
    elif event.startswith("socket."):
        sockets.append(event)

sys.addaudithook(audit)

import pluggy

loaded = []
_init = pluggy.PluginManager.__init__
_entry_points = pluggy.PluginManager.load_setuptools_entrypoints

def init(self, *args, **kwargs):
    loaded.append("PluginManager()")
    _init(self, *args, **kwargs)

def entry_points(self, *args, **kwargs):
    loaded.append("load_setuptools_entrypoints")
    return _entry_points(self, *args, **kwargs)

pluggy.PluginManager.__init__ = init
pluggy.PluginManager.load_setuptools_entrypoints = entry_points
before = set(sys.modules)

import translator

after = set(sys.modules) - before
print(json.dumps({
    "modules": sorted(after),
    "opened": opened,
    "sockets": sockets,
    "loaded": loaded,
    "public": sorted(translator.__all__),
}))
"""

CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


def _probe() -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


def test_import_translator_loads_no_backend_and_no_aiohttp() -> None:
    found = _probe()
    modules = found["modules"]
    assert "translator" in modules, "the probe must really import the package"
    assert not [m for m in modules if m == "aiohttp" or m.startswith("aiohttp.")]
    assert not [m for m in modules if m == "plugins" or m.startswith("plugins.")]
    assert not [m for m in modules if m.startswith(("openai", "yarl", "multidict"))]
    assert not [m for m in modules if m in ("translator.server", "translator.http")]


def test_import_translator_does_not_load_plugins() -> None:
    assert _probe()["loaded"] == []


def test_import_translator_opens_no_socket_and_reads_no_data_file() -> None:
    found = _probe()
    assert found["sockets"] == []
    data_files = [p for p in found["opened"] if not p.endswith(CODE_SUFFIXES)]
    assert data_files == []
    assert any(
        p.endswith(("translator/__init__.py", "__init__.cpython-311.pyc")) for p in found["opened"]
    ), "the audit hook must see the import's own reads"


def test_the_public_api_is_importable_lazily() -> None:
    import translator

    for name in translator.__all__:
        assert getattr(translator, name) is not None, name
