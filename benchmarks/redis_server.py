"""A real ``redis-server`` on loopback, for the Redis store benchmarks and tests.

:class:`RedisServer` starts the binary in a temporary directory on a free
loopback port, with persistence off, and can be stopped and started again on
the same port (the fault tests do). A missing binary is a :class:`RuntimeError`
saying what to install: the tests fail with it, never skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["RedisServer"]

_INSTALL = (
    "redis-server is not installed; the Redis store tests need it: "
    "apt-get install redis-server (Debian/Ubuntu)"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process; :attr:`url` is where it listens."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(_INSTALL)
        self.binary = binary
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, attempts: int = 3) -> None:
        """Start the server and wait until it answers PING."""
        for attempt in range(attempts):
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return
            self.stop()
            if attempt + 1 < attempts:
                self.port = _free_port()  # the port was taken meanwhile: another one
        raise RuntimeError(f"redis-server did not start on 127.0.0.1 (last port {self.port})")

    def stop(self) -> None:
        """Stop the server at once (SIGKILL: no goodbye to its clients)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False
