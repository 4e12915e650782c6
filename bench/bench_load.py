"""Load and chaos: virtual users against a running deployment, then a check that no data was lost.

The script starts the servers itself, on 127.0.0.1 only, with a fresh database and storage, and
stops everything it started at the end:

- ``nginx``: nginx (rendered from nginx/ by nginx/render.py) in front of ``main.py serve
  --workers 2`` on a fresh PostgreSQL database (created beside ``--database-url``, dropped after);
  downloads handed to nginx (DOWNLOAD_ACCEL=nginx), as docker compose runs it.
- ``sqlite``: ``main.py serve`` as one process on the SQLite default, no nginx.

Virtual users (asyncio + httpx) then run for ``--duration`` seconds: anonymous browsing and
searching of published studies, ``/auth/me``, logins with good and bad passwords, sample sheet
imports, uploads of real FASTQ (gzip and plain) by tus in small chunks, by PUT and by multipart,
and downloads whose bytes are hashed against the upload's SHA-256 and the X-Checksum-SHA256
header. At ``--flood-at`` seconds, ``--flood`` bad logins (unknown emails and wrong passwords) are
sent at once; reads that overlap the flood are also counted on their own. ``--chaos N`` (nginx
mode) kill -9s one API worker every N seconds; uvicorn's supervisor starts a new one.

After the run, every acknowledged upload is checked: a file the API acknowledged (201, or a tus
PATCH with Upload-File-Id) must be recorded with the uploaded SHA-256 and download with those
bytes; an unfinished tus upload must resume from at least its last acknowledged offset (HEAD).
Then ``python main.py fsck --json`` runs, if this version has it. The peak resident memory of
each API worker (with its FASTQ validator processes) is sampled from /proc all along.

Output: a markdown block for docs/benchmarks.md on stdout (``--out`` also writes it to a file)
and, with ``--json``, every number. Login rate limits are raised for the run (the flood measures
the password hasher and the database, not the limiter); argon2 keeps its configured cost.

    .venv/bin/python bench/bench_load.py --mode nginx --duration 60 --chaos 15
    .venv/bin/python bench/bench_load.py --mode sqlite --duration 60 --json /tmp/load.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import hashlib
import json
import os
import platform
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nginx import render  # noqa: E402
from tests.databases import create_database, drop_database  # noqa: E402
from tests.e2e.conftest import ManagedProcess, nginx_binary  # noqa: E402
from tests.e2e.helpers import fastq_records  # noqa: E402

MIB = 1024 * 1024
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SECRET_KEY = "bench-load-secret-key-" + "x" * 40
TUS_CHUNK = 64 * 1024
REQUEST_TIMEOUT = 60.0
MAX_USERS = 50
MAX_DURATION = 600.0
MAX_FLOOD = 500
READ_KINDS = ("browse", "search", "me", "download")
SEARCH_TERMS = ("liver", "atlas", "Mus", "regeneration", "zz-absent", "MOSAIC-0001", "li")
# Kinds a virtual user picks, with their weights.
KIND_WEIGHTS = {
    "browse": 25,
    "search": 15,
    "me": 10,
    "login_good": 4,
    "login_bad": 4,
    "sheet": 4,
    "upload_tus": 7,
    "upload_put": 6,
    "upload_multipart": 6,
    "download": 14,
}
UPLOAD_RETRIES = 6


# --- the servers ----------------------------------------------------------------------------------


@dataclass
class Deployment:
    """The processes of one run; ``url`` is what clients talk to, ``api`` the uvicorn master."""

    mode: str
    directory: Path
    url: str
    env: dict[str, str]
    api: ManagedProcess
    nginx: ManagedProcess | None = None

    def workers(self) -> list[psutil.Process]:
        """The processes serving requests: uvicorn's workers, or the single process itself."""
        master = psutil.Process(self.api.pid)
        if self.mode != "nginx":
            return [master]
        workers = []
        for child in master.children():
            # A worker just killed is gone or a zombie until the supervisor reaps it.
            with contextlib.suppress(psutil.Error):
                if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(
                    child.cmdline()
                ):
                    workers.append(child)
        return workers


