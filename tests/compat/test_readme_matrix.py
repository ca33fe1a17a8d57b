"""README.rst's compatibility section is generated from the matrices and kept in step."""

from __future__ import annotations

import io
from pathlib import Path

import docutils.core
import pytest

from translator._compat import Matrix, ignored, supported
from translator._readme import BEGIN, COMMAND, END, main, replace_section, section, update

README = Path(__file__).resolve().parents[2] / "README.rst"
SMALL = [Matrix("small", [supported("model", "sent"), ignored("user", "no users here")])]


def between_markers(text: str) -> str:
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)]


def test_readme_matrix_section_matches_the_code() -> None:
    current = README.read_text(encoding="utf-8")
    expected = replace_section(current, section())
    assert current == expected, (
        "README.rst's compatibility section differs from the backends' matrices; "
        f"regenerate it with `{COMMAND}` from the repository root"
    )


def test_readme_section_sits_under_a_compatibility_heading() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.index("Compatibility\n=============\n") < text.index(BEGIN) < text.index(END)


def test_readme_section_is_valid_rst() -> None:
    stream = io.StringIO()
    settings = {"warning_stream": stream, "report_level": 1, "halt_level": 5}
    body = between_markers(README.read_text(encoding="utf-8"))
    docutils.core.publish_doctree(body, settings_overrides=settings)
    assert stream.getvalue() == ""


def test_replace_section_keeps_everything_outside_the_markers() -> None:
    text = f"Intro\n\n{BEGIN}\n\nold text\n\n{END}\n\nOutro\n"
    new = replace_section(text, section(SMALL))
    assert new.startswith(f"Intro\n\n{BEGIN}\n\n")
    assert new.endswith(f"\n\n{END}\n\nOutro\n")
    assert "old text" not in new
    assert "``user``" in between_markers(new)
    assert replace_section(new, section(SMALL)) == new


def test_replace_section_needs_the_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        replace_section("no markers here\n", "x")
    with pytest.raises(ValueError, match="markers"):
        replace_section(f"{END}\n{BEGIN}\n", "x")


def test_update_rewrites_once(tmp_path: Path) -> None:
    path = tmp_path / "README.rst"
    path.write_text(f"Title\n=====\n\n{BEGIN}\n\n{END}\n", encoding="utf-8")
    assert update(path, SMALL) is True
    assert "no users here" in path.read_text(encoding="utf-8")
    assert update(path, SMALL) is False


def test_command_checks_and_rewrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "README.rst"
    path.write_text(f"{BEGIN}\n\nstale\n\n{END}\n", encoding="utf-8")
    assert main(["--check", str(path)]) == 1
    assert COMMAND in capsys.readouterr().out
    assert main([str(path)]) == 0
    assert "stale" not in path.read_text(encoding="utf-8")
    assert main(["--check", str(path)]) == 0
