"""End-to-end fixtures: the real servers on loopback, with nginx in front, as an operator runs them.

A *stack* is: a fresh database, the API started as ``python main.py serve --workers 2`` (which runs
the migrations itself), nginx started from ``nginx/render.py``'s rendering of the project's own
nginx files, and, for the S3 backend, a moto S3 server. ``stack`` is parametrised over the storage
backends ``local`` (nginx serves downloads with X-Accel-Redirect) and ``s3`` (the API streams
downloads from the object store); DOWNLOAD_ACCEL=nginx in both, as docker compose sets it. Stacks
are session-scoped: each is started the first time a test asks for it and stopped at the end of
the session. Tests talk to ``stack.url`` (nginx); ``stack.api_url`` reaches the API directly, to
show what nginx hides.

Database: the API runs on the database the suite runs on. In the PostgreSQL pass (TEST_DATABASE_URL
set) each stack gets its own database, ``mosaic_e2e_<random>``, created next to TEST_DATABASE_URL's
and dropped at the end. In the SQLite pass (TEST_DATABASE_URL unset) the e2e suite runs as well,
on a SQLite file in the stack's DATA_DIR shared by the two workers: that is the set-up of
``python main.py`` with no settings, so it is exercised through real processes too. Writes are
serialised by SQLite, which the sequential journey does not mind. The cost is one more e2e run per
test command: about a minute for the whole of tests/e2e on a 2-core machine, in either pass
(mostly the 1 GiB test, ~25 s, and starting the stacks, ~12 s each).

nginx and (for the docs test) chromium come from Debian's packages, which ``.ci/run`` installs;
``tests.conftest.require`` skips when they are missing locally and fails under CI=true.
Logs of every process are kept in the stack's directory and printed when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from nginx import render
from src.database import is_sqlite
from tests.conftest import require
from tests.databases import create_database, drop_database
from tests.s3server import MotoServer

ROOT = Path(__file__).resolve().parent.parent.parent
OUTPUT_DIR = ROOT / "test-output" / "e2e"
BACKENDS = ("local", "s3")
STARTUP_TIMEOUT = 90.0
SECRET_KEY = "e2e-secret-key-" + "x" * 40
ADMIN_EMAIL = "admin@e2e.example.org"
ADMIN_PASSWORD = "admin-password-e2e-123"
S3_ACCESS_KEY_ID = "e2e-access-key"
S3_SECRET_ACCESS_KEY = "e2e-secret-access-key"
# The origin of the browser app in tests/e2e/test_browser_upload.py (a name Chromium maps to the
# page's server): the API allows it, as CORS_ORIGINS does for a real frontend.
BROWSER_APP_ORIGIN = "http://mosaic-app.test"
# Environment passed through to the servers; everything else is set explicitly, so neither the
# caller's environment nor a developer's .env (the servers run in a scratch directory) leaks in.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()),
        None,
    )


class ManagedProcess:
    """A server started in a session of its own, its output in a log file."""

    def __init__(self, name: str, command: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_until(self, url: str, timeout: float = STARTUP_TIMEOUT) -> None:
        """Poll ``url`` until it answers 200; fail with the log if the process dies or stalls."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
            try:
                response = httpx.get(url, timeout=2.0)
            except httpx.HTTPError as exc:
                last = repr(exc)
            else:
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            time.sleep(0.2)
        raise RuntimeError(
            f"{self.name}: {url} not ready in {timeout}s ({last}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Ask the process to stop (SIGTERM); after 20 s, or if a worker outlives it, kill what
        is left of the session it was started in (its own workers, nothing else)."""
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def log_tail(self, size: int = 6000) -> str:
        self._log.flush()
        return self.log_path.read_bytes()[-size:].decode(errors="replace")

    def processes(self) -> list[psutil.Process]:
        """The process and its descendants (uvicorn's or nginx's workers)."""
        parent = psutil.Process(self.process.pid)
        return [parent, *parent.children(recursive=True)]


@dataclass
class Stack:
    """One running deployment: nginx at ``url`` in front of the API at ``api_url``."""

    backend: str
    directory: Path
    data_dir: Path
    url: str
    api_url: str
    api: ManagedProcess
    nginx: ManagedProcess
    nginx_prefix: Path
    admin_email: str = ADMIN_EMAIL
    admin_password: str = ADMIN_PASSWORD
    moto: MotoServer | None = None
    api_worker_pids: set[int] = field(default_factory=set)
    _stoppers: list[Callable[[], object]] = field(default_factory=list)

    def client(self, *, timeout: float = 120.0) -> httpx.Client:
        """A client talking to nginx."""
        return httpx.Client(base_url=self.url, timeout=timeout)

    def api_workers(self) -> list[psutil.Process]:
        """uvicorn's worker processes (the children serving requests, not the supervisor, nor
        the FASTQ validator processes each of them starts)."""
        parent = psutil.Process(self.api.pid)
        return [
            child
            for child in parent.children()
            if "resource_tracker" not in " ".join(child.cmdline())
        ]

    def assert_running(self) -> None:
        """The API and nginx still run with the workers they started with (none died)."""
        for server in (self.api, self.nginx):
            assert server.process.poll() is None, f"{server.name} exited:\n{self.diagnostics()}"
        workers = {worker.pid for worker in self.api_workers()}
        assert workers == self.api_worker_pids, (
            f"API workers changed {self.api_worker_pids} -> {workers}:\n{self.diagnostics()}"
        )

    def nginx_access_log(self) -> str:
        return (self.nginx_prefix / "logs" / "access.log").read_text(errors="replace")

    def diagnostics(self) -> str:
        """The tails of the logs, for an assertion message."""
        error_log = self.nginx_prefix / "logs" / "error.log"
        parts = [
            f"--- API log ({self.backend}) ---\n{self.api.log_tail()}",
            f"--- nginx error log ---\n{error_log.read_text(errors='replace')[-3000:]}"
            if error_log.exists()
            else "",
            f"--- nginx access log ---\n{self.nginx_access_log()[-3000:]}",
        ]
        return "\n".join(part for part in parts if part)


def _server_env(extra: dict[str, str]) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _database_for(directory: Path) -> tuple[str, str | None]:
    """(DATABASE_URL for the API, the PostgreSQL database to drop afterwards or None)."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base or is_sqlite(base):
        return f"sqlite+aiosqlite:///{directory / 'data' / 'mosaic.db'}", None
    name, url = asyncio.run(create_database(base, "mosaic_e2e"))
    return url, name


