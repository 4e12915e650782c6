"""JSON API benchmark: this project against fastapi/full-stack-fastapi-template's backend.

Both run as one uvicorn worker each on 127.0.0.1, on the same PostgreSQL server (a scratch
database each, created and dropped here), with the same library versions where they share one and
the same argon2id parameters (the template hashes with pwdlib's ``Argon2Hasher()`` defaults:
t=3, m=65536 KiB, p=4; ours is given ARGON2_TIME_COST/MEMORY_COST/PARALLELISM to match). wrk is
the load generator (closed loop, one wrk thread; Lua scripts in a temporary folder add the bearer
token and the POST bodies). The rounds are interleaved: in every round each workload runs against
both servers one after the other (which one goes first alternates), so drift on the shared machine
hits both alike; the ratio ours/theirs is taken per round and reported as median and min-max.

Workloads (each server seeded with the same number of rows owned by the bench user):

- list 100 rows and 20 rows (our ``page_size`` vs their ``limit``), at 1 and 32 connections:
  ``GET /api/v1/studies?page_size=N`` vs ``GET /api/v1/items/?limit=N`` (a non-superuser, who
  sees their own rows: our default scope "mine" vs their owner filter);
- create at 8 connections: ``POST /api/v1/studies`` vs ``POST /api/v1/items/`` (title and
  description);
- login at 8 connections, the OAuth2 password form: ``POST /api/v1/auth/token`` vs
  ``POST /api/v1/login/access-token`` (our login rate limits are raised so the counters still run
  but never refuse).

Setup of the template (outside this repository; its code never enters it). The template asks for
Python >= 3.14; two lines use 3.14-only syntax and are patched so it runs on 3.11 (which this
project uses), and its single-page frontend folder is created empty:

    git clone /work/.mirror/fastapi+full-stack-fastapi-template/repo /work/peer/template
    # (or: git clone https://github.com/fastapi/full-stack-fastapi-template; measured at 68adb40d)
    cd /work/peer/template/backend
    sed -i -E 's/except (\\w+), (\\w+):/except (\\1, \\2):/' app/api/deps.py
    sed -i 's/items: list\\[Item\\] =/items: list["Item"] =/' app/models.py
    mkdir -p app/frontend && echo '<!doctype html><title>bench</title>' > app/frontend/index.html
    python3.11 -m venv /work/peer/venv
    /work/peer/venv/bin/pip install fastapi==0.165.0 starlette==1.10.0 \\
        "uvicorn[standard]==0.54.0" uvloop==0.23.0 httptools==0.9.0 pydantic==2.14.4 \\
        pydantic-core==2.50.5 pydantic-settings==2.16.3 sqlalchemy==2.1.9 alembic==1.20.1 \\
        pyjwt==2.15.1 \\
        "pwdlib[argon2,bcrypt]==0.3.1" argon2-cffi==25.1.0 argon2-cffi-bindings==26.2.0 \\
        python-multipart==0.0.34 email-validator==2.4.0 anyio==4.16.0 sqlmodel==0.0.50 \\
        "psycopg[binary]==3.3.9" tenacity emails jinja2 httpx "sentry-sdk[fastapi]"

Then, from this repository (wrk from Debian's ``wrk`` package):

    .venv/bin/python bench/bench_api.py --template /work/peer/template/backend \\
        --template-python /work/peer/venv/bin/python --rounds 5 --markdown /tmp/api.md

The script creates both databases (``bench_api_mosaic``, ``bench_api_template``), runs our
migrations and the template's (``alembic upgrade head``, ``app/initial_data.py``), seeds them,
starts both servers, runs the rounds, stops the servers and drops both databases.
``--profile DIR`` instead runs each workload once against our server alone under py-spy and
writes collapsed stacks (``DIR/<workload>.txt``) and a summary of the hottest frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from pwdlib.hashers.argon2 import Argon2Hasher  # noqa: E402
from sqlalchemy import update  # noqa: E402

from bench._seed import seed_studies, seed_users  # noqa: E402
from src.auth.models import User  # noqa: E402
from src.database import create_engine, upgrade_database  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"
OURS_DB = "bench_api_mosaic"
THEIRS_DB = "bench_api_template"
PASSWORD = "bench-Password-4821-xq"
OURS_EMAIL = "researcher@bench.example.org"  # bench/_seed.py's owner
THEIRS_EMAIL = "owner@bench.example.org"
THEIRS_ADMIN = "admin@bench.example.org"
SECRET = "bench-api-secret-key-that-is-long-enough-0123456789"
# pwdlib's Argon2Hasher() defaults, which the template uses (argon2-cffi's own defaults).
_ARGON2 = Argon2Hasher()._hasher
ARGON2_TIME_COST, ARGON2_MEMORY_COST, ARGON2_PARALLELISM = (
    _ARGON2.time_cost,
    _ARGON2.memory_cost,
    _ARGON2.parallelism,
)


@dataclass(frozen=True)
class Workload:
    name: str
    connections: int
    ours: tuple[str, str, str | None]  # method, path, body kind
    theirs: tuple[str, str, str | None]
    goal: float
    # A login takes tens of milliseconds of CPU: longer runs, for enough requests per run.
    length: float = 1.0


WORKLOADS = [
    Workload("list 100 rows, 1 conn", 1,
             ("GET", "/api/v1/studies?page_size=100", None),
             ("GET", "/api/v1/items/?limit=100", None), 1.2),
    Workload("list 100 rows, 32 conn", 32,
             ("GET", "/api/v1/studies?page_size=100", None),
             ("GET", "/api/v1/items/?limit=100", None), 1.2),
    Workload("list 20 rows, 1 conn", 1,
             ("GET", "/api/v1/studies?page_size=20", None),
             ("GET", "/api/v1/items/?limit=20", None), 1.2),
    Workload("list 20 rows, 32 conn", 32,
             ("GET", "/api/v1/studies?page_size=20", None),
             ("GET", "/api/v1/items/?limit=20", None), 1.2),
    Workload("create, 8 conn", 8,
             ("POST", "/api/v1/studies", "create"),
             ("POST", "/api/v1/items/", "create"), 1.2),
    Workload("login, 8 conn", 8,
             ("POST", "/api/v1/auth/token", "login-ours"),
             ("POST", "/api/v1/login/access-token", "login-theirs"), 1.0, length=3.0),
]  # fmt: skip

CREATE_BODY = {
    "title": "RNA-seq of Mus musculus liver during regeneration",
    "description": "We profiled liver from Mus musculus by RNA-seq to study regeneration.",
}


# ---------------------------------------------------------------------------------------------
# Databases and seeding.


def _dsn(base: str, database: str) -> str:
    return f"{base.rstrip('/')}/{database}"


async def _admin(base: str, statement: str) -> None:
    connection = await asyncpg.connect(_dsn(base, "postgres"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def recreate(base: str, name: str) -> None:
    await _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _admin(base, f'CREATE DATABASE "{name}"')


async def drop(base: str, name: str) -> None:
    await _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def password_hash() -> str:
    return Argon2Hasher().hash(PASSWORD)


async def seed_ours(base: str, rows: int, samples: int) -> None:
    url = _dsn(base, OURS_DB).replace("postgresql://", "postgresql+asyncpg://")
    await asyncio.to_thread(upgrade_database, url)
    engine = create_engine(url)
    try:
        users = await seed_users(engine)
        await seed_studies(engine, owner_id=users.owner_id, count=rows, samples_per_study=samples)
        async with engine.begin() as connection:
            await connection.execute(
                update(User).where(User.id == users.owner_id).values(password_hash=password_hash())
            )
            await connection.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()


def template_env(base: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": ".",
        "PROJECT_NAME": "bench",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": _dsn(base, THEIRS_DB),
        "FIRST_SUPERUSER": THEIRS_ADMIN,
        "FIRST_SUPERUSER_PASSWORD": PASSWORD,
        "FRONTEND_HOST": "http://127.0.0.1",
    }


async def seed_theirs(base: str, template: Path, python: Path, rows: int) -> None:
    env = template_env(base)
    bindir = python.parent
    for command in (
        [str(bindir / "alembic"), "upgrade", "head"],
        [str(python), "app/initial_data.py"],
    ):
        await asyncio.to_thread(
            subprocess.run, command, cwd=template, env=env, check=True, capture_output=True
        )
    connection = await asyncpg.connect(_dsn(base, THEIRS_DB))
    try:
        owner = uuid.uuid4()
        now = datetime.now(UTC)
        await connection.execute(
            'INSERT INTO "user" (id, email, is_active, is_superuser, full_name, hashed_password,'
            " created_at) VALUES ($1, $2, true, false, 'Bench Owner', $3, $4)",
            owner, THEIRS_EMAIL, password_hash(), now,
        )  # fmt: skip
        rng = random.Random(42)
        await connection.executemany(
            "INSERT INTO item (id, title, description, owner_id, created_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            [
                (uuid.uuid4(), f"{CREATE_BODY['title']} {n}", CREATE_BODY["description"], owner,
                 now - timedelta(days=rng.uniform(1, 1000)))
                for n in range(rows)
            ],
        )  # fmt: skip
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


# ---------------------------------------------------------------------------------------------
# Servers.


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _wait_ready(server: Server, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {server.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(server.url + path, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not start: {server.log.read_text()[-2000:]}")


def start_ours(base: str, port: int, workdir: Path) -> Server:
    log = workdir / "ours.log"
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": _dsn(base, OURS_DB).replace("postgresql://", "postgresql+asyncpg://"),
        "SECRET_KEY": SECRET,
        "DATA_DIR": str(workdir / "data"),
        "STORAGE_BACKEND": "local",
        "ARGON2_TIME_COST": str(ARGON2_TIME_COST),
        "ARGON2_MEMORY_COST": str(ARGON2_MEMORY_COST),
        "ARGON2_PARALLELISM": str(ARGON2_PARALLELISM),
        # The counters run, but never refuse the bench's logins.
        "LOGIN_RATE_LIMIT": "100000000/minute",
        "LOGIN_IP_RATE_LIMIT": "100000000/minute",
        "COOKIE_SECURE": "false",
        "REDIS_URL": "",
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable, "-m", "uvicorn", "src.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        # Our own middleware writes one access line per request (uvicorn's would be a second).
        "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    server = Server("ours", port, process, log)
    _wait_ready(server, "/healthz")
    return server


def start_theirs(base: str, port: int, template: Path, python: Path, workdir: Path) -> Server:
    log = workdir / "theirs.log"
    command = [
        str(python), "-m", "uvicorn", "app.main:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=template, env=template_env(base), stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = Server("template", port, process, log)
    _wait_ready(server, "/api/v1/utils/health-check/")
    return server


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def login(server: Server, path: str, email: str) -> str:
    body = urllib.parse.urlencode({"username": email, "password": PASSWORD}).encode()
    request = urllib.request.Request(server.url + path, data=body, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["access_token"])


# ---------------------------------------------------------------------------------------------
# wrk.

LUA = """
wrk.method = {method}
wrk.headers["Authorization"] = {auth}
{body}
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "RESULT {{\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, "
    .. "\\"errors\\": %d, \\"status_errors\\": %d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors, summary.errors.status))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)


