"""The pins CI installs stay in step with the ranges setup.cfg declares.

CI runs the suite twice: against the newest releases pip resolves, and against
``.ci/oldest.txt``, the oldest release of each of the library's dependencies
(install_requires, and the extras that are library features, such as
``redis``) that setup.cfg allows. The test tools are pinned in
``.ci/test-tools.txt``.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*(?P<low>[0-9][0-9.]*)$"
)
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<version>[0-9][0-9.]*)$")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def _lower_bounds(text: str) -> dict[str, str]:
    bounds = {}
    for line in _lines(text):
        match = _REQUIREMENT.match(line.split(";")[0].strip())
        assert match is not None, f"{line!r}: every dependency has a '>=' lower bound"
        bounds[_normal(match["name"])] = match["low"]
    return bounds


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in _lines(path.read_text()):
        match = _PIN.match(line)
        assert match is not None, f"{path.name}: {line!r} is not 'name==version'"
        pins[_normal(match["name"])] = match["version"]
    return pins


def _version(text: str) -> tuple[int, ...]:
    """``3.11`` and ``3.11.0`` alike: trailing zeros do not count."""
    parts = [int(part) for part in text.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


_NOT_LIBRARY = {"test", "bench", "clients"}
"""Extras that are tools for working on the project, not features of the library."""


def _library_bounds() -> dict[str, str]:
    """Lower bounds of install_requires and of the extras that are library features."""
    parser = _setup_cfg()
    bounds = _lower_bounds(parser["options"]["install_requires"])
    for extra, text in parser["options.extras_require"].items():
        if extra not in _NOT_LIBRARY:
            bounds |= _lower_bounds(text)
    return bounds


def test_oldest_pins_are_exactly_the_lower_bounds_of_the_library() -> None:
    pins = _pins(ROOT / ".ci" / "oldest.txt")
    assert {name: _version(v) for name, v in pins.items()} == {
        name: _version(v) for name, v in _library_bounds().items()
    }


def test_every_test_tool_is_pinned_inside_its_range() -> None:
    bounds = _lower_bounds(_setup_cfg()["options.extras_require"]["test"])
    pins = _pins(ROOT / ".ci" / "test-tools.txt")
    library = _library_bounds()
    for name, low in bounds.items():
        if name in library:  # a library extra the tests need: CI tries its oldest and newest
            continue
        assert name in pins, f"{name} (test extra) has no pin in .ci/test-tools.txt"
        assert _version(pins[name]) >= _version(low), f"{name}=={pins[name]} is below >={low}"
