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

import pytest

ROOT = Path(__file__).resolve().parents[2]

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
}))
"""

CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


@pytest.fixture(scope="module")
def probe() -> dict[str, list[str]]:
    """What a fresh interpreter did while importing translator."""
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


def test_import_translator_loads_no_backend_and_no_aiohttp(probe: dict[str, list[str]]) -> None:
    modules = probe["modules"]
    assert "translator" in modules, "the probe must really import the package"
    assert not [m for m in modules if m == "aiohttp" or m.startswith("aiohttp.")]
    assert not [
        m for m in modules if m == "translator_plugins" or m.startswith("translator_plugins.")
    ]
    assert not [m for m in modules if m.startswith(("openai", "yarl", "multidict"))]
    assert not [m for m in modules if m in ("translator.server", "translator._http")]
    assert not [m for m in modules if m == "redis" or m.startswith("redis.")]


def test_import_translator_does_not_load_plugins(probe: dict[str, list[str]]) -> None:
    assert probe["loaded"] == []


def test_import_translator_opens_no_socket_and_reads_no_data_file(
    probe: dict[str, list[str]],
) -> None:
    assert probe["sockets"] == []
    data_files = [p for p in probe["opened"] if not p.endswith(CODE_SUFFIXES)]
    assert data_files == []
    assert any("/translator/" in p for p in probe["opened"]), "the hook must see the import"
