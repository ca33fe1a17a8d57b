"""The plugin manager: built-in backends and installed ``translator`` entry points.

Nothing is loaded at import time; :func:`get_plugin_manager` does the loading.
The built-ins in ``plugins/`` are registered exactly like a third party's
package, through the same hooks.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import msgspec
import pluggy

from . import hookspecs
from .backend import BackendFactory

__all__ = [
    "DEFAULT_PLUGINS",
    "DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "backend_factories",
    "backend_infos",
    "get_plugin_manager",
]

ENTRY_POINT_GROUP = "translator"
DISTRIBUTION = "openai-translator"
"""The distribution the built-in plugins ship in."""

DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("echo", "plugins.echo"),
    ("openai-compatible", "plugins.openai_compat"),
    ("vlm-agent", "plugins.vlm_agent"),
    ("ollama", "plugins.ollama"),
)


def get_plugin_manager(
    *, builtins: bool = True, entry_points: bool = True, plugins: Iterable[object] = ()
) -> pluggy.PluginManager:
    """A plugin manager with the built-ins, installed plugins and ``plugins`` registered.

    Installed plugins are packages exposing the ``translator`` entry-point
    group; one whose name is already registered (a built-in) is skipped.
    A hook implementation that matches no hook specification is an error.
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    if builtins:
        for name, module in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(module), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm


def backend_factories(pm: pluggy.PluginManager) -> dict[str, BackendFactory]:
    """Every registered backend factory, by plugin name; a duplicate name is an error."""
    return {factory.plugin_name: factory for _, factory in _registrations(pm)}


class BackendInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A backend plugin and where it came from.

    ``plugin`` is the name the plugin is registered under (its entry point's
    name); ``distribution`` and ``version`` name the installed package that
    provided it, or are None for a plugin registered in code.
    """

    name: str
    description: str
    plugin: str
    distribution: str | None
    version: str | None = None
    builtin: bool = False


def backend_infos(pm: pluggy.PluginManager) -> list[BackendInfo]:
    """Each backend with the plugin and the distribution that provided it, by name."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    builtin_names = {name for name, _ in DEFAULT_PLUGINS}
    infos: list[BackendInfo] = []
    for impl, factory in _registrations(pm):
        plugin = impl.plugin
        dist = dists.get(id(plugin))
        builtin = dist is None and impl.plugin_name in builtin_names
        if dist is not None:
            distribution: str | None = dist.project_name
            version: str | None = dist.version
        elif builtin:
            distribution, version = DISTRIBUTION, _version()
        else:
            distribution = version = None
        infos.append(
            BackendInfo(
                name=factory.plugin_name,
                description=factory.description,
                plugin=impl.plugin_name,
                distribution=distribution,
                version=version,
                builtin=builtin,
            )
        )
    return sorted(infos, key=lambda i: i.name)


def _registrations(pm: pluggy.PluginManager) -> list[tuple[pluggy.HookImpl, BackendFactory]]:
    """Every factory registered through ``register_backends``, with the hook that did it."""
    found: list[tuple[pluggy.HookImpl, BackendFactory]] = []
    names: dict[str, str] = {}
    # Called plugin by plugin (pluggy's own order) to know who registered what.
    for impl in reversed(pm.hook.register_backends.get_hookimpls()):

        def register(factory: BackendFactory, impl: pluggy.HookImpl = impl) -> None:
            other = names.get(factory.plugin_name)
            if other is not None:
                raise ValueError(
                    f"two plugins register a backend named {factory.plugin_name!r}: "
                    f"{other} and {impl.plugin_name}"
                )
            names[factory.plugin_name] = impl.plugin_name
            found.append((impl, factory))

        impl.function(register=register)
    return found


def _version() -> str | None:
    from . import __version__

    return __version__