def start_stack(backend: str, directory: Path) -> Stack:
    """Start database, (moto,) API and nginx for ``backend``; stop what started if one fails."""
    nginx = nginx_binary()
    require(nginx is not None, "nginx is not installed (apt-get install nginx)")
    assert nginx is not None
    data_dir = directory / "data"
    objects_dir = data_dir / "objects"
    objects_dir.mkdir(parents=True)
    cleanups: list[Callable[[], object]] = []
    try:
        database_url, database_name = _database_for(directory)
        if database_name is not None:
            base = os.environ["TEST_DATABASE_URL"]
            cleanups.append(lambda: asyncio.run(drop_database(base, database_name)))
        env = {
            "ENVIRONMENT": "test",
            "DATABASE_URL": database_url,
            "DATA_DIR": str(data_dir),
            "SECRET_KEY": SECRET_KEY,
            "STORAGE_BACKEND": backend,
            "COOKIE_SECURE": "false",
            "FORWARDED_ALLOW_IPS": "127.0.0.1",
            "LOGIN_RATE_LIMIT": "1000/minute",
            "LOGIN_IP_RATE_LIMIT": "1000/minute",
            "REGISTER_RATE_LIMIT": "1000/minute",
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            # As docker compose sets it whatever the backend: with S3 there is no local file to
            # hand to nginx, so the API streams the object itself.
            "DOWNLOAD_ACCEL": "nginx",
            "CORS_ORIGINS": BROWSER_APP_ORIGIN,
        }
        moto = None
        if backend == "s3":
            moto = MotoServer().start()
            cleanups.append(moto.stop)
            env |= {
                "S3_ENDPOINT_URL": moto.url,
                "S3_BUCKET": f"mosaic-e2e-{uuid.uuid4().hex[:8]}",
                "S3_ACCESS_KEY_ID": S3_ACCESS_KEY_ID,
                "S3_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY,
            }
        _create_admin(directory, _server_env(env))
        api_port = free_port()
        api = ManagedProcess(
            "api",
            [
                sys.executable,
                str(ROOT / "main.py"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--workers",
                "2",
            ],
            cwd=directory,
            env=_server_env(env),
        )
        cleanups.append(api.stop)
        api_url = f"http://127.0.0.1:{api_port}"
        api.wait_until(f"{api_url}/readyz")
        _wait_for_workers(api, f"{api_url}/readyz", count=2)

        nginx_port = free_port()
        prefix = directory / "nginx"
        config = render.write_config(
            listen_port=nginx_port,
            upstreams=[f"127.0.0.1:{api_port}"],
            objects_dir=objects_dir,
            prefix_dir=prefix,
            cors_origins=env["CORS_ORIGINS"],
        )
        proxy = ManagedProcess(
            "nginx",
            [nginx, "-p", str(prefix), "-c", str(config)],
            cwd=directory,
            env=_server_env({}),
        )
        cleanups.append(proxy.stop)
        url = f"http://127.0.0.1:{nginx_port}"
        proxy.wait_until(f"{url}/readyz")
        stack = Stack(
            backend=backend,
            directory=directory,
            data_dir=data_dir,
            url=url,
            api_url=api_url,
            api=api,
            nginx=proxy,
            nginx_prefix=prefix,
            moto=moto,
            _stoppers=cleanups,
        )
        stack.api_worker_pids = {worker.pid for worker in stack.api_workers()}
        return stack
    except BaseException:
        _run_cleanups(cleanups)
        raise


def _create_admin(directory: Path, env: dict[str, str]) -> None:
    """The admin made with the operator's command (``migrate``, then ``create-admin``).

    Not FIRST_ADMIN_EMAIL/FIRST_ADMIN_PASSWORD: with two workers both create that account at
    start-up, and the loser's EmailTakenError (start_auth catches only IntegrityError) stops its
    start-up and uvicorn then stops the whole server, a few seconds after it began serving.
    """
    main = [sys.executable, str(ROOT / "main.py")]
    for command, stdin in (
        (["migrate"], None),
        (["create-admin", "--email", ADMIN_EMAIL], f"{ADMIN_PASSWORD}\n"),
    ):
        done = subprocess.run(
            [*main, *command],
            cwd=directory,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=STARTUP_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"main.py {command[0]} failed:\n{done.stdout}\n{done.stderr}")


def _wait_for_workers(stack_api: ManagedProcess, url: str, *, count: int) -> None:
    """/readyz answers as soon as one worker is up; wait until ``count`` workers run and answer.

    The workers' "startup complete" lines cannot be waited for: main.py configures logging in
    the supervising process only, so spawned workers log nothing. The processes are counted and
    the API is asked a few times instead.
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT
    parent = psutil.Process(stack_api.pid)
    while time.monotonic() < deadline:
        workers = [
            child
            for child in parent.children(recursive=True)
            if "resource_tracker" not in " ".join(child.cmdline())
        ]
        if len(workers) >= count:
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"the API did not start {count} workers:\n{stack_api.log_tail()}")
    for _ in range(10 * count):
        stack_api.wait_until(url)


def _run_cleanups(cleanups: list[Callable[[], object]]) -> None:
    for cleanup in reversed(cleanups):
        with contextlib.suppress(Exception):
            cleanup()


class Stacks:
    """Stacks started on demand, one per backend, all stopped at the end of the session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: dict[str, Stack] = {}
        self.failed: dict[str, BaseException] = {}

    def get(self, backend: str) -> Stack:
        """The running stack; a stack that failed to start is not tried again."""
        if backend in self.failed:
            raise self.failed[backend]
        if backend not in self.running:
            directory = self.root / f"{backend}-{secrets.token_hex(3)}"
            directory.mkdir(parents=True)
            try:
                self.running[backend] = start_stack(backend, directory)
            except BaseException as exc:
                self.failed[backend] = exc
                raise
        return self.running[backend]

    def stop(self) -> None:
        for stack in self.running.values():
            _run_cleanups(stack._stoppers)
        self.running.clear()


@pytest.fixture(scope="session")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    registry = Stacks(tmp_path_factory.mktemp("e2e"))
    yield registry
    registry.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def stack(request: pytest.FixtureRequest, stacks: Stacks) -> Stack:
    """A running stack, once per storage backend."""
    return stacks.get(request.param)


@pytest.fixture(scope="session")
def local_stack(stacks: Stacks) -> Stack:
    """The local-storage stack (DOWNLOAD_ACCEL=nginx), shared with ``stack``'s local run."""
    return stacks.get("local")


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """test-output/e2e (gitignored): screenshots and other artefacts worth looking at."""
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, attach the servers' logs to the report."""
    report = yield
    if report.failed and call.when == "call":  # type: ignore[attr-defined]
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, Stack):
                report.sections.append((f"servers ({value.backend})", value.diagnostics()))  # type: ignore[attr-defined]
    return report