def server_env(mode: str, directory: Path, database_url: str | None) -> dict[str, str]:
    passed = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {name: os.environ[name] for name in passed if name in os.environ}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "ENVIRONMENT": "test",
        "DATA_DIR": str(directory / "data"),
        "SECRET_KEY": SECRET_KEY,
        "STORAGE_BACKEND": "local",
        "COOKIE_SECURE": "false",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "LOGIN_RATE_LIMIT": "100000/minute",
        "LOGIN_IP_RATE_LIMIT": "100000/minute",
        "REGISTER_RATE_LIMIT": "100000/minute",
        # INFO: uvicorn's supervisor says so when it replaces a worker (killed, or hung > 5 s).
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "REVIEW_REQUIRED": "false",
        # A worker killed mid-PATCH holds its upload this long; then the client may resume.
        "TUS_LEASE_SECONDS": "10",
        "DOWNLOAD_ACCEL": "nginx" if mode == "nginx" else "none",
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def start_deployment(
    mode: str, directory: Path, port_base: int, database_url: str | None
) -> Deployment:
    """Start the API (and nginx in front of it); the caller stops it with ``stop_deployment``."""
    env = server_env(mode, directory, database_url)
    (directory / "data" / "objects").mkdir(parents=True)
    api_port = port_base + 1 if mode == "nginx" else port_base
    workers = "2" if mode == "nginx" else "1"
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
            workers,
        ],
        cwd=directory,
        env=env,
    )
    deployment = Deployment(mode, directory, f"http://127.0.0.1:{api_port}", env, api)
    try:
        api.wait_until(f"{deployment.url}/readyz")
        if mode == "nginx":
            deployment.nginx = start_nginx(directory, port_base, api_port)
            deployment.url = f"http://127.0.0.1:{port_base}"
            deployment.nginx.wait_until(f"{deployment.url}/readyz")
            wait_for_workers(deployment, 2)
    except BaseException:
        stop_deployment(deployment)
        raise
    return deployment


def start_nginx(directory: Path, port: int, api_port: int) -> ManagedProcess:
    binary = nginx_binary()
    if binary is None:
        raise SystemExit("nginx is not installed (apt-get install nginx)")
    config = render.write_config(
        listen_port=port,
        upstreams=[f"127.0.0.1:{api_port}"],
        objects_dir=directory / "data" / "objects",
        prefix_dir=directory / "nginx",
    )
    return ManagedProcess(
        "nginx",
        [binary, "-p", str(config.parent), "-c", str(config)],
        cwd=directory,
        env={"PATH": os.environ.get("PATH", "")},
    )


def wait_for_workers(deployment: Deployment, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(deployment.workers()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the API did not start {count} workers:\n{deployment.api.log_tail()}"
            )
        time.sleep(0.2)


def stop_deployment(deployment: Deployment) -> None:
    for process in (deployment.nginx, deployment.api):
        if process is not None:
            with contextlib.suppress(Exception):
                process.stop()


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str
    status: str  # the HTTP status, or the exception's name when there was no answer
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Recorder:
    origin: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    flood_window: tuple[float, float] | None = None
    chaos_kills: list[tuple[float, int]] = field(default_factory=list)

    def add(self, kind: str, status: str, start: float) -> None:
        self.samples.append(
            Sample(kind, status, start - self.origin, time.monotonic() - self.origin)
        )

    async def timed(self, kind: str, request: Awaitable[httpx.Response]) -> httpx.Response | None:
        start = time.monotonic()
        try:
            response = await request
        except httpx.HTTPError as exc:
            self.add(kind, type(exc).__name__, start)
            return None
        self.add(kind, str(response.status_code), start)
        return response


class RssSampler:
    """Peak resident memory per API worker pid, and per worker with its validator processes."""

    def __init__(self, deployment: Deployment, interval: float = 0.25) -> None:
        self.deployment = deployment
        self.interval = interval
        self.peak_worker: dict[int, int] = {}
        self.peak_with_children: dict[int, int] = {}
        self.peak_nginx = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for worker in self.deployment.workers():
            with contextlib.suppress(psutil.Error):
                own = worker.memory_info().rss
                family = own + sum(
                    child.memory_info().rss for child in worker.children(recursive=True)
                )
                self.peak_worker[worker.pid] = max(self.peak_worker.get(worker.pid, 0), own)
                previous = self.peak_with_children.get(worker.pid, 0)
                self.peak_with_children[worker.pid] = max(previous, family)
        if self.deployment.nginx is not None:
            with contextlib.suppress(psutil.Error):
                total = sum(p.memory_info().rss for p in self.deployment.nginx.processes())
                self.peak_nginx = max(self.peak_nginx, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- what the users do ----------------------------------------------------------------------------


@dataclass
class Account:
    email: str
    password: str
    token: str = ""
    accession: str = ""
    free_samples: list[str] = field(default_factory=list)
    sample_counter: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Upload:
    """An upload the API acknowledged: whole (``file_id``), or a tus upload up to ``acked``."""

    path: str
    owner: Account
    filename: str
    size: int
    sha256: str
    file_id: str | None = None
    tus_url: str | None = None
    acked: int = 0


@dataclass
class World:
    client: httpx.AsyncClient
    recorder: Recorder
    accounts: list[Account]
    public_accessions: list[str] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)
    download_checks: Counter[str] = field(default_factory=Counter)
    max_requests: int = 0

    def budget_left(self) -> bool:
        return not self.max_requests or len(self.recorder.samples) < self.max_requests


def fastq_bytes(rng: random.Random, *, gzipped: bool) -> bytes:
    reads = rng.randint(300, 1500)
    plain = fastq_records(reads, mate="1", length=100, seed=rng.randrange(2**31))
    return gzip.compress(plain, compresslevel=1, mtime=0) if gzipped else plain


def tus_metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def login(world: World, account: Account, *, kind: str = "login_good") -> bool:
    response = await world.recorder.timed(
        kind,
        world.client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": account.password}
        ),
    )
    if response is not None and response.status_code == 200:
        account.token = str(response.json()["access_token"])
        return True
    return False


