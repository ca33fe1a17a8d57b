"""The plugin manager: built-ins, hooks, registration, and where backends come from."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pluggy
import pytest

import translator
from translator import _hookspecs as hookspecs
from translator._backend import BackendFactory, BackendSettings
from translator._core import Translator
from translator._model import ChatRequest, ChatResponse, TextPart, UserMessage
from translator._plugins import (
    DEFAULT_PLUGINS,
    DISTRIBUTION,
    backend_factories,
    backend_infos,
    get_plugin_manager,
)
from translator.testing import MockBackend, MockFactory

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name
    for name, value in vars(hookspecs).items()
    if callable(value) and hasattr(value, "translator_spec")
)


class Tagger:
    """A test plugin using the per-request hooks."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @translator.hookimpl
    def adjust_request(self, request: ChatRequest, backend: str) -> None:
        self.seen.append(f"request:{backend}")
        request.messages.append(UserMessage(content=[TextPart(text="(tagged)")]))

    @translator.hookimpl
    def adjust_response(self, response: ChatResponse, request: ChatRequest, backend: str) -> None:
        self.seen.append(f"response:{backend}")
        response.system_fingerprint = "tagged"


@pytest.fixture
def pm() -> Iterator[pluggy.PluginManager]:
    """A plugin manager with nothing installed: only what a test registers."""
    manager = get_plugin_manager(builtins=False, entry_points=False)
    yield manager
    for plugin in list(manager.get_plugins()):
        manager.unregister(plugin)


@pytest.fixture
def tagger(pm: pluggy.PluginManager) -> Iterator[Tagger]:
    plugin = Tagger()
    pm.register(plugin, name="tagger")
    yield plugin
    pm.unregister(plugin)
    assert pm.get_plugin("tagger") is None


def test_hookspecs_are_the_three_hooks_each_documented() -> None:
    assert HOOKS == ["adjust_request", "adjust_response", "register_backends"]
    for name in HOOKS:
        assert inspect.getdoc(getattr(hookspecs, name)), name


def test_readme_documents_every_hook() -> None:
    readme = (ROOT / "README.rst").read_text()
    for name in HOOKS:
        assert name in readme, name


def test_import_loads_no_plugin() -> None:
    code = (
        "import sys, translator; "
        "loaded = [m for m in sys.modules "
        "if m.startswith('translator_plugins') or m == 'translator._plugins']; "
        "print(loaded)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_builtins_register_through_the_same_hook() -> None:
    pm = get_plugin_manager(entry_points=False)
    factories = backend_factories(pm)
    assert {"echo", "openai-compatible"} <= set(factories)
    registered = {pm.get_name(p) for p in pm.get_plugins()}
    assert {name for name, _ in DEFAULT_PLUGINS} <= registered


def test_backend_infos_name_plugin_and_distribution(pm: pluggy.PluginManager) -> None:
    builtin = get_plugin_manager(entry_points=False)
    infos = {i.name: i for i in backend_infos(builtin)}
    echo = infos["echo"]
    assert (echo.plugin, echo.distribution, echo.builtin) == ("echo", DISTRIBUTION, True)
    assert echo.version == translator.__version__
    assert infos["openai-compatible"].plugin == "openai-compatible"
    assert echo.description

    pm.register(MockFactory(), name="my-mocks")
    [mock] = backend_infos(pm)
    assert (mock.name, mock.plugin, mock.distribution, mock.builtin) == (
        "mock",
        "my-mocks",
        None,
        False,
    )


def test_two_plugins_with_one_backend_name_is_an_error(pm: pluggy.PluginManager) -> None:
    pm.register(MockFactory(), name="first")
    pm.register(MockFactory(), name="second")
    with pytest.raises(ValueError, match=r"'mock'.*(first.*second|second.*first)"):
        backend_factories(pm)


def test_a_misspelt_hook_is_refused() -> None:
    class Typo:
        @translator.hookimpl
        def register_backend(self, register: Callable[[BackendFactory], None]) -> None:
            """Not a hook: the spec is ``register_backends``."""

    with pytest.raises(pluggy.PluginValidationError, match="register_backend"):
        get_plugin_manager(builtins=False, entry_points=False, plugins=[Typo()])


def test_plugins_argument_registers_extra_plugins() -> None:
    factory = MockFactory()
    pm = get_plugin_manager(builtins=False, entry_points=False, plugins=[factory])
    assert backend_factories(pm) == {"mock": factory}


async def test_hooks_adjust_request_and_response(pm: pluggy.PluginManager, tagger: Tagger) -> None:
    mock = MockBackend()
    t = Translator({"m": mock}, plugin_manager=pm)
    body = b'{"model": "x", "messages": [{"role": "user", "content": "hi"}]}'
    done = await t.complete(body, "m")
    assert tagger.seen == ["request:m", "response:m"]
    assert done.response.system_fingerprint == "tagged"
    last = mock.last_request.messages[-1]
    assert isinstance(last, UserMessage)
    assert last.content == [TextPart(text="(tagged)")]


async def test_adjust_request_runs_before_the_matrix(
    pm: pluggy.PluginManager, tagger: Tagger
) -> None:
    """A part a plugin adds is judged by the matrix like the client's own."""
    from translator._compat import rejected
    from translator.errors import UnsupportedFieldError

    mock = MockBackend(matrix=[rejected("content.text", "test")])
    t = Translator({"m": mock}, plugin_manager=pm)
    body = b'{"model": "x", "messages": [{"role": "user", "content": "hi"}]}'
    with pytest.raises(UnsupportedFieldError) as caught:
        await t.complete(body, "m")
    assert caught.value.param == "messages[1].content[0]"
    assert mock.calls == []


async def test_from_settings_builds_backends_through_plugins(pm: pluggy.PluginManager) -> None:
    factory = MockFactory()
    pm.register(factory)
    settings = {"a": BackendSettings(plugin="mock", options={"text": "from a"})}
    t = Translator.from_settings(settings, plugin_manager=pm)
    done = await t.complete(b'{"model": "x", "messages": [{"role": "user", "content": "q"}]}', "a")
    assert done.response.choices[0].message.content == "from a"
    assert factory.built["a"].calls[0].kind == "complete"
    with pytest.raises(ValueError, match="no plugin named 'nope'"):
        Translator.from_settings({"b": BackendSettings(plugin="nope")}, plugin_manager=pm)
    await t.aclose()
    assert factory.built["a"].closed


def test_tests_see_no_installed_plugin(pm: pluggy.PluginManager) -> None:
    assert pm.get_plugins() == set()
    assert backend_factories(pm) == {}
