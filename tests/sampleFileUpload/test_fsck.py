"""fsck and the orphan sweep (src/sampleFileUpload/fsck.py, cli.py): storage held against the
database on local disk and S3, on both databases. Ages are judged against a clock moved past the
grace period (``now=`` or a patched ``fsck.utcnow``), never by waiting."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.auth.models import User
from src.config import Settings
from src.database import create_engine, create_sessionmaker, upgrade_database, utcnow
from src.sampleFileUpload import fsck
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.files.service import new_storage_key
from src.sampleFileUpload.fsck import ProblemKind, Report, check, orphan_sweep, sweep_orphans
from src.storage import LocalStorage, ResumableWriter, Storage, StoredEntry, build_storage
from src.study.models import SampleFile, Study, Upload
from tests.factories import auth_headers, create_user
from tests.sampleFileUpload import backends
from tests.sampleFileUpload.fastq_samples import GOOD_GZ, gz, md5, records
from tests.sampleFileUpload.servers import ApiServer, seed_database
from tests.study.factories import create_study

ROOT = Path(__file__).resolve().parents[2]
FILES = "/api/v1/studies/{study}/samples/{sample}/files"
UPLOADS = "/api/v1/uploads"
GRACE = timedelta(hours=24)
PAST_GRACE = timedelta(hours=25)

# Every test that uses ``settings`` runs on local disk and on S3 (see backends.py).
settings = backends.settings


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session, full_name="Fay Fsck")


@pytest.fixture
def headers(settings: Settings, owner: User) -> dict[str, str]:
    return auth_headers(settings, owner)


@pytest.fixture
async def study(session: AsyncSession, owner: User) -> Study:
    return await create_study(session, owner=owner, samples=1)


@pytest.fixture
def storage(app: FastAPI) -> Storage:
    return app.state.storage  # type: ignore[no-any-return]


@pytest.fixture
def sessions(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    return app.state.sessionmaker  # type: ignore[no-any-return]


async def run(app: FastAPI, *, later: bool = False, **options: Any) -> Report:
    """fsck over the app's database and storage, with the clock now or past the grace period."""
    now = utcnow() + PAST_GRACE if later else None
    return await check(app.state.sessionmaker, app.state.storage, grace=GRACE, now=now, **options)


def kinds(report: Report) -> list[tuple[str, str]]:
    return sorted((problem.kind.value, problem.key) for problem in report.problems)


async def put_file(
    client: httpx.AsyncClient, study: Study, headers: dict[str, str], name: str, data: bytes
) -> SampleFile:
    url = FILES.format(study=study.accession, sample="S1")
    response = await client.put(f"{url}/{name}", headers=headers, content=data)
    assert response.status_code == 201, response.text
    return SampleFile(id=uuid.UUID(response.json()["id"]))


async def key_of(session: AsyncSession, file: SampleFile) -> str:
    key = await session.scalar(select(SampleFile.storage_key).where(SampleFile.id == file.id))
    assert key is not None
    return key


StoredFile = Callable[[str], Awaitable[tuple[SampleFile, str]]]


@pytest.fixture
def stored_file(
    client: httpx.AsyncClient, session: AsyncSession, study: Study, headers: dict[str, str]
) -> StoredFile:
    """Stores GOOD_GZ by PUT as the named file of S1: the file and its storage key."""

    async def store(name: str) -> tuple[SampleFile, str]:
        file = await put_file(client, study, headers, name, GOOD_GZ)
        return file, await key_of(session, file)

    return store


async def put_object(storage: Storage, key: str, data: bytes) -> None:
    async with await storage.open_writer(key) as writer:
        await writer.write(data)
        await writer.commit()


async def entries(storage: Storage) -> list[StoredEntry]:
    return sorted([entry async for entry in storage.scan()], key=lambda e: e.name)


async def read(storage: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.open_range(key)])


def orphan_key(study: Study) -> str:
    return f"studies/{study.id}/{uuid.uuid4()}"