async def bad_login(world: World, rng: random.Random, kind: str = "login_bad") -> None:
    if rng.random() < 0.5 and world.accounts:
        email = rng.choice(world.accounts).email
    else:
        email = f"nobody-{secrets.token_hex(6)}@load.example.org"
    await world.recorder.timed(
        kind,
        world.client.post(
            "/api/v1/auth/login", json={"email": email, "password": "wrong-" + secrets.token_hex(6)}
        ),
    )


async def browse(world: World, account: Account, rng: random.Random) -> None:
    choice = rng.random()
    if choice < 0.4 or not world.public_accessions:
        request = world.client.get("/api/v1/studies", params={"page": rng.randint(1, 2)})
    elif choice < 0.8:
        accession = rng.choice(world.public_accessions)
        request = world.client.get(f"/api/v1/studies/{accession}")
    else:
        request = world.client.get("/api/v1/stats")
    await world.recorder.timed("browse", request)


async def search(world: World, account: Account, rng: random.Random) -> None:
    if rng.random() < 0.7:
        params = {"q": rng.choice(SEARCH_TERMS)}
    else:
        params = {"organism": rng.choice(("Mus musculus", "Homo sapiens"))}
    await world.recorder.timed("search", world.client.get("/api/v1/studies", params=params))


async def me(world: World, account: Account, rng: random.Random) -> None:
    await world.recorder.timed("me", world.client.get("/api/v1/auth/me", headers=account.headers))


async def login_good(world: World, account: Account, rng: random.Random) -> None:
    await login(world, account)


async def login_bad(world: World, account: Account, rng: random.Random) -> None:
    await bad_login(world, rng)


async def sheet(world: World, account: Account, rng: random.Random) -> None:
    rows = []
    for _ in range(4):
        account.sample_counter += 1
        rows.append(f"L{account.sample_counter},Mus musculus,liver,F,2024-03,1")
    text = "Sample_ID,Organism,Tissue,Sex,Date_Sample_Prep,Biological_Repeat\n" + "\n".join(rows)
    response = await world.recorder.timed(
        "sheet",
        world.client.post(
            f"/api/v1/studies/{account.accession}/sample-sheet",
            params={"mode": "append"},
            headers=account.headers,
            files={"file": ("samples.csv", text.encode(), "text/csv")},
        ),
    )
    if response is not None and response.status_code == 201:
        account.free_samples.extend(row.split(",", 1)[0] for row in rows)


async def take_sample(world: World, account: Account, rng: random.Random) -> str | None:
    if not account.free_samples:
        await sheet(world, account, rng)
    return account.free_samples.pop(0) if account.free_samples else None


async def upload_put(world: World, account: Account, rng: random.Random) -> None:
    sample = await take_sample(world, account, rng)
    if sample is None:
        return
    data = fastq_bytes(rng, gzipped=True)
    filename = f"{sample}_R1.fastq.gz"
    sha256 = hashlib.sha256(data).hexdigest()
    response = await world.recorder.timed(
        "upload_put",
        world.client.put(
            f"/api/v1/studies/{account.accession}/samples/{sample}/files/{filename}",
            headers={
                **account.headers,
                "X-Checksum-SHA256": sha256,
                "Content-Type": "application/octet-stream",
            },
            content=data,
        ),
    )
    acknowledge(world, response, Upload("put", account, filename, len(data), sha256))


async def upload_multipart(world: World, account: Account, rng: random.Random) -> None:
    sample = await take_sample(world, account, rng)
    if sample is None:
        return
    data = fastq_bytes(rng, gzipped=False)
    filename = f"{sample}_R1.fastq"
    sha256 = hashlib.sha256(data).hexdigest()
    response = await world.recorder.timed(
        "upload_multipart",
        world.client.post(
            f"/api/v1/studies/{account.accession}/samples/{sample}/files",
            headers=account.headers,
            files={"file": (filename, data, "application/octet-stream")},
            data={"sha256": sha256},
        ),
    )
    acknowledge(world, response, Upload("multipart", account, filename, len(data), sha256))


def acknowledge(world: World, response: httpx.Response | None, upload: Upload) -> None:
    if response is not None and response.status_code == 201:
        upload.file_id = str(response.json()["id"])
        upload.acked = upload.size
        world.uploads.append(upload)