def write_script(folder: Path, name: str, method: str, token: str, body: str | None) -> Path:
    lines = []
    if body == "create":
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {_lua_string(json.dumps(CREATE_BODY))}")
    elif body in ("login-ours", "login-theirs"):
        email = OURS_EMAIL if body == "login-ours" else THEIRS_EMAIL
        form = urllib.parse.urlencode({"username": email, "password": PASSWORD})
        lines.append('wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"')
        lines.append(f"wrk.body = {_lua_string(form)}")
    auth = _lua_string(f"Bearer {token}") if body not in ("login-ours", "login-theirs") else "nil"
    script = LUA.format(method=_lua_string(method), auth=auth, body="\n".join(lines))
    path = folder / f"{name}.lua"
    path.write_text(script)
    return path


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float = 0.0  # the server's CPU time per request (user + system, all threads)


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(server: Server, url: str, script: Path, connections: int, seconds: float) -> Run:
    """A wrk run, with the server's CPU time per request: on a shared machine the wall-clock
    rate depends on what else runs, the CPU each request costs much less."""
    before = cpu_seconds(server.process.pid)
    run = wrk(url, script, connections, seconds)
    used = cpu_seconds(server.process.pid) - before
    requests = run.rps * max(1, round(seconds))
    run.cpu_ms = 1000 * used / requests if requests else float("inf")
    return run


