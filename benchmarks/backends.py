"""Finding the backends to measure: every plugin registered with the translator.

A plugin that fails to import or to build a backend offline is reported and
skipped, never fatal: the benchmark measures whatever is there.
"""

from __future__ import annotations

import importlib

import msgspec

from translator._backend import Backend, BackendContext, BackendSettings
from translator._plugins import (
    DEFAULT_PLUGINS,
    ENTRY_POINT_GROUP,
    backend_factories,
    get_plugin_manager,
)

__all__ = ["Discovered", "discover"]

_OFFLINE_URL = "http://127.0.0.1:9"
"""A loopback address nothing listens on: the pure halves never use it."""


class Discovered(msgspec.Struct):
    """The backends that could be built, and why the others could not."""

    backends: dict[str, Backend]
    skipped: dict[str, str]


def discover(context: BackendContext | None = None) -> Discovered:
    """Build one backend per registered plugin, configured for loopback only."""
    pm = get_plugin_manager(builtins=False, entry_points=False)
    skipped: dict[str, str] = {}
    for name, module in DEFAULT_PLUGINS:
        try:
            pm.register(importlib.import_module(module), name=name)
        except Exception as exc:  # a plugin being written may not import yet
            skipped[name] = f"does not import: {type(exc).__name__}: {exc}"
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)  # skips names registered above
    except Exception as exc:  # a broken third-party plugin must not stop the run
        skipped["entry points"] = f"{type(exc).__name__}: {exc}"
    context = context or BackendContext()
    backends: dict[str, Backend] = {}
    for plugin, factory in sorted(backend_factories(pm).items()):
        settings = BackendSettings(plugin=plugin, base_url=_OFFLINE_URL, api_key="benchmark")
        try:
            backends[plugin] = factory.create(plugin, settings, context)
        except Exception as exc:  # reported in the output, not hidden
            skipped[plugin] = f"cannot be built offline: {type(exc).__name__}: {exc}"
    for name, _ in DEFAULT_PLUGINS:
        if name not in backends and name not in skipped:
            skipped[name] = "registers no backend yet"
    return Discovered(backends, skipped)
