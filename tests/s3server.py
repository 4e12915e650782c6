"""A moto S3 server in a subprocess on a free loopback port, for tests that need a real socket."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time

import httpx

STARTUP_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1; ``url`` is its endpoint while it runs."""

    def __init__(self) -> None:
        self.port = 0
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    def start(self, attempts: int = 3) -> MotoServer:
        """Start the server and wait until it answers; raise RuntimeError if it cannot."""
        last_error = "not started"
        for _ in range(attempts):
            self.port = _free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            # A file, not a pipe: moto logs every request and a full pipe would stall it.
            self._log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log")  # noqa: SIM115
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=self._log,
            )
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    self._log.seek(0)
                    last_error = self._log.read().decode(errors="replace")[-2000:]
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/moto-api/", timeout=1.0).status_code == 200:
                        return self
                time.sleep(0.1)
            else:
                last_error = f"no answer on {self.url} within {STARTUP_TIMEOUT}s"
            self.stop()
        raise RuntimeError(f"moto server did not start: {last_error}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log, self._log = self._log, None
        if log is not None:
            log.close()
