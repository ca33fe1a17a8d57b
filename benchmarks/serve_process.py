"""``translator serve`` in a child process, as users run it (benchmarks and tests).

:func:`start_serve` runs the command on port 0, reads the banner and returns
the process with its OpenAI base URL; :func:`stop` ends it with a signal and
waits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["Served", "start_serve", "stop"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Served:
    process: subprocess.Popen[str]
    base: str
    """The OpenAI base URL, ``http://127.0.0.1:PORT/v1/openai``."""
    banner: str


def start_serve(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stderr: IO[str] | None = None
) -> Served:
    """Start ``translator serve --port 0 ARGS`` and wait for its banner
    (:class:`RuntimeError` if it exits first); its log goes to ``stderr``, else nowhere."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "translator", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if stderr is None else stderr,
        text=True,
        env=environ,
        cwd=cwd,
    )
    assert process.stdout is not None
    banner = ""
    while "python -c" not in banner:  # the banner's last line
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=30)
            raise RuntimeError(f"translator serve exited early ({process.returncode}): {banner}")
        banner += line
    base = banner.split("OpenAI base URL: ", 1)[1].split()[0]
    return Served(process, base, banner)


def stop(served: Served, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal the server and wait for it; its exit status."""
    if served.process.poll() is None:
        served.process.send_signal(sig)
    try:
        return served.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()
        raise