async def upload_tus(world: World, account: Account, rng: random.Random) -> None:
    sample = await take_sample(world, account, rng)
    if sample is None:
        return
    data = fastq_bytes(rng, gzipped=True)
    filename = f"{sample}_R1.fastq.gz"
    sha256 = hashlib.sha256(data).hexdigest()
    metadata = {
        "study": account.accession,
        "sample_id": sample,
        "filename": filename,
        "sha256": sha256,
    }
    created = await world.recorder.timed(
        "upload_tus",
        world.client.post(
            "/api/v1/uploads",
            headers={
                **account.headers,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(len(data)),
                "Upload-Metadata": tus_metadata(metadata),
            },
        ),
    )
    if created is None or created.status_code != 201:
        return
    upload = Upload(
        "tus", account, filename, len(data), sha256, tus_url=created.headers["Location"]
    )
    world.uploads.append(upload)
    await send_tus_chunks(world, upload, data)


async def send_tus_chunks(world: World, upload: Upload, data: bytes) -> None:
    """PATCH until done; after a failure, HEAD and resume from the server's offset (a few times)."""
    assert upload.tus_url is not None
    offset, failures = 0, 0
    base = {**upload.owner.headers, "Tus-Resumable": "1.0.0"}
    while offset < len(data) and failures < UPLOAD_RETRIES:
        chunk = data[offset : offset + TUS_CHUNK]
        digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
        response = await world.recorder.timed(
            "upload_tus",
            world.client.patch(
                upload.tus_url,
                headers={
                    **base,
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Checksum": f"sha256 {digest}",
                },
                content=chunk,
            ),
        )
        if response is not None and response.status_code == 204:
            offset = upload.acked = int(response.headers["Upload-Offset"])
            if file_id := response.headers.get("Upload-File-Id"):
                upload.file_id = file_id
            continue
        failures += 1
        await asyncio.sleep(min(2.0 * failures, 8.0))
        head = await world.recorder.timed(
            "upload_tus", world.client.head(upload.tus_url, headers=base)
        )
        if head is None or head.status_code != 200:
            return
        offset = int(head.headers["Upload-Offset"])


async def download(world: World, account: Account, rng: random.Random) -> None:
    done = [u for u in world.uploads if u.file_id and u.owner is account]
    if not done:
        await browse(world, account, rng)
        return
    upload = rng.choice(done)
    response = await world.recorder.timed(
        "download",
        world.client.get(f"/api/v1/files/{upload.file_id}/download", headers=account.headers),
    )
    if response is None or response.status_code != 200:
        return
    world.download_checks[check_download(response, upload)] += 1


def check_download(response: httpx.Response, upload: Upload) -> str:
    actual = hashlib.sha256(response.content).hexdigest()
    if actual != upload.sha256:
        return "corrupt"
    if response.headers.get("X-Checksum-SHA256", "").lower() not in {upload.sha256, ""}:
        return "wrong header"
    return "ok"


ACTIONS: dict[str, Callable[[World, Account, random.Random], Awaitable[None]]] = {
    "browse": browse,
    "search": search,
    "me": me,
    "login_good": login_good,
    "login_bad": login_bad,
    "sheet": sheet,
    "upload_tus": upload_tus,
    "upload_put": upload_put,
    "upload_multipart": upload_multipart,
    "download": download,
}


async def virtual_user(world: World, account: Account, seed: int, deadline: float) -> None:
    rng = random.Random(seed)
    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
    while time.monotonic() < deadline and world.budget_left():
        kind = rng.choices(kinds, weights)[0]
        start = time.monotonic()
        try:
            await ACTIONS[kind](world, account, rng)
        except (KeyError, ValueError) as exc:  # an answer without the header or body it promised
            world.recorder.add(kind, f"unexpected answer: {type(exc).__name__}", start)
        await asyncio.sleep(rng.uniform(0.0, 0.2))


async def flood(world: World, count: int, seed: int) -> None:
    rng = random.Random(seed)
    start = time.monotonic() - world.recorder.origin
    await asyncio.gather(*(bad_login(world, rng, "login_flood") for _ in range(count)))
    world.recorder.flood_window = (start, time.monotonic() - world.recorder.origin)


async def chaos(deployment: Deployment, recorder: Recorder, every: float, deadline: float) -> None:
    rng = random.Random(7)
    while time.monotonic() + every < deadline:
        await asyncio.sleep(every)
        workers = deployment.workers()
        if not workers:
            continue
        victim = rng.choice(workers)
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)
            recorder.chaos_kills.append((time.monotonic() - recorder.origin, victim.pid))


# --- seeding and checking -------------------------------------------------------------------------


async def expect(response: Awaitable[httpx.Response], *statuses: int) -> httpx.Response:
    answer = await response
    if answer.status_code not in statuses:
        raise RuntimeError(
            f"{answer.request.method} {answer.request.url} -> {answer.status_code}: "
            f"{answer.text[:500]}"
        )
    return answer


