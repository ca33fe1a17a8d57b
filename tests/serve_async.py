"""``translator serve`` in a process of its own, for tests of what only a process shows
(signals, several processes, its stderr)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

__all__ = ["ServeProcess", "serve_process"]


class ServeProcess:
    def __init__(self, process: asyncio.subprocess.Process, root: str) -> None:
        self.process = process
        self.root = root
        """``http://127.0.0.1:PORT``."""
        self.stderr = ""
        """What the process wrote to stderr, once it has exited."""
        self.stdout = ""
        """What it wrote to stdout after its banner, once it has exited."""

    async def stop(self) -> int:
        """SIGTERM, then wait (30 seconds at most) for the exit; the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 30)


@asynccontextmanager
async def serve_process(config: Path, env: Mapping[str, str]) -> AsyncIterator[ServeProcess]:
    """``translator serve --config config --port 0`` until the block ends (then SIGTERM)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "translator", "serve", "--config", str(config), "--port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    errors = asyncio.ensure_future(process.stderr.read())
    try:
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line, "the server exited before announcing its URL"
            if line.startswith("OpenAI base URL: "):
                break
        served = ServeProcess(process, line.split()[-1].removesuffix("/v1/openai"))
        try:
            yield served
        finally:
            await served.stop()
            served.stderr = (await errors).decode()
            served.stdout = (await process.stdout.read()).decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        errors.cancel()