def wrk(url: str, script: Path, connections: int, seconds: float) -> Run:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
        "-s", str(script), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    return Run(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"],
    )


# ---------------------------------------------------------------------------------------------
# The rounds.


@dataclass
class Results:
    ours: dict[str, list[Run]] = field(default_factory=dict)
    theirs: dict[str, list[Run]] = field(default_factory=dict)
    loads: list[tuple[float, float, float]] = field(default_factory=list)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def run_rounds(
    ours: Server, theirs: Server, folder: Path, *, rounds: int, seconds: float, warmup: float,
    workloads: list[Workload],
) -> Results:  # fmt: skip
    results = Results()
    scripts: dict[tuple[str, str], Path] = {}
    for workload in workloads:
        for side, server in (("ours", ours), ("theirs", theirs)):
            method, _path, body = getattr(workload, side)
            scripts[(workload.name, side)] = write_script(
                folder, f"{side}_{_slug(workload.name)}", method, server.token, body
            )
    targets = {
        (workload.name, side): (server.url + getattr(workload, side)[1])
        for workload in workloads
        for side, server in (("ours", ours), ("theirs", theirs))
    }
    # Warm-up, not counted: every workload once on each side.
    for workload in workloads:
        for side in ("ours", "theirs"):
            wrk(targets[(workload.name, side)], scripts[(workload.name, side)],
                workload.connections, warmup * workload.length)  # fmt: skip
    servers = {"ours": ours, "theirs": theirs}
    for number in range(rounds):
        results.loads.append(os.getloadavg())
        order = ("ours", "theirs") if number % 2 == 0 else ("theirs", "ours")
        for workload in workloads:
            for side in order:
                run = measured(servers[side], targets[(workload.name, side)],
                               scripts[(workload.name, side)], workload.connections,
                               seconds * workload.length)  # fmt: skip
                getattr(results, side).setdefault(workload.name, []).append(run)
                print(
                    f"round {number + 1} {workload.name:<24} {side:<6} {run.rps:9.1f} req/s"
                    f"  p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  errors {run.errors}"
                    f"  CPU {run.cpu_ms:6.2f} ms/request",
                    flush=True,
                )
    results.loads.append(os.getloadavg())
    return results