async def seed(
    client: httpx.AsyncClient, users: int, rng: random.Random
) -> tuple[list[Account], list[str]]:
    """One account with a draft study per user, and three published studies with a file each."""
    accounts = [
        Account(
            f"load-{index}-{secrets.token_hex(3)}@load.example.org",
            f"Load-test passphrase {index} {secrets.token_hex(4)}",
        )
        for index in range(users + 1)
    ]
    for account in accounts:
        await expect(
            client.post(
                "/api/v1/auth/register",
                json={
                    "email": account.email,
                    "password": account.password,
                    "full_name": "Load Tester",
                },
            ),
            201,
        )
        login_answer = await expect(
            client.post(
                "/api/v1/auth/login", json={"email": account.email, "password": account.password}
            ),
            200,
        )
        account.token = str(login_answer.json()["access_token"])
        account.accession = await new_study(client, account, "Liver atlas draft", samples=[])
    publisher = accounts.pop()
    published = [await publish_one(client, publisher, index, rng) for index in range(3)]
    return accounts, published


async def new_study(
    client: httpx.AsyncClient, account: Account, title: str, samples: list[str]
) -> str:
    body = {
        "title": title,
        "description": "Regeneration of the mouse liver, load test.",
        "authors": ["Ada Lovelace"],
        "samples": [{"sample_id": s, "organism": "Mus musculus"} for s in samples],
    }
    created = await expect(client.post("/api/v1/studies", json=body, headers=account.headers), 201)
    return str(created.json()["accession"])


async def publish_one(
    client: httpx.AsyncClient, account: Account, index: int, rng: random.Random
) -> str:
    accession = await new_study(client, account, f"Liver regeneration atlas {index}", ["P1"])
    data = fastq_bytes(rng, gzipped=True)
    await expect(
        client.put(
            f"/api/v1/studies/{accession}/samples/P1/files/P1.fastq.gz",
            headers={**account.headers, "Content-Type": "application/octet-stream"},
            content=data,
        ),
        201,
    )
    await expect(client.post(f"/api/v1/studies/{accession}/submit", headers=account.headers), 200)
    return accession


@dataclass
class Verification:
    complete_ok: int = 0
    resumable_ok: int = 0
    problems: list[str] = field(default_factory=list)
    bytes_acknowledged: int = 0
    bytes_lost_or_corrupt: int = 0


async def verify(
    client: httpx.AsyncClient, uploads: list[Upload], accounts: list[Account]
) -> Verification:
    """Every acknowledged upload complete with its SHA-256, or resumable from its acked offset."""
    for account in accounts:
        answer = await client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": account.password}
        )
        if answer.status_code == 200:
            account.token = str(answer.json()["access_token"])
    result = Verification()
    for upload in uploads:
        result.bytes_acknowledged += upload.acked
        problem = await (
            verify_file(client, upload) if upload.file_id else verify_tus(client, upload)
        )
        if problem is None:
            result.complete_ok += bool(upload.file_id)
            result.resumable_ok += not upload.file_id
        else:
            result.problems.append(f"{upload.path} {upload.filename}: {problem}")
            result.bytes_lost_or_corrupt += upload.acked
    return result


async def verify_file(client: httpx.AsyncClient, upload: Upload) -> str | None:
    headers = upload.owner.headers
    record = await client.get(f"/api/v1/files/{upload.file_id}", headers=headers)
    if record.status_code != 200:
        return f"file record: {record.status_code}"
    if record.json()["sha256"] != upload.sha256:
        return "recorded SHA-256 differs"
    body = await client.get(f"/api/v1/files/{upload.file_id}/download", headers=headers)
    if body.status_code != 200:
        return f"download: {body.status_code}"
    if hashlib.sha256(body.content).hexdigest() != upload.sha256:
        return "downloaded bytes differ"
    return None


async def verify_tus(client: httpx.AsyncClient, upload: Upload) -> str | None:
    assert upload.tus_url is not None
    head = await client.head(
        upload.tus_url, headers={**upload.owner.headers, "Tus-Resumable": "1.0.0"}
    )
    if head.status_code != 200:
        return f"HEAD {head.status_code} (acknowledged {upload.acked} bytes)"
    offset = int(head.headers["Upload-Offset"])
    if offset < upload.acked:
        return f"offset {offset} < acknowledged {upload.acked}"
    if file_id := head.headers.get("Upload-File-Id"):
        upload.file_id = file_id
        return await verify_file(client, upload)
    return None