async def tus_upload(
    client: httpx.AsyncClient,
    study: Study,
    headers: dict[str, str],
    data: bytes,
    sent: int,
    filename: str = "t.fastq",
) -> str:
    """A tus upload of ``data`` with its first ``sent`` bytes written; its location."""
    encoded = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in {"study": study.accession, "sample_id": "S1", "filename": filename}.items()
    )
    tus = {**headers, "Tus-Resumable": "1.0.0"}
    created = await client.post(
        UPLOADS, headers={**tus, "Upload-Length": str(len(data)), "Upload-Metadata": encoded}
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    patched = await client.patch(
        location,
        headers={
            **tus,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
        },
        content=data[:sent],
    )
    assert patched.status_code == 204, patched.text
    return location


class TestClean:
    async def test_stored_files_and_running_uploads_are_clean(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        study: Study,
        headers: dict[str, str],
    ) -> None:
        """A stored file and an unfinished tus upload, however old, are no orphans."""
        await put_file(client, study, headers, "a.fastq.gz", GOOD_GZ)
        await tus_upload(client, study, headers, records(300), 1000)

        report = await run(app, later=True, verify=True, repair=True)
        assert report.problems == []
        assert report.clean
        assert (report.objects, report.files, report.uploads, report.verified) == (1, 1, 1, 1)
        assert report.temporary == 1  # the tus upload's data

    async def test_every_row_is_checked_across_pages(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
        study: Study,
        headers: dict[str, str],
        stored_file: StoredFile,
    ) -> None:
        """Rows are read in pages by id (here of one row): none is skipped or read twice."""
        monkeypatch.setattr(fsck, "ROW_PAGE", 1)
        for name in ("a.fastq.gz", "b.fastq.gz", "c.fastq.gz"):
            await stored_file(name)
        for name in ("t1.fastq", "t2.fastq"):
            await tus_upload(client, study, headers, records(300), 1000, filename=name)

        report = await run(app, later=True, verify=True)
        assert report.problems == []
        assert (report.objects, report.files, report.uploads, report.verified) == (3, 3, 2, 3)
        assert report.temporary == 2


class TestOrphans:
    async def test_an_object_with_no_row_is_an_orphan_once_past_the_grace_period(
        self, app: FastAPI, storage: Storage, study: Study
    ) -> None:
        key = orphan_key(study)
        await put_object(storage, key, b"left behind by a crash before the row's commit")

        young = await run(app, repair=True)
        assert young.problems == []
        assert young.in_grace == 1
        assert await storage.exists(key)

        old = await run(app, later=True)
        assert kinds(old) == [("orphan_object", key)]
        assert "no file or upload row" in old.problems[0].detail
        assert not old.problems[0].removed
        assert await storage.exists(key)

    async def test_temporary_data_with_no_row_is_removed_only_when_old(
        self, app: FastAPI, storage: Storage, study: Study
    ) -> None:
        """A whole-file write under way (on S3: a multipart upload, once a part is sent) and a
        tus write whose row is gone: kept while young, orphans after the grace period."""
        plain = await storage.open_writer(orphan_key(study))
        await plain.write(os.urandom(8 * 1024 * 1024 + 10))
        resumable = await storage.open_resumable(orphan_key(study))
        await resumable.write(b"@r1\nACGT\n+\nIIII\n")
        await resumable.flush()
        await resumable.release()
        if isinstance(plain, ResumableWriter):  # local: let go of the file, as a crash does
            await plain.release()

        young = await run(app, repair=True)
        assert young.problems == []
        assert young.in_grace == 2
        assert len(await entries(storage)) == 2

        old = await run(app, later=True, repair=True)
        assert [p.kind for p in old.problems] == [ProblemKind.ORPHAN_TEMPORARY] * 2
        assert all(problem.removed for problem in old.problems)
        assert await entries(storage) == []
        assert (await run(app, later=True)).clean
        await plain.abort()

    async def test_repair_removes_orphans_only(
        self,
        app: FastAPI,
        session: AsyncSession,
        storage: Storage,
        study: Study,
        stored_file: StoredFile,
    ) -> None:
        """Orphans go; a missing object, a corrupt one and every row stay, reported."""
        _, kept_key = await stored_file("kept.fastq.gz")
        _, corrupt_key = await stored_file("corrupt.fastq.gz")
        _, missing_key = await stored_file("missing.fastq.gz")
        orphan = orphan_key(study)
        await put_object(storage, orphan, b"orphan")
        flipped = bytearray(GOOD_GZ)
        flipped[100] ^= 0xFF
        await put_object(storage, corrupt_key, bytes(flipped))
        await storage.delete(missing_key)
        files_before = await session.scalar(select(func.count(SampleFile.id)))

        report = await run(app, later=True, verify=True, repair=True)

        assert kinds(report) == sorted(
            [
                ("orphan_object", orphan),
                ("checksum_mismatch", corrupt_key),
                ("missing_object", missing_key),
            ]
        )
        removed = {p.key for p in report.problems if p.removed}
        assert removed == {orphan}
        assert not await storage.exists(orphan)
        assert await read(storage, corrupt_key) == bytes(flipped)
        assert await read(storage, kept_key) == GOOD_GZ
        assert await session.scalar(select(func.count(SampleFile.id))) == files_before

    async def test_nothing_outside_the_keys_it_makes_is_looked_at(
        self, app: FastAPI, storage: Storage
    ) -> None:
        """The bucket or directory may hold other things: only ``studies/`` is fsck's."""
        assert new_storage_key(uuid.uuid4()).startswith(fsck.SCANNED_PREFIX)
        await put_object(storage, "backups/2026/dump", b"not ours")
        report = await run(app, later=True, repair=True)
        assert (report.clean, report.objects) == (True, 0)
        assert await storage.exists("backups/2026/dump")


class TestRowsAgainstStorage:
    async def test_a_file_whose_object_is_gone_is_reported(
        self, app: FastAPI, session: AsyncSession, storage: Storage, stored_file: StoredFile
    ) -> None:
        file, key = await stored_file("a.fastq.gz")
        await storage.delete(key)

        report = await run(app, repair=True)
        assert kinds(report) == [("missing_object", key)]
        assert str(file.id) in report.problems[0].detail
        assert not report.problems[0].removed
        assert await session.get(SampleFile, file.id) is not None

    async def test_an_unfinished_upload_whose_data_is_gone_is_reported(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        session: AsyncSession,
        storage: Storage,
        study: Study,
        headers: dict[str, str],
    ) -> None:
        await tus_upload(client, study, headers, records(300), 1000)
        upload = await session.scalar(select(Upload).execution_options(populate_existing=True))
        assert upload is not None
        await storage.abort_state(upload.storage_key, upload.storage_state)

        report = await run(app)
        assert kinds(report) == [("missing_upload_data", upload.storage_key)]
        assert "0 of its 1000 recorded bytes" in report.problems[0].detail

    async def test_a_corrupt_object_is_found_by_verify_only(
        self, app: FastAPI, storage: Storage, stored_file: StoredFile
    ) -> None:
        _, key = await stored_file("a.fastq.gz")
        flipped = bytearray(GOOD_GZ)
        flipped[-20] ^= 0x01  # same size: only re-hashing tells
        await put_object(storage, key, bytes(flipped))

        assert (await run(app)).clean
        report = await run(app, verify=True)
        assert kinds(report) == [("checksum_mismatch", key)]
        detail = report.problems[0].detail
        assert f"recorded {md5(GOOD_GZ)}" in detail
        assert "sha256" in detail
        assert report.verified == 1

    async def test_an_object_of_the_wrong_size_is_reported_without_verify(
        self, app: FastAPI, storage: Storage, stored_file: StoredFile
    ) -> None:
        _, key = await stored_file("a.fastq.gz")
        await put_object(storage, key, GOOD_GZ[:-1])

        report = await run(app)
        assert kinds(report) == [("size_mismatch", key)]
        assert f"object has {len(GOOD_GZ) - 1} bytes" in report.problems[0].detail


class TestReportShape:
    async def test_json_shape(self, app: FastAPI, storage: Storage, study: Study) -> None:
        key = orphan_key(study)
        await put_object(storage, key, b"x")
        report = await run(app, later=True, repair=True)
        shape = json.loads(json.dumps(report.as_dict()))
        assert shape == {
            "clean": False,
            "storage": storage.backend,
            "verify": False,
            "repair": True,
            "grace_seconds": GRACE.total_seconds(),
            "counts": {
                "objects": 1,
                "temporary": 0,
                "in_grace": 0,
                "files": 0,
                "uploads": 0,
                "verified": 0,
                "problems": 1,
                "removed": 1,
            },
            "problems": [
                {
                    "kind": "orphan_object",
                    "key": key,
                    "detail": shape["problems"][0]["detail"],
                    "removed": True,
                }
            ],
        }


class TestSweep:
    async def test_the_lifespan_sweep_removes_old_orphans(
        self,
        app: FastAPI,
        storage: Storage,
        study: Study,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        key = orphan_key(study)
        await put_object(storage, key, b"orphan")
        await session.commit()
        app.state.files_config = FilesConfig(orphan_sweep_interval_seconds=0.05)
        monkeypatch.setattr(fsck, "utcnow", lambda: utcnow() + PAST_GRACE)
        swept = anyio.Event()
        original = fsck.sweep_orphans

        async def reporting(*args: Any, **kwargs: Any) -> Report:
            report = await original(*args, **kwargs)
            if report.removed:
                swept.set()
            return report

        monkeypatch.setattr(fsck, "sweep_orphans", reporting)
        async with orphan_sweep(app):
            with anyio.fail_after(60):
                await swept.wait()
        assert not await storage.exists(key)

    async def test_the_sweep_leaves_young_orphans(
        self, app: FastAPI, storage: Storage, study: Study
    ) -> None:
        key = orphan_key(study)
        await put_object(storage, key, b"maybe a running upload's")
        report = await sweep_orphans(app.state.sessionmaker, storage, grace=GRACE)
        assert (report.removed, report.in_grace) == (0, 1)
        assert await storage.exists(key)


# ---------------------------------------------------------------------------------------------
# Real processes: the command line, and a server killed mid-upload (issue 13, item 7).


def fsck_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "fsck", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def migrated(scratch_database_url: str) -> str:
    await anyio.to_thread.run_sync(upgrade_database, scratch_database_url)
    return scratch_database_url


def command_environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
    }


async def test_the_command_line(migrated: str, tmp_path: Path) -> None:
    env = command_environment(migrated, tmp_path)
    clean = await anyio.to_thread.run_sync(lambda: fsck_command(env))
    assert clean.returncode == 0, clean.stderr
    assert "clean: no problems found" in clean.stdout

    storage = LocalStorage(tmp_path / "data" / "objects")
    key = f"studies/{uuid.uuid4()}/{uuid.uuid4()}"
    await put_object(storage, key, b"an orphan")
    path = storage.local_path(key)
    assert path is not None
    old = (utcnow() - PAST_GRACE).timestamp()
    os.utime(path, (old, old))

    found = await anyio.to_thread.run_sync(lambda: fsck_command(env, "--json"))
    assert found.returncode == 1, found.stderr
    report = json.loads(found.stdout)  # nothing else on stdout
    assert report["counts"]["problems"] == 1
    assert report["problems"][0] == {
        "kind": "orphan_object",
        "key": key,
        "detail": report["problems"][0]["detail"],
        "removed": False,
    }
    assert path.exists()

    repaired = await anyio.to_thread.run_sync(lambda: fsck_command(env, "--repair"))
    assert repaired.returncode == 1, repaired.stderr
    assert f"orphan_object: {key}" in repaired.stdout
    assert "[removed]" in repaired.stdout
    assert not path.exists()
    again = await anyio.to_thread.run_sync(lambda: fsck_command(env, "--verify", "--json"))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["clean"] is True


async def test_the_command_line_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    env = command_environment(f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}", tmp_path)
    unmigrated = await anyio.to_thread.run_sync(lambda: fsck_command(env))
    assert unmigrated.returncode == 2
    assert "fsck cannot run" in unmigrated.stderr
    usage = await anyio.to_thread.run_sync(lambda: fsck_command(env, "--fix-everything"))
    assert usage.returncode == 2


async def test_a_server_killed_mid_upload_leaves_data_the_sweep_removes(
    scratch_database_url: str,
    tmp_path: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kill -9 while a PUT streams: its temporary data (a temp file, or on S3 a multipart
    upload) stays. fsck leaves it while it may be a running upload's, reports it once past the
    grace period, and the sweep removes it."""
    seed = await seed_database(scratch_database_url)
    server = ApiServer(
        scratch_database_url, tmp_path / "data", **backends.server_environment(settings)
    ).start()
    storage = build_storage(settings.model_copy(update={"data_dir": tmp_path / "data"}))
    await storage.startup()
    engine = create_engine(scratch_database_url)
    sessions = create_sessionmaker(engine)
    try:
        body = gz(records(20_000, length=150, seed=7)) + os.urandom(9 * 1024 * 1024)
        url = FILES.format(study=seed.accession, sample="S1") + "/killed.fastq.gz"
        connection = socket.create_connection(("127.0.0.1", server.port))
        request = [
            f"PUT {url} HTTP/1.1",
            f"Host: 127.0.0.1:{server.port}",
            f"Content-Length: {len(body) + 1_000_000}",
            *(f"{k}: {v}" for k, v in seed.headers.items()),
        ]
        head = ("\r\n".join(request) + "\r\n\r\n").encode()
        await anyio.to_thread.run_sync(connection.sendall, head + body)
        # Another process writes it: watch the storage until its first bytes are there.
        with anyio.fail_after(30):
            while True:
                if [e for e in await entries(storage) if e.temporary and e.size]:
                    break
                await anyio.sleep(0.05)
        server.kill()
        connection.close()

        (left,) = await entries(storage)
        if isinstance(storage, LocalStorage):
            assert left.name.endswith(".part")
        else:
            assert left.upload_id is not None  # a multipart upload in progress
        assert (await check(sessions, storage, grace=GRACE)).in_grace == 1
        report = await check(sessions, storage, grace=GRACE, now=utcnow() + PAST_GRACE)
        assert kinds(report) == [("orphan_temporary", left.name)]

        monkeypatch.setattr(fsck, "utcnow", lambda: utcnow() + PAST_GRACE)
        swept = await sweep_orphans(sessions, storage, grace=GRACE)
        assert swept.removed == 1
        assert await entries(storage) == []
        async with sessions() as session:
            assert await session.scalar(select(func.count(SampleFile.id))) == 0
    finally:
        server.close()
        await storage.close()
        await engine.dispose()
