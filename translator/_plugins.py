"""The plugin registry: built-in backends, installed ``translator`` entry points,
and :func:`build_backends`, the one way settings become backends.

Nothing is loaded at import time; :func:`get_plugin_manager` does the loading.
The built-ins (``plugins/`` in the source tree, installed as
``translator_plugins``) are registered exactly like a third party's package,
through the same hooks. The registry needs only the backend seam, so the core
builds its backends through it (``Translator.from_settings``, the default
backend of ``Translator()``) and no layer below names a plugin.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

import msgspec
import pluggy

from . import _hookspecs as hookspecs
from ._backend import Backend, BackendContext, BackendFactory, BackendSettings
from ._version import __version__

__all__ = [
    "DEFAULT_PLUGINS",
    "DEFAULT_SETTINGS",
    "DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "backend_factories",
    "backend_infos",
    "build_backends",
    "get_plugin_manager",
]

ENTRY_POINT_GROUP = "translator"
DISTRIBUTION = "openai-translator"
"""The distribution the built-in plugins ship in."""

DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("echo", "translator_plugins.echo"),
    ("openai-compatible", "translator_plugins.openai_compat"),
    ("vlm-agent", "translator_plugins.vlm_agent"),
    ("ollama", "translator_plugins.ollama"),
)

DEFAULT_SETTINGS: Mapping[str, BackendSettings] = {"echo": BackendSettings(plugin="echo")}
"""The backends of a ``Translator()`` given none: the offline ``echo``."""


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


def build_backends(
    settings: Mapping[str, BackendSettings],
    plugin_manager: pluggy.PluginManager,
    context: BackendContext,
) -> dict[str, Backend]:
    """Each configured backend, built by the plugin its settings name.

    Raises :class:`ValueError` for a plugin nobody registered; a plugin that
    refuses its settings (``ValueError``, ``TypeError``, ``OSError``) has its
    error re-raised with the backend's name in front.
    """
    factories = backend_factories(plugin_manager)
    backends: dict[str, Backend] = {}
    for name, backend_settings in settings.items():
        factory = factories.get(backend_settings.plugin)
        if factory is None:
            known = ", ".join(sorted(factories))
            plugin = backend_settings.plugin
            raise ValueError(f"backend {name!r}: no plugin named {plugin!r} (known: {known})")
        try:
            backends[name] = factory.create(name, backend_settings, context)
        except (ValueError, TypeError, OSError) as exc:
            if name not in str(exc):
                exc.args = (f"backend {name!r}: {exc}",)
            raise
    return backends


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
            distribution, version = DISTRIBUTION, __version__
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