def run_fsck(deployment: Deployment) -> dict[str, Any]:
    main = [sys.executable, str(ROOT / "main.py")]
    probe = subprocess.run(
        [*main, "fsck", "--help"],
        cwd=deployment.directory,
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        return {"available": False}
    done = subprocess.run(
        [*main, "fsck", "--json"],
        cwd=deployment.directory,
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report: Any = None
    with contextlib.suppress(json.JSONDecodeError):
        report = json.loads(done.stdout)
    return {
        "available": True,
        "exit_code": done.returncode,
        "report": report,
        "output": done.stdout[-2000:] + done.stderr[-2000:],
    }


def server_errors(log_path: Path, top: int = 5) -> dict[str, int]:
    """The API's ERROR lines, by message and the last line of their exception (most frequent)."""
    found: Counter[str] = Counter()
    for line in log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            entry = json.loads(line)
            if entry.get("level") in {"ERROR", "CRITICAL"}:
                exception = [
                    text
                    for text in str(entry.get("exception", "")).strip().splitlines()
                    if text and not text.startswith(("(Background", "[SQL", " "))
                ]
                cause = exception[-1][:160] if exception else ""
                found[f"{entry.get('message', '')}: {cause}".rstrip(": ")] += 1
    return dict(found.most_common(top))


def replaced_workers(log_path: Path) -> int:
    """How often uvicorn's supervisor found a worker dead or hung and started another."""
    text = log_path.read_text(errors="replace")
    return len(re.findall(r"Child process \[\d+\] died", text))


# --- one run --------------------------------------------------------------------------------------


@dataclass
class Options:
    mode: str
    duration: float
    users: int
    flood: int
    flood_at: float
    chaos: float
    max_requests: int
    rss_bound_mb: int
    port_base: int
    database_url: str
    seed: int
    keep: bool


async def drive(deployment: Deployment, options: Options) -> dict[str, Any]:
    rng = random.Random(options.seed)
    limits = httpx.Limits(max_connections=options.users + options.flood + 20)
    async with httpx.AsyncClient(
        base_url=deployment.url, timeout=REQUEST_TIMEOUT, limits=limits
    ) as client:
        accounts, published = await seed(client, options.users, rng)
        world = World(client, Recorder(), accounts, published, max_requests=options.max_requests)
        deadline = time.monotonic() + options.duration
        tasks = [
            virtual_user(world, account, options.seed + i, deadline)
            for i, account in enumerate(accounts)
        ]
        tasks.append(delayed(options.flood_at, flood(world, options.flood, options.seed)))
        if options.chaos:
            tasks.append(chaos(deployment, world.recorder, options.chaos, deadline))
        with RssSampler(deployment) as rss:
            await asyncio.gather(*tasks)
            if options.chaos:
                await asyncio.to_thread(wait_for_workers, deployment, 2)
        verification = await verify(client, world.uploads, accounts)
    return {"world": world, "verification": verification, "rss": rss}


async def delayed(seconds: float, work: Awaitable[None]) -> None:
    await asyncio.sleep(seconds)
    await work


@contextlib.contextmanager
def database_for(options: Options) -> Iterator[str | None]:
    if options.mode != "nginx":
        yield None
        return
    name, url = asyncio.run(create_database(options.database_url, "mosaic_load"))
    try:
        yield url
    finally:
        asyncio.run(drop_database(options.database_url, name))


def run_mode(options: Options) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix=f"mosaic-load-{options.mode}-"))
    with database_for(options) as database_url:
        deployment = start_deployment(options.mode, directory, options.port_base, database_url)
        try:
            outcome = asyncio.run(drive(deployment, options))
            fsck = run_fsck(deployment)
        finally:
            stop_deployment(deployment)
    summary = summarise(options, outcome, fsck)
    summary["server_errors"] = server_errors(deployment.api.log_path)
    summary["workers_replaced"] = replaced_workers(deployment.api.log_path)
    summary["directory"] = str(directory)
    if not options.keep:
        subprocess.run(["rm", "-rf", str(directory)], check=False)
    return summary


# --- the report -----------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def is_bad_5xx(status: str) -> bool:
    """A 5xx other than 503, or no answer at all (the connection failed)."""
    return not status.isdigit() or (int(status) >= 500 and status != "503")


def kind_rows(samples: list[Sample]) -> list[dict[str, Any]]:
    rows = []
    for kind in sorted({s.kind for s in samples}):
        mine = [s for s in samples if s.kind == kind]
        seconds = [s.seconds for s in mine]
        statuses = Counter(s.status for s in mine)
        rows.append(
            {
                "kind": kind,
                "requests": len(mine),
                "p50_ms": round(percentile(seconds, 0.5) * 1000, 1),
                "p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
                "statuses": dict(sorted(statuses.items())),
                "bad_5xx": sum(n for status, n in statuses.items() if is_bad_5xx(status)),
            }
        )
    return rows


def flood_reads(recorder: Recorder) -> list[Sample]:
    if recorder.flood_window is None:
        return []
    begin, end = recorder.flood_window
    return [s for s in recorder.samples if s.kind in READ_KINDS and s.start < end and s.end > begin]