def _median(values: list[float]) -> float:
    return statistics.median(values)


def report(results: Results, workloads: list[Workload], args: argparse.Namespace) -> str:
    lines = [
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s per workload and side (after a {args.warmup:g} s warm-up each); "
        f"load average (1, 5, 15 min) seen at the rounds' starts and end: "
        + ", ".join(f"{a:.2f}/{b:.2f}/{c:.2f}" for a, b, c in results.loads),
        "",
        "| workload | ours req/s | ours p50 / p99 ms | template req/s | template p50 / p99 ms "
        "| ratio ours/template (median, min-max) | goal | met "
        "| CPU ms/request ours / template | CPU ratio template/ours (median, min-max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for workload in workloads:
        ours, theirs = results.ours[workload.name], results.theirs[workload.name]
        pairs = list(zip(ours, theirs, strict=True))
        ratios = [a.rps / b.rps if b.rps else float("inf") for a, b in pairs]
        cpu = [b.cpu_ms / a.cpu_ms if a.cpu_ms else float("inf") for a, b in pairs]
        ratio = _median(ratios)
        errors = sum(r.errors for r in ours) + sum(r.errors for r in theirs)
        lines.append(
            f"| {workload.name} | {_median([r.rps for r in ours]):.0f} "
            f"| {_median([r.p50_ms for r in ours]):.1f} / {_median([r.p99_ms for r in ours]):.1f} "
            f"| {_median([r.rps for r in theirs]):.0f} "
            f"| {_median([r.p50_ms for r in theirs]):.1f} / "
            f"{_median([r.p99_ms for r in theirs]):.1f} "
            f"| **{ratio:.2f}x** ({min(ratios):.2f}-{max(ratios):.2f}) "
            f"| >= {workload.goal:.1f}x | {'yes' if ratio >= workload.goal else 'no'}"
            + (f" ({errors} errors)" if errors else "")
            + f" | {_median([r.cpu_ms for r in ours]):.2f} / "
            f"{_median([r.cpu_ms for r in theirs]):.2f} "
            f"| {_median(cpu):.2f}x ({min(cpu):.2f}-{max(cpu):.2f}) |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Profiling our side.


def profile(
    ours: Server, folder: Path, out: Path, *, seconds: float, workloads: list[Workload]
) -> None:
    py_spy = Path(sys.executable).parent / "py-spy"
    out.mkdir(parents=True, exist_ok=True)
    for workload in workloads:
        method, path, body = workload.ours
        script = write_script(folder, f"profile_{_slug(workload.name)}", method, ours.token, body)
        target = out / f"{_slug(workload.name)}.txt"
        spy = subprocess.Popen(
            [str(py_spy), "record", "--pid", str(ours.process.pid), "--format", "raw",
             "--duration", str(int(seconds)), "--rate", "250", "--nonblocking",
             "--output", str(target)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        run = wrk(ours.url + path, script, workload.connections, max(1.0, seconds - 1))
        spy.wait()
        print(f"{workload.name}: {run.rps:.1f} req/s under py-spy; {summarise(target)}")


def summarise(stacks: Path, top: int = 25) -> str:
    """The frames seen in most samples (inclusive), from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if not count.isdigit():  # a frame name py-spy printed across lines
            continue
        samples = int(count)
        total += samples
        for frame in set(frames.split(";")):
            inclusive[frame] += samples
    lines = [f"{stacks.name}: {total} samples"]
    for frame, samples in inclusive.most_common(top):
        lines.append(f"  {100 * samples / max(total, 1):5.1f}%  {frame}")
    summary = "\n".join(lines)
    stacks.with_suffix(".summary").write_text(summary + "\n")
    return summary


# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def servers(
    args: argparse.Namespace, workdir: Path, *, template: bool
) -> Iterator[tuple[Server, Server | None]]:
    ours = theirs = None
    try:
        ours = start_ours(args.postgres, args.port, workdir)
        ours.token = login(ours, "/api/v1/auth/token", OURS_EMAIL)
        if template:
            theirs = start_theirs(
                args.postgres, args.port + 1, args.template, args.template_python, workdir
            )
            theirs.token = login(theirs, "/api/v1/login/access-token", THEIRS_EMAIL)
        yield ours, theirs
    finally:
        for server in (ours, theirs):
            if server is not None:
                stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--template", type=Path, help="the template's backend folder")
    parser.add_argument("--template-python", type=Path, help="the python of the template's venv")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="server URL, no database")
    parser.add_argument("--port", type=int, default=18010, help="ours; the template gets +1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="per workload, side, round")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rows", type=int, default=120, help="rows owned by the bench user")
    parser.add_argument("--samples", type=int, default=4, help="samples per study (ours)")
    parser.add_argument("--only", action="append", help="workload names containing this text")
    parser.add_argument("--markdown", type=Path, help="append the result table here")
    parser.add_argument(
        "--profile", type=Path, help="py-spy our side alone, stacks into this folder"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()
    workloads = [w for w in WORKLOADS if not args.only or any(o in w.name for o in args.only)]
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    with_template = args.profile is None
    if with_template and (args.template is None or args.template_python is None):
        sys.exit("--template and --template-python are required (or --profile)")
    if with_template:
        args.template = args.template.resolve()
        if not (args.template / "app" / "main.py").exists():
            sys.exit(f"{args.template} is not the template's backend folder")
    print(f"argon2id: t={ARGON2_TIME_COST} m={ARGON2_MEMORY_COST} p={ARGON2_PARALLELISM}")
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        workdir = Path(tmp)
        try:
            asyncio.run(recreate(args.postgres, OURS_DB))
            asyncio.run(seed_ours(args.postgres, args.rows, args.samples))
            if with_template:
                asyncio.run(recreate(args.postgres, THEIRS_DB))
                asyncio.run(
                    seed_theirs(args.postgres, args.template, args.template_python, args.rows)
                )
            with servers(args, workdir, template=with_template) as (ours, theirs):
                if theirs is None:
                    profile(ours, workdir, args.profile, seconds=args.seconds, workloads=workloads)
                    return
                results = run_rounds(
                    ours, theirs, workdir, rounds=args.rounds, seconds=args.seconds,
                    warmup=args.warmup, workloads=workloads,
                )  # fmt: skip
            table = report(results, workloads, args)
            header = (
                f"Machine: {platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} CPUs; Python {platform.python_version()}; "
                f"argon2id t={ARGON2_TIME_COST} m={ARGON2_MEMORY_COST} p={ARGON2_PARALLELISM}; "
                f"{args.rows} rows owned by the bench user on each side"
                f" ({args.samples} samples per study on ours)\n\n"
            )
            print(header + table)
            if args.markdown:
                with args.markdown.open("a") as out:
                    out.write(header + table + "\n")
        finally:
            if not args.keep:
                asyncio.run(drop(args.postgres, OURS_DB))
                if with_template:
                    asyncio.run(drop(args.postgres, THEIRS_DB))


if __name__ == "__main__":
    main()
