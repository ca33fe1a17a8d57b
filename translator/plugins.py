"""The plugin manager: built-in backends and installed ``translator`` entry points.

Nothing is loaded at import time; :func:`get_plugin_manager` does the loading.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable
from types import ModuleType

import msgspec
import pluggy

from . import hookspecs
from .backend import BackendFactory

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "backend_factories",
    "backend_infos",
    "get_plugin_manager",
]

ENTRY_POINT_GROUP = "translator"
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("echo", "plugins.echo"),
    ("openai-compatible", "plugins.openai_compat"),
    ("vlm-agent", "plugins.vlm_agent"),
    ("ollama", "plugins.ollama"),
)


def get_plugin_manager(
    *, builtins: bool = True, entry_points: bool = True, plugins: Iterable[object] = ()
) -> pluggy.PluginManager:
    """A plugin manager with the built-ins, installed plugins and ``plugins`` registered."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    if builtins:
        for name, module in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(module), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in plugins:
        pm.register(plugin)
    return pm


def backend_factories(pm: pluggy.PluginManager) -> dict[str, BackendFactory]:
    """Every registered backend factory, by plugin name; a duplicate name is an error."""
    found: dict[str, BackendFactory] = {}

    def register(factory: BackendFactory) -> None:
        if factory.plugin_name in found:
            raise ValueError(f"two plugins register a backend named {factory.plugin_name!r}")
        found[factory.plugin_name] = factory

    pm.hook.register_backends(register=register)
    return found


class BackendInfo(msgspec.Struct, frozen=True):
    """Where a backend came from: its plugin module and distribution."""

    name: str
    description: str
    plugin: str
    distribution: str | None


def backend_infos(pm: pluggy.PluginManager) -> list[BackendInfo]:
    """Each backend with the plugin and the distribution that provided it."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos: list[BackendInfo] = []
    for plugin in pm.get_plugins():
        found: list[BackendFactory] = []
        hook = getattr(plugin, "register_backends", None)
        if hook is None:
            continue
        hook(register=found.append)
        dist = dists.get(id(plugin))
        dist_name = dist.project_name if dist is not None else _own_distribution(plugin)
        plugin_name = pm.get_name(plugin) or repr(plugin)
        for factory in found:
            infos.append(
                BackendInfo(factory.plugin_name, factory.description, plugin_name, dist_name)
            )
    return sorted(infos, key=lambda i: i.name)


def _own_distribution(plugin: object) -> str | None:
    """The distribution a built-in plugin module ships in, if installed."""
    if not isinstance(plugin, ModuleType):
        return None
    top = plugin.__name__.split(".", 1)[0]
    names = importlib.metadata.packages_distributions().get(top)
    return names[0] if names else None