def summarise(options: Options, outcome: dict[str, Any], fsck: dict[str, Any]) -> dict[str, Any]:
    world: World = outcome["world"]
    verification: Verification = outcome["verification"]
    rss: RssSampler = outcome["rss"]
    during_flood = flood_reads(world.recorder)
    flood_seconds = [s.seconds for s in during_flood]
    return {
        "mode": options.mode,
        "options": asdict(options),
        "kinds": kind_rows(world.recorder.samples),
        "flood_window_s": world.recorder.flood_window,
        "reads_during_flood": {
            "requests": len(during_flood),
            "p50_ms": round(percentile(flood_seconds, 0.5) * 1000, 1),
            "p99_ms": round(percentile(flood_seconds, 0.99) * 1000, 1),
            "statuses": dict(Counter(s.status for s in during_flood)),
        },
        "chaos_kills": world.recorder.chaos_kills,
        "downloads_checked": dict(world.download_checks),
        "verification": asdict(verification),
        "uploads_by_path": dict(Counter(u.path for u in world.uploads)),
        "peak_rss_mib": {str(pid): round(v / MIB, 1) for pid, v in rss.peak_worker.items()},
        "peak_rss_with_validators_mib": {
            str(pid): round(v / MIB, 1) for pid, v in rss.peak_with_children.items()
        },
        "peak_rss_nginx_mib": round(rss.peak_nginx / MIB, 1),
        "fsck": fsck,
    }


def server_failures(summary: dict[str, Any]) -> tuple[str, str, bool]:
    """The 5xx goal. Under chaos, a request in flight on the killed worker gets nginx's 502 (a
    POST is not retried on the other worker): those are counted apart, every other one counts."""
    bad = sum(row["bad_5xx"] for row in summary["kinds"])
    if not summary["options"]["chaos"]:
        return ("0 x 5xx other than 503 (and no dropped connection)", f"{bad}", bad == 0)
    bad_gateway = sum(row["statuses"].get("502", 0) for row in summary["kinds"])
    others = bad - bad_gateway
    return (
        "0 x 5xx other than 503, and 502 only for requests in flight on a killed worker",
        f"{others} (and {bad_gateway} x 502, {len(summary['chaos_kills'])} workers killed)",
        others == 0,
    )


def goals(summary: dict[str, Any]) -> list[tuple[str, str, bool]]:
    verification = summary["verification"]
    flood_p99 = summary["reads_during_flood"]["p99_ms"]
    peak = max(summary["peak_rss_with_validators_mib"].values(), default=0.0)
    bound = summary["options"]["rss_bound_mb"]
    lost = verification["bytes_lost_or_corrupt"] + summary["downloads_checked"].get("corrupt", 0)
    fsck = summary["fsck"]
    fsck_text = "not available" if not fsck["available"] else f"exit {fsck['exit_code']}"
    return [
        server_failures(summary),
        (
            "0 bytes lost or corrupted",
            f"{verification['complete_ok']} complete + {verification['resumable_ok']} resumable "
            f"uploads checked, {len(verification['problems'])} problems, "
            f"{verification['bytes_lost_or_corrupt']} bytes affected",
            lost == 0,
        ),
        (
            "reads p99 < 1 s while the bad-login flood runs",
            f"{flood_p99} ms over {summary['reads_during_flood']['requests']} reads",
            flood_p99 == flood_p99 and flood_p99 < 1000,
        ),
        (f"peak RSS per worker (with its validators) <= {bound} MiB", f"{peak} MiB", peak <= bound),
        ("fsck finds nothing", fsck_text, bool(fsck["available"]) and fsck.get("exit_code") == 0),
    ]


