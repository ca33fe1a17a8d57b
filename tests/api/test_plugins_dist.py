"""A real third-party plugin distribution, found through ``importlib.metadata``.

``tests/plugin_dist`` is a tiny package with a ``translator`` entry point in its
``pyproject.toml``. The test installs it the way an installer unpacks a wheel
(the package beside a ``.dist-info`` with ``METADATA`` and ``entry_points.txt``)
into a temporary directory on ``sys.path``, and drives requests through it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest

from translator._compat import Mode
from translator._core import Translator
from translator._openai import encode_response
from translator._plugins import backend_factories, backend_infos, get_plugin_manager
from translator.errors import UnsupportedFieldError

DIST = Path(__file__).resolve().parents[1] / "plugin_dist"


def install(source: Path, target: Path) -> str:
    """Install the package at ``source`` into ``target`` as an unpacked wheel; its name."""
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    package = name.replace("-", "_")
    shutil.copytree(source / package, target / package)
    info = target / f"{package}-{version}.dist-info"
    info.mkdir()
    requires = "".join(f"Requires-Dist: {r}\n" for r in project.get("dependencies", ()))
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Summary: {project['description']}\n{requires}"
    )
    points = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
        for group, entries in project["entry-points"].items()
    )
    (info / "entry_points.txt").write_text(points)
    (info / "INSTALLER").write_text("tests\n")
    (info / "RECORD").write_text("")
    return name


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The plugin installed in ``tmp_path``; the only distribution the loader can see."""
    name = install(DIST, tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    real = importlib.metadata.distributions

    def only_ours(**kwargs: object) -> object:
        return real(path=[str(tmp_path)])

    # Search tmp_path only: installed packages must not leak into the test.
    monkeypatch.setattr(importlib.metadata, "distributions", only_ours)
    yield name
    sys.modules.pop("translator_shout", None)


@pytest.fixture
def pm(installed: str) -> pluggy.PluginManager:
    return get_plugin_manager(builtins=False)


def test_importlib_metadata_sees_the_entry_point(installed: str) -> None:
    dist = importlib.metadata.distribution(installed)
    [point] = [ep for ep in dist.entry_points if ep.group == "translator"]
    assert (point.name, point.value) == ("shout", "translator_shout")


def test_the_entry_point_is_loaded_and_listed(pm: pluggy.PluginManager) -> None:
    assert set(backend_factories(pm)) == {"shout"}
    [info] = backend_infos(pm)
    assert (info.name, info.plugin, info.distribution, info.version, info.builtin) == (
        "shout",
        "shout",
        "translator-shout",
        "0.1.0",
        False,
    )
    assert info.description == "Answers the last user message in capitals."


def test_nothing_is_loaded_without_entry_points(installed: str) -> None:
    pm = get_plugin_manager(builtins=False, entry_points=False)
    assert backend_factories(pm) == {}
    assert "translator_shout" not in sys.modules


async def test_a_request_end_to_end(pm: pluggy.PluginManager) -> None:
    from translator._backend import BackendSettings

    t = Translator.from_settings({"loud": BackendSettings(plugin="shout")}, plugin_manager=pm)
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hello there"}]}'
    done = await t.complete(body, "loud")
    assert done.response.choices[0].message.content == "HELLO THERE"
    # The plugin's adjust_response hook acts on the backend named "shout" only.
    assert done.response.system_fingerprint is None
    assert b'"content":"HELLO THERE"' in encode_response(done.response)

    stream = await t.stream(body, "loud")
    chunks = [c async for c in stream]
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == "HELLO THERE "
    assert chunks[-1].choices[0].finish_reason == "stop"

    with pytest.raises(UnsupportedFieldError) as caught:
        await t.complete(body[:-1] + b', "n": 2}', "loud")
    assert caught.value.param == "n"
    lenient = await t.complete(body[:-1] + b', "n": 2}', "loud", mode=Mode.LENIENT)
    assert lenient.report.dropped == ["n"]
    await t.aclose()


async def test_the_adjust_response_hook_of_the_plugin(pm: pluggy.PluginManager) -> None:
    from translator._backend import BackendSettings

    t = Translator.from_settings({"shout": BackendSettings(plugin="shout")}, plugin_manager=pm)
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    done = await t.complete(body, "shout")
    assert done.response.system_fingerprint == "shout-v1"


def _block(text: str, language: str) -> str:
    """The first ``code-block`` of ``language`` in reStructuredText ``text``, dedented."""
    block = text.split(f".. code-block:: {language}\n\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines).strip()


def test_readme_example_is_this_plugin() -> None:
    readme = (DIST.parent.parent / "README.rst").read_text()
    section = readme.split("\nWrite your own backend\n", 1)[1]
    code = (DIST / "translator_shout" / "__init__.py").read_text().strip()
    assert _block(section, "python") == code
    assert _block(section, "toml") == (DIST / "pyproject.toml").read_text().strip()
