"""Real API processes for upload tests: uvicorn subprocesses on free loopback ports sharing one
database and one storage, which tests can kill (-9) and restart. Used by the tus process tests
and by bench/bench_uploads.py."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import httpx

from src.auth.config import AuthConfig
from src.auth.jwt import encode_access_token
from src.database import create_engine, create_sessionmaker, upgrade_database
from tests.factories import create_user
from tests.study.factories import create_study

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "test-secret-key-for-real-servers-0123456789"
STARTUP_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Seed:
    """A user with a draft study holding sample S1, in a freshly migrated database."""

    headers: dict[str, str]
    accession: str


async def seed_database(url: str) -> Seed:
    await anyio.to_thread.run_sync(upgrade_database, url)
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            user = await create_user(session)
            study = await create_study(session, owner=user, samples=1)
            await session.commit()
    finally:
        await engine.dispose()
    token = encode_access_token(user_id=user.id, secret=SECRET, config=AuthConfig())
    return Seed(headers={"Authorization": f"Bearer {token}"}, accession=study.accession)


class ApiServer:
    """``uvicorn --factory src.app:create_app`` configured by environment variables."""

    def __init__(self, database_url: str, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "DATA_DIR": str(data_dir),
            "SECRET_KEY": SECRET,
            "LOG_LEVEL": "WARNING",
            "TUS_LEASE_SECONDS": "2",
            **env,
        }
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="mosaic-api-", suffix=".log")  # noqa: SIM115

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> ApiServer:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "src.app:create_app",
                "--app-dir",
                str(ROOT),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            # Not the repository: a developer's .env there must not configure the server.
            cwd=self.data_dir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"API server exited at start-up:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"API server did not answer within {STARTUP_TIMEOUT}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine dies."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-5000:]

    def close(self) -> None:
        self.stop()
        self._log.close()