def markdown(summary: dict[str, Any]) -> str:
    options = summary["options"]
    chaos_text = (
        f", chaos: kill -9 a worker every {options['chaos']:g} s" if options["chaos"] else ""
    )
    setup = (
        "nginx + 2 uvicorn workers + PostgreSQL"
        if summary["mode"] == "nginx"
        else "one process, SQLite (the default)"
    )
    lines = [
        f"### Load: {setup}, {options['duration']:g} s, {options['users']} users, "
        f"{options['flood']} bad logins at {options['flood_at']:g} s{chaos_text}",
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{os.getloadavg()[0]:.1f} at the end.",
        "",
        "| kind | requests | p50 ms | p99 ms | statuses | 5xx other than 503 |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary["kinds"]:
        statuses = " ".join(f"{status}: {count}" for status, count in row["statuses"].items())
        bad = f"**{row['bad_5xx']}**" if row["bad_5xx"] else "0"
        lines.append(
            f"| {row['kind']} | {row['requests']} | {row['p50_ms']} | {row['p99_ms']} | "
            f"{statuses} | {bad} |"
        )
    flood = summary["reads_during_flood"]
    lines += [
        f"| reads during the flood | {flood['requests']} | {flood['p50_ms']} | {flood['p99_ms']} "
        f"| {' '.join(f'{k}: {v}' for k, v in sorted(flood['statuses'].items()))} | |",
        "",
        "| goal | result | status |",
        "|---|---|---|",
    ]
    lines += [
        f"| {goal} | {result} | {'met' if ok else '**NOT MET**'} |"
        for goal, result, ok in goals(summary)
    ]
    lines += ["", *details(summary)]
    return "\n".join(lines) + "\n"


def details(summary: dict[str, Any]) -> list[str]:
    with_validators = summary["peak_rss_with_validators_mib"]
    workers = ", ".join(
        f"{pid}: {mib} MiB ({with_validators.get(pid, mib)} with validators)"
        for pid, mib in summary["peak_rss_mib"].items()
    )
    lines = [
        f"- Uploads acknowledged: {summary['uploads_by_path']}; downloads hashed during the run: "
        f"{summary['downloads_checked']}.",
        f"- Peak RSS per worker pid: {workers}."
        + (f" nginx: {summary['peak_rss_nginx_mib']} MiB." if summary["mode"] == "nginx" else ""),
    ]
    if summary["chaos_kills"]:
        kills = ", ".join(f"{at:.0f} s" for at, _ in summary["chaos_kills"])
        lines.append(f"- Workers killed (-9) at: {kills}.")
    if summary["mode"] == "nginx":
        lines.append(
            f"- uvicorn's supervisor replaced {summary.get('workers_replaced', 0)} workers "
            f"({len(summary['chaos_kills'])} killed by --chaos; any others failed its 5 s ping)."
        )
    fsck = summary["fsck"]
    if not fsck["available"]:
        lines.append(
            "- fsck: not available (`python main.py fsck` does not exist in this version)."
        )
    else:
        lines.append(
            f"- fsck --json: exit {fsck['exit_code']}: `{json.dumps(fsck['report'])[:300]}`"
        )
    for message, count in summary.get("server_errors", {}).items():
        lines.append(f"- API log, {count} x: `{message}`")
    for problem in summary["verification"]["problems"][:10]:
        lines.append(f"- Upload problem: {problem}")
    return lines


# --- command line ---------------------------------------------------------------------------------


def parse_options(argv: list[str] | None) -> tuple[list[Options], argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=("nginx", "sqlite", "both"), default="both")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per mode")
    parser.add_argument("--users", type=int, default=8, help=f"virtual users (at most {MAX_USERS})")
    parser.add_argument("--flood", type=int, default=100, help="bad logins sent at once")
    parser.add_argument("--flood-at", type=float, help="seconds into the run (default: 1/3)")
    parser.add_argument(
        "--chaos",
        type=float,
        default=0.0,
        help="kill -9 an API worker every N seconds (nginx mode)",
    )
    parser.add_argument(
        "--max-requests", type=int, default=20000, help="stop the users after this many"
    )
    parser.add_argument(
        "--rss-bound-mb",
        type=int,
        default=300,
        help="the bound per worker (with its validators) the goal is held to",
    )
    parser.add_argument(
        "--port-base",
        type=int,
        default=18400,
        help="nginx listens here, the API on the next port (sqlite: the API here)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL server for nginx mode (a fresh database is made beside it)",
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs, data)")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= MAX_USERS or not 1 <= args.duration <= MAX_DURATION:
        parser.error(f"--users 1..{MAX_USERS}, --duration 1..{MAX_DURATION:g}")
    if not 0 <= args.flood <= MAX_FLOOD:
        parser.error(f"--flood 0..{MAX_FLOOD}")
    modes = ["nginx", "sqlite"] if args.mode == "both" else [args.mode]
    if args.chaos and "sqlite" in modes:
        parser.error("--chaos needs several workers: use it with --mode nginx")
    options = [
        Options(
            mode=mode,
            duration=args.duration,
            users=args.users,
            flood=args.flood,
            flood_at=args.duration / 3 if args.flood_at is None else args.flood_at,
            chaos=args.chaos,
            max_requests=args.max_requests,
            rss_bound_mb=args.rss_bound_mb,
            port_base=args.port_base + 10 * index,
            database_url=args.database_url,
            seed=args.seed,
            keep=args.keep,
        )
        for index, mode in enumerate(modes)
    ]
    return options, args


def main(argv: list[str] | None = None) -> int:
    options, args = parse_options(argv)
    summaries = []
    for option in options:
        summary = run_mode(option)
        summaries.append(summary)
        text = markdown(summary)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        if args.out:
            with args.out.open("a") as out:
                out.write(text + "\n")
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2, default=str))
    met = all(ok for summary in summaries for _, _, ok in goals(summary))
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
