"""Every README code block that says it runs offline does, as pasted.

A block claims it with ``:class: runs-offline``. Each runs in a fresh Python
process, in an empty folder, with no proxy and a short timeout, and must exit 0
with no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from docutils import nodes
from docutils.core import publish_doctree

ROOT = Path(__file__).resolve().parents[2]
MARK = "runs-offline"


def _offline_blocks() -> list[str]:
    tree = publish_doctree(
        (ROOT / "README.rst").read_text(), settings_overrides={"report_level": 5}
    )
    return [
        block.astext()
        for block in tree.findall(nodes.literal_block)
        if MARK in block.get("classes", [])
    ]


BLOCKS = _offline_blocks()


def test_the_readme_has_an_offline_library_example() -> None:
    assert any("Translator.from_settings" in block for block in BLOCKS)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_an_offline_readme_block_runs_as_pasted(code: str, tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.startswith("VLMRUN")
    }
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.strip()
