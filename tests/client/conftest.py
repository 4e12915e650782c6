"""Fixtures for the client's tests: the real API on a free loopback port (the counting layer of
``counting_server.py`` in front of it), and the ``mosaic`` command as a user installs it.

``dev.py test`` installs ``client/`` into .venv with pip (not editable), so ``mosaic`` here is the
console script a user gets; the tests run it as a subprocess with its own config folder. The API
runs on the database the suite runs on: SQLite in a temporary folder, or (TEST_DATABASE_URL set)
a fresh PostgreSQL database created beside that one and dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from src.database import is_sqlite
from tests.conftest import require
from tests.databases import create_database, drop_database
from tests.sampleFileUpload.servers import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
MOSAIC = Path(sys.executable).parent / ("mosaic.exe" if os.name == "nt" else "mosaic")
SECRET = "client-tests-secret-key-0123456789-abcdefghij"
PASSWORD = "a-long-enough-password-42"
STARTUP_TIMEOUT = 60.0
# What the client's subprocesses inherit; the rest is set per run.
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    port: int

    def log(self) -> str:
        return self.log_path.read_bytes()[-6000:].decode(errors="replace")

    def requests(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = httpx.get(f"{self.url}/__test/requests").json()
        return records

    def hold(self, after: int) -> None:
        httpx.post(f"{self.url}/__test/hold", params={"after": after}).raise_for_status()

    def wait_held(self) -> None:
        httpx.get(f"{self.url}/__test/held", timeout=120.0).raise_for_status()

    def release(self) -> None:
        httpx.post(f"{self.url}/__test/release", timeout=120.0).raise_for_status()


def start_server(directory: Path, env: dict[str, str], port: int | None = None) -> Server:
    port = port or free_port()
    log_path = directory / f"api-{port}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.client.counting_server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path, env, port)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited at start-up:\n{server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/readyz", timeout=2.0).status_code == 200:
                return server
        time.sleep(0.1)  # start-up poll, not synchronisation between test steps
    stop_server(server)
    raise RuntimeError(f"the API did not answer in {STARTUP_TIMEOUT}s:\n{server.log()}")


def restart_server(server: Server) -> None:
    """Kill the API (-9, as a crash) and start it again on the same port, data and database."""
    server.process.kill()
    server.process.wait()
    restarted = start_server(server.log_path.parent, server.env, port=server.port)
    server.process = restarted.process


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextlib.contextmanager
def api_server(directory: Path) -> Iterator[Server]:
    """An API with its own database and DATA_DIR, stopped (and its database dropped) after."""
    base = os.environ.get("TEST_DATABASE_URL")
    database_name = None
    if base and not is_sqlite(base):
        database_name, database_url = asyncio.run(create_database(base, "mosaic_client"))
    else:
        database_url = f"sqlite+aiosqlite:///{directory / 'mosaic.db'}"
    env = {
        **{name: os.environ[name] for name in PASSED_THROUGH if name in os.environ},
        "HOME": str(directory),
        "PYTHONUNBUFFERED": "1",
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "DATA_DIR": str(directory / "data"),
        "SECRET_KEY": SECRET,
        "LOG_LEVEL": "WARNING",
        "REVIEW_REQUIRED": "false",
        "LOGIN_RATE_LIMIT": "1000/minute",
        "LOGIN_IP_RATE_LIMIT": "1000/minute",
        "REGISTER_RATE_LIMIT": "1000/minute",
        # A lease left by a killed server runs out quickly, so a resumed upload is not kept
        # waiting (the client retries 423 on its own).
        "TUS_LEASE_SECONDS": "2",
        "FASTQ_WORKERS": "0",
    }
    server = start_server(directory, env)
    try:
        yield server
    finally:
        stop_server(server)
        if database_name is not None:
            assert base is not None
            asyncio.run(drop_database(base, database_name))


@pytest.fixture(scope="session")
def client_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One API for the client tests (each test registers its own user)."""
    with api_server(tmp_path_factory.mktemp("client-api")) as server:
        yield server


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """An API of the test's own, for a test that kills and restarts it."""
    directory = tmp_path / "own-api"
    directory.mkdir()
    with api_server(directory) as server:
        yield server


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class User:
    """A registered researcher and a ``mosaic`` with its own config folder."""

    def __init__(self, server: Server, home: Path) -> None:
        self.server = server
        self.home = home
        self.config_dir = home / "config"
        self.email = f"user-{uuid.uuid4().hex[:8]}@example.org"
        response = httpx.post(
            f"{server.url}/api/v1/auth/register",
            json={"email": self.email, "password": PASSWORD, "full_name": "Ada Lovelace"},
        )
        assert response.status_code == 201, response.text

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **{name: os.environ[name] for name in PASSED_THROUGH if name in os.environ},
            "HOME": str(self.home),
            "MOSAIC_URL": self.server.url,
            "MOSAIC_CONFIG_DIR": str(self.config_dir),
            "COLUMNS": "200",
            **extra,
        }

    def command(self, *args: str | Path) -> list[str]:
        return [str(MOSAIC), *(str(arg) for arg in args)]

    def run(
        self, *args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        done = subprocess.run(
            self.command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=env or self.env(),
            cwd=self.home,
            timeout=300,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def login(self) -> None:
        result = self.run("login", "--email", self.email, stdin=PASSWORD + "\n")
        assert result.code == 0, result.stderr

    def token(self) -> str:
        response = httpx.post(
            f"{self.server.url}/api/v1/auth/login",
            json={"email": self.email, "password": PASSWORD},
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=60.0,
        )


@pytest.fixture
def mosaic_installed() -> Path:
    require(MOSAIC.exists(), f"the client is not installed in {sys.prefix} (pip install ./client)")
    return MOSAIC


@pytest.fixture
def user(client_server: Server, tmp_path: Path, mosaic_installed: Path) -> User:
    home = tmp_path / "home"
    home.mkdir()
    return User(client_server, home)
