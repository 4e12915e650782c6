"""tus 1.0 through the ASGI app: discovery, creation (with upload), HEAD, PATCH with offsets,
chunk checksums (460), whole-file checksums, expiry (410), termination, leases, ownership, and a
process that did not see the earlier chunks continuing an upload."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from tusclient.client import TusClient
from tusclient.uploader import Uploader

from src.auth.models import User
from src.config import Settings
from src.database import utcnow
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.tus import cleanup
from src.sampleFileUpload.tus.cleanup import finish_stranded_uploads, upload_cleanup
from src.sampleFileUpload.tus.protocol import ChunkResult
from src.sampleFileUpload.tus.writer import ChunkWriter
from src.storage import LocalStorage
from src.study import counters
from src.study.constants import FileStatus, MemberRole, StudyStatus
from src.study.models import SampleFile, Study, StudyMember, Upload
from tests.factories import auth_headers, create_user
from tests.sampleFileUpload import backends
from tests.sampleFileUpload.backends import server_environment
from tests.sampleFileUpload.fastq_samples import GOOD_GZ, gz, md5, records, sha256
from tests.sampleFileUpload.files.test_uploads import stored_objects
from tests.sampleFileUpload.servers import ApiServer, Seed, seed_database
from tests.study.factories import add_member, create_study
from tests.test_busy import add_user, assert_busy, client_of, one_connection, pool_held

UPLOADS = "/api/v1/uploads"
TUS = {"Tus-Resumable": "1.0.0"}
PATCH_TYPE = {"Content-Type": "application/offset+octet-stream"}


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


# Every test runs on local disk and on S3 (see backends.py).
settings = backends.settings


async def revoke_access(session: AsyncSession, user: User) -> None:
    """``user`` is no longer a member of any study (committed), without their uploads ending."""
    await session.execute(delete(StudyMember).where(StudyMember.user_id == user.id))
    await session.commit()


async def leave_draft(session: AsyncSession, study: Study) -> None:
    """``study`` is in review (committed), without its uploads ending."""
    await session.execute(
        update(Study).where(Study.id == study.id).values(status=StudyStatus.IN_REVIEW)
    )
    await counters.status_changed(
        session, owner_id=study.owner_id, old=StudyStatus.DRAFT, new=StudyStatus.IN_REVIEW
    )
    await session.commit()


async def create(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    study: Study,
    length: int,
    filename: str = "S1_R1.fastq.gz",
    **extra: str,
) -> httpx.Response:
    return await client.post(
        UPLOADS,
        headers={
            **headers,
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(
                study=study.accession, sample_id="S1", filename=filename, **extra
            ),
        },
    )


async def patch(
    client: httpx.AsyncClient,
    location: str,
    headers: dict[str, str],
    offset: int,
    chunk: bytes,
    **extra: str,
) -> httpx.Response:
    return await client.patch(
        location,
        headers={**headers, **PATCH_TYPE, "Upload-Offset": str(offset), **extra},
        content=chunk,
    )


def checksum(algorithm: str, chunk: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, chunk).digest()).decode()}"


async def upload_in_chunks(
    client: httpx.AsyncClient, location: str, headers: dict[str, str], data: bytes, size: int
) -> httpx.Response:
    response = None
    for offset in range(0, len(data), size):
        response = await patch(client, location, headers, offset, data[offset : offset + size])
        assert response.status_code == 204, response.text
    assert response is not None
    return response


class TestDiscovery:
    async def test_options_lists_version_extensions_and_limits(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.options(UPLOADS)
        assert response.status_code == 204
        assert response.headers["tus-resumable"] == "1.0.0"
        assert response.headers["tus-version"] == "1.0.0"
        extensions = set(response.headers["tus-extension"].split(","))
        assert extensions == {
            "creation",
            "creation-with-upload",
            "termination",
            "checksum",
            "expiration",
        }
        assert int(response.headers["tus-max-size"]) == FilesConfig().max_upload_bytes
        assert response.headers["tus-checksum-algorithm"] == "md5,sha1,sha256"

    async def test_other_version_is_412(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        response = await client.post(
            UPLOADS, headers={**headers, "Tus-Resumable": "0.2.2", "Upload-Length": "10"}
        )
        assert (response.status_code, response.json()["code"]) == (412, "TUS_VERSION_UNSUPPORTED")
        assert response.headers["tus-version"] == "1.0.0"
        assert response.headers["tus-resumable"] == "1.0.0"

    async def test_errors_carry_tus_resumable_and_the_envelope(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.head(f"{UPLOADS}/{uuid.uuid4()}", headers=TUS)
        assert response.status_code == 401
        assert response.headers["tus-resumable"] == "1.0.0"
        response = await client.delete(f"{UPLOADS}/{uuid.uuid4()}", headers=TUS)
        assert response.status_code == 401
        assert response.headers["tus-resumable"] == "1.0.0"
        body = response.json()
        assert body["code"] == "INVALID_TOKEN"
        assert body["request_id"] == response.headers["x-request-id"]
        assert body["detail"]

    async def test_an_error_with_details_keeps_its_code_and_errors(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        response = await client.post(
            UPLOADS, headers={**headers, "Upload-Length": "10", "Upload-Metadata": metadata()}
        )
        assert response.status_code == 400
        assert response.headers["tus-resumable"] == "1.0.0"
        body = response.json()
        assert body["code"] == "INVALID_UPLOAD_REQUEST"
        assert body["request_id"] == response.headers["x-request-id"]
        assert body["errors"] == [
            {"field": name, "message": "required"} for name in ("study", "sample_id", "filename")
        ]


class TestUpload:
    async def test_chunks_with_checksums_make_a_valid_file(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        data = gz(records(3000))
        created = await create(client, headers, study, len(data), md5=md5(data))
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert location.startswith(f"{UPLOADS}/")
        assert created.headers["upload-expires"].endswith("GMT")
        head = await client.head(location, headers=headers)
        assert head.status_code == 200
        assert (head.headers["upload-offset"], head.headers["upload-length"]) == (
            "0",
            str(len(data)),
        )
        assert head.headers["cache-control"] == "no-store"
        size = len(data) // 3 + 1
        last = None
        for offset in range(0, len(data), size):
            chunk = data[offset : offset + size]
            last = await patch(
                client,
                location,
                headers,
                offset,
                chunk,
                **{"Upload-Checksum": checksum("sha1", chunk)},
            )
            assert last.status_code == 204, last.text
            assert last.headers["upload-offset"] == str(offset + len(chunk))
        assert last is not None
        file_id = last.headers["upload-file-id"]
        file = await client.get(f"/api/v1/files/{file_id}", headers=headers)
        body = file.json()
        assert (body["status"], body["read"], body["read_count"]) == ("valid", "R1", 3000)
        assert (body["md5"], body["sha256"], body["size"]) == (md5(data), sha256(data), len(data))
        # The upload is kept, finished, until it expires: HEAD says it is done.
        (kept,) = (await session.scalars(select(Upload))).all()
        assert kept.finished_at is not None
        assert (kept.offset, kept.storage_state, kept.lease_token) == (len(data), {}, None)
        done = await client.head(location, headers=headers)
        assert done.status_code == 200
        assert done.headers["upload-offset"] == done.headers["upload-length"] == str(len(data))
        assert done.headers["upload-file-id"] == file_id

    async def test_creation_with_upload(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        created = await client.post(
            UPLOADS,
            headers={
                **headers,
                **PATCH_TYPE,
                "Upload-Length": str(len(GOOD_GZ)),
                "Upload-Metadata": metadata(
                    study=str(study.id), sample_id="s1", filename="one.fq.gz"
                ),
            },
            content=GOOD_GZ,
        )
        assert created.status_code == 201, created.text
        assert created.headers["upload-offset"] == str(len(GOOD_GZ))
        file = await client.get(
            f"/api/v1/files/{created.headers['upload-file-id']}", headers=headers
        )
        assert file.json()["status"] == "valid"

    async def test_empty_upload_is_finished_at_creation_and_invalid(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        created = await create(client, headers, study, 0, filename="empty.fastq")
        assert created.status_code == 201, created.text
        file = await client.get(
            f"/api/v1/files/{created.headers['upload-file-id']}", headers=headers
        )
        assert file.json()["status"] == "invalid"
        assert file.json()["errors"][0]["code"] == "FASTQ_EMPTY"

    async def test_broken_fastq_finishes_invalid(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        data = GOOD_GZ[: len(GOOD_GZ) // 2]
        location = (await create(client, headers, study, len(data))).headers["location"]
        last = await upload_in_chunks(client, location, headers, data, 1000)
        file = await client.get(f"/api/v1/files/{last.headers['upload-file-id']}", headers=headers)
        assert file.json()["status"] == "invalid"
        assert file.json()["errors"][0]["code"] == "GZIP_TRUNCATED"

    async def test_a_process_without_the_earlier_chunks_continues(
        self, client: httpx.AsyncClient, app: FastAPI, headers: dict[str, str], study: Study
    ) -> None:
        data = gz(records(2000))
        location = (await create(client, headers, study, len(data))).headers["location"]
        half = len(data) // 2
        assert (await patch(client, location, headers, 0, data[:half])).status_code == 204
        app.state.tus_cache = None  # forget the hashes and validator: rebuilt from storage
        last = await patch(client, location, headers, half, data[half:])
        assert last.status_code == 204, last.text
        file = await client.get(f"/api/v1/files/{last.headers['upload-file-id']}", headers=headers)
        assert (file.json()["status"], file.json()["md5"]) == ("valid", md5(data))


class TestStrandedUploads:
    """The process that received the last byte died before it recorded the file."""

    async def strand(
        self,
        client: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
        headers: dict[str, str],
        study: Study,
        data: bytes,
    ) -> str:
        location = (await create(client, headers, study, len(data))).headers["location"]
        half = len(data) // 2
        assert (await patch(client, location, headers, 0, data[:half])).status_code == 204

        async def dies(*args: object, **kwargs: object) -> ChunkResult:
            raise RuntimeError("the process died")

        with monkeypatch.context() as patched:
            patched.setattr(ChunkWriter, "finish", dies)
            with contextlib.suppress(RuntimeError):
                response = await patch(client, location, headers, half, data[half:])
                assert response.status_code == 500
        head = await client.head(location, headers=headers)
        assert head.headers["upload-offset"] == str(len(data))
        return location

    async def test_the_server_finishes_it_in_the_background(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        data = gz(records(3000))
        location = await self.strand(client, monkeypatch, headers, study, data)
        files = await client.get(
            f"/api/v1/studies/{study.accession}/samples/S1/files", headers=headers
        )
        assert [f["status"] for f in files.json()] == ["uploading"]

        assert await finish_stranded_uploads(app) == 1

        files = await client.get(
            f"/api/v1/studies/{study.accession}/samples/S1/files", headers=headers
        )
        (file,) = files.json()
        assert (file["status"], file["md5"], file["read_count"]) == ("valid", md5(data), 3000)
        unfinished = select(func.count(Upload.id)).where(Upload.finished_at.is_(None))
        assert await session.scalar(unfinished) == 0
        done = await client.head(location, headers=headers)
        assert done.status_code == 200
        assert done.headers["upload-offset"] == str(len(data))
        assert done.headers["upload-file-id"] == file["id"]
        assert await finish_stranded_uploads(app) == 0

    async def test_a_held_lease_is_left_alone(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        data = gz(records(500))
        await self.strand(client, monkeypatch, headers, study, data)
        await session.execute(
            update(Upload).values(
                lease_token="someone-else", lease_expires_at=utcnow() + timedelta(minutes=1)
            )
        )
        assert await finish_stranded_uploads(app) == 0
        await session.execute(
            update(Upload).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        assert await finish_stranded_uploads(app) == 1

    async def test_the_empty_patch_still_finishes_it(
        self,
        client: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        data = gz(records(500))
        location = await self.strand(client, monkeypatch, headers, study, data)
        last = await patch(client, location, headers, len(data), b"")
        assert last.status_code == 204, last.text
        file = await client.get(f"/api/v1/files/{last.headers['upload-file-id']}", headers=headers)
        assert (file.json()["status"], file.json()["md5"]) == ("valid", md5(data))

    async def test_the_lifespan_task_finishes_stranded_and_removes_expired_uploads(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        data = gz(records(500))
        await self.strand(client, monkeypatch, headers, study, data)
        expired = (await create(client, headers, study, 10, filename="old.fastq")).headers
        await session.execute(
            update(Upload)
            .where(Upload.filename == "old.fastq")
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        # The task runs every min(interval, lease) = 0.05 s; a 5 s lease is not renewed while
        # the small upload is finished (in tests every session shares one connection).
        app.state.files_config = FilesConfig(tus_cleanup_interval_seconds=0.05, tus_lease_seconds=5)
        # The test's session shares one connection with the task's: end its transaction, and
        # instead of polling the database meanwhile, wait until each step of the task reports
        # its one upload done.
        await session.commit()
        done = {"finish_stranded_uploads": anyio.Event(), "remove_expired_uploads": anyio.Event()}
        for name, event in done.items():
            original = getattr(cleanup, name)

            async def reporting(*args: Any, _original: Any = original, _event: Any = event) -> int:
                count = int(await _original(*args))
                if count:
                    _event.set()
                return count

            monkeypatch.setattr(cleanup, name, reporting)
        async with upload_cleanup(app):
            with anyio.fail_after(60):
                for event in done.values():
                    await event.wait()
        unfinished = select(func.count(Upload.id)).where(Upload.finished_at.is_(None))
        assert await session.scalar(unfinished) == 0
        (file,) = (
            await client.get(f"/api/v1/studies/{study.accession}/samples/S1/files", headers=headers)
        ).json()
        assert (file["filename"], file["status"], file["md5"]) == (
            "S1_R1.fastq.gz",
            "valid",
            md5(data),
        )
        assert (await client.head(expired["location"], headers=headers)).status_code == 404


class TestRefusals:
    async def test_wrong_offset_is_409(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        location = (await create(client, headers, study, len(GOOD_GZ))).headers["location"]
        response = await patch(client, location, headers, 5, GOOD_GZ[5:10])
        assert response.status_code == 409
        assert response.json()["code"] == "OFFSET_MISMATCH"
        assert response.headers["tus-resumable"] == "1.0.0"

    async def test_chunk_checksum_mismatch_is_460_and_discarded(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        location = (await create(client, headers, study, len(GOOD_GZ))).headers["location"]
        first = GOOD_GZ[:1000]
        response = await patch(
            client, location, headers, 0, first, **{"Upload-Checksum": checksum("md5", b"x")}
        )
        assert response.status_code == 460
        assert response.json()["code"] == "CHUNK_CHECKSUM_MISMATCH"
        assert (await client.head(location, headers=headers)).headers["upload-offset"] == "0"
        last = await upload_in_chunks(client, location, headers, GOOD_GZ, 5000)
        file = await client.get(f"/api/v1/files/{last.headers['upload-file-id']}", headers=headers)
        assert file.json()["md5"] == md5(GOOD_GZ)

    async def test_unsupported_checksum_algorithm(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        location = (await create(client, headers, study, len(GOOD_GZ))).headers["location"]
        response = await patch(
            client, location, headers, 0, b"x", **{"Upload-Checksum": "crc32 AAAAAA=="}
        )
        assert (response.status_code, response.json()["code"]) == (
            400,
            "UNSUPPORTED_CHECKSUM_ALGORITHM",
        )

    async def test_whole_file_checksum_mismatch_keeps_nothing(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        created = await create(client, headers, study, len(GOOD_GZ), sha256=sha256(b"other"))
        location = created.headers["location"]
        response = await patch(client, location, headers, 0, GOOD_GZ)
        assert response.status_code == 422
        assert response.json()["code"] == "CHECKSUM_MISMATCH"
        assert await session.scalar(select(func.count(SampleFile.id))) == 0
        assert await session.scalar(select(func.count(Upload.id))) == 0
        assert await stored_objects(app.state.storage) == []
        assert (await client.head(location, headers=headers)).status_code == 404

    async def test_wrong_content_type_is_415(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        location = (await create(client, headers, study, 10)).headers["location"]
        response = await client.patch(
            location, headers={**headers, "Upload-Offset": "0"}, content=b"x"
        )
        assert (response.status_code, response.json()["code"]) == (415, "INVALID_CONTENT_TYPE")

    async def test_chunk_past_the_length_is_413(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        location = (await create(client, headers, study, 10)).headers["location"]
        response = await patch(client, location, headers, 0, b"x" * 11)
        assert (response.status_code, response.json()["code"]) == (413, "FILE_TOO_LARGE")

    async def test_another_users_upload_is_404(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        location = (await create(client, headers, study, 10)).headers["location"]
        other = {**auth_headers(settings, await create_user(session)), **TUS}
        assert (await client.head(location, headers=other)).status_code == 404
        for response in (
            await patch(client, location, other, 0, b"x"),
            await client.delete(location, headers=other),
        ):
            assert response.status_code == 404
            assert response.json()["code"] == "UPLOAD_NOT_FOUND"
        assert (await client.head(f"{UPLOADS}/not-a-uuid", headers=headers)).status_code == 404

    async def test_expired_upload_is_410_then_gone(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        location = (await create(client, headers, study, len(GOOD_GZ))).headers["location"]
        assert (await patch(client, location, headers, 0, GOOD_GZ[:100])).status_code == 204
        await session.execute(update(Upload).values(expires_at=utcnow() - timedelta(minutes=1)))
        response = await patch(client, location, headers, 100, GOOD_GZ[100:200])
        assert response.status_code == 410
        assert response.json()["code"] == "UPLOAD_EXPIRED"
        assert await session.scalar(select(func.count(SampleFile.id))) == 0
        assert await stored_objects(app.state.storage) == []
        assert (await client.head(location, headers=headers)).status_code == 404

    async def test_a_held_lease_is_423(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        location = (await create(client, headers, study, 10)).headers["location"]
        await session.execute(
            update(Upload).values(
                lease_token="x" * 32, lease_expires_at=utcnow() + timedelta(minutes=1)
            )
        )
        response = await patch(client, location, headers, 0, b"@")
        assert response.status_code == 423
        assert response.json()["code"] == "UPLOAD_LOCKED"
        await session.execute(
            update(Upload).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        assert (await patch(client, location, headers, 0, b"@")).status_code == 204

    async def test_a_writer_that_outlived_its_lease_still_fences_local_files(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        data = gz(records(400))
        location = (await create(client, headers, study, len(data))).headers["location"]
        assert (await patch(client, location, headers, 0, data[:1000])).status_code == 204
        upload = await session.scalar(select(Upload))
        assert upload is not None
        storage = app.state.storage
        # A process paused mid-PATCH: its lease ran out, but it still has the upload open.
        stalled = await storage.resume_writer(upload.storage_key, upload.storage_state)
        try:
            response = await patch(client, location, headers, 1000, data[1000:])
            if isinstance(storage, LocalStorage):
                assert response.status_code == 423, response.text
                assert response.json()["code"] == "UPLOAD_LOCKED"
                head = await client.head(location, headers=headers)
                assert head.headers["upload-offset"] == "1000"
            else:  # S3 has no such lock (see src/storage.py)
                assert response.status_code == 204, response.text
        finally:
            await stalled.release()
        if isinstance(storage, LocalStorage):
            last = await patch(client, location, headers, 1000, data[1000:])
            assert last.status_code == 204, last.text
        else:
            last = response
        file = await client.get(f"/api/v1/files/{last.headers['upload-file-id']}", headers=headers)
        assert (file.json()["status"], file.json()["md5"]) == ("valid", md5(data))

    async def test_termination(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        location = (await create(client, headers, study, len(GOOD_GZ))).headers["location"]
        assert (await patch(client, location, headers, 0, GOOD_GZ[:500])).status_code == 204
        assert await session.scalar(select(func.count(SampleFile.id))) == 1
        response = await client.delete(location, headers=headers)
        assert response.status_code == 204
        assert response.headers["tus-resumable"] == "1.0.0"
        assert await session.scalar(select(func.count(SampleFile.id))) == 0
        assert await stored_objects(app.state.storage) == []
        assert (await client.head(location, headers=headers)).status_code == 404


class TestBusy:
    """The suite's database with a pool of one connection, held by the test: every tus request,
    reading or writing, is 503 SERVICE_BUSY, and still speaks tus."""

    async def test_a_busy_database_is_503_with_tus_resumable(
        self, scratch_database_url: str, tmp_path: Path
    ) -> None:
        async with one_connection(scratch_database_url, tmp_path / "data") as app:
            user = await add_user(app)
            headers = {**auth_headers(app.state.settings, user), **TUS}
            location = f"{UPLOADS}/{uuid.uuid4()}"
            async with client_of(app) as client, pool_held(app):
                created = await client.post(
                    UPLOADS,
                    headers={
                        **headers,
                        "Upload-Length": "10",
                        "Upload-Metadata": metadata(
                            study="MSC000001", sample_id="S1", filename="a.fastq"
                        ),
                    },
                )
                patched = await client.patch(
                    location,
                    headers={**headers, **PATCH_TYPE, "Upload-Offset": "0"},
                    content=b"@",
                )
                head = await client.head(location, headers=headers)
                deleted = await client.delete(location, headers=headers)
            for response in (created, patched, deleted):
                assert_busy(response)
            assert (head.status_code, head.headers["Retry-After"]) == (503, "2")
            for response in (created, patched, head, deleted):
                assert response.headers["tus-resumable"] == "1.0.0"


class TestCreationChecks:
    async def test_unfinished_upload_shows_as_an_uploading_file(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        await create(client, headers, study, 100)
        file = await session.scalar(select(SampleFile))
        assert file is not None
        assert file.status == FileStatus.UPLOADING
        readiness = await client.get(
            f"/api/v1/studies/{study.accession}/readiness", headers=headers
        )
        codes = {problem["code"] for problem in readiness.json()["problems"]}
        assert "FILE_UPLOADING" in codes

    async def test_missing_metadata_is_400(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        response = await client.post(
            UPLOADS, headers={**headers, "Upload-Length": "10", "Upload-Metadata": metadata()}
        )
        assert response.status_code == 400
        assert {e["field"] for e in response.json()["errors"]} == {
            "study",
            "sample_id",
            "filename",
        }

    async def test_missing_length_is_400(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        response = await client.post(UPLOADS, headers=headers)
        assert (response.status_code, response.json()["code"]) == (400, "INVALID_UPLOAD_REQUEST")

    @pytest.mark.parametrize(
        ("filename", "status", "code"),
        [
            ("../../etc/passwd", 422, "INVALID_FILENAME"),
            ("x" * 300 + ".fq", 422, "INVALID_FILENAME"),
            ("a\x00.fq", 422, "INVALID_FILENAME"),
            ("reads.bam", 415, "UNSUPPORTED_FILE_TYPE"),
        ],
    )
    async def test_bad_names(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
        filename: str,
        status: int,
        code: str,
    ) -> None:
        response = await create(client, headers, study, 10, filename=filename)
        assert response.status_code == status
        assert response.json()["code"] == code
        assert await session.scalar(select(func.count(Upload.id))) == 0

    async def test_too_large_and_quota(
        self, client: httpx.AsyncClient, app: FastAPI, headers: dict[str, str], study: Study
    ) -> None:
        app.state.files_config = FilesConfig(max_upload_bytes=1000, storage_quota_bytes=1500)
        response = await create(client, headers, study, 1001)
        assert (response.status_code, response.json()["code"]) == (413, "FILE_TOO_LARGE")
        assert (await create(client, headers, study, 900, filename="a.fq")).status_code == 201
        response = await create(client, headers, study, 900, filename="b.fq")
        assert (response.status_code, response.json()["code"]) == (413, "QUOTA_EXCEEDED")

    async def test_locked_study_and_strangers(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        owner: User,
        headers: dict[str, str],
    ) -> None:
        locked = await create_study(session, owner=owner, samples=1, status=StudyStatus.IN_REVIEW)
        refused = await create(client, headers, locked, 10)
        assert (refused.status_code, refused.json()["code"]) == (409, "STUDY_LOCKED")
        draft = await create_study(session, owner=owner, samples=1)
        stranger = {**auth_headers(settings, await create_user(session)), **TUS}
        refused = await create(client, stranger, draft, 10)
        assert (refused.status_code, refused.json()["code"]) == (404, "STUDY_NOT_FOUND")
        anonymous = await create(client, TUS, draft, 10)
        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "INVALID_TOKEN")

    async def test_same_name_as_an_existing_file(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        assert (await create(client, headers, study, 10, filename="a.fq")).status_code == 201
        response = await create(client, headers, study, 10, filename="a.fq")
        assert (response.status_code, response.json()["code"]) == (409, "FILE_EXISTS")


class TestFinishedUploads:
    """API.md: a finished upload answers HEAD (and an idempotent PATCH) with Upload-Offset =
    Upload-Length and Upload-File-Id until it expires; it then goes, its file staying."""

    async def finished(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> tuple[str, str]:
        location = (await create(client, headers, study, len(GOOD_GZ))).headers["location"]
        last = await patch(client, location, headers, 0, GOOD_GZ)
        assert last.status_code == 204, last.text
        return location, last.headers["upload-file-id"]

    async def test_head_says_done_with_the_file_id(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        location, file_id = await self.finished(client, headers, study)
        response = await client.head(location, headers=headers)
        assert response.status_code == 200
        assert response.headers["upload-offset"] == str(len(GOOD_GZ))
        assert response.headers["upload-length"] == str(len(GOOD_GZ))
        assert response.headers["upload-file-id"] == file_id
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["tus-resumable"] == "1.0.0"

    async def test_patch_at_the_length_is_204_again_and_writes_nothing(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        location, file_id = await self.finished(client, headers, study)
        for body in (b"", b""):
            again = await patch(client, location, headers, len(GOOD_GZ), body)
            assert again.status_code == 204, again.text
            assert again.headers["upload-offset"] == str(len(GOOD_GZ))
            assert again.headers["upload-file-id"] == file_id
        (file,) = (await session.scalars(select(SampleFile))).all()
        assert (str(file.id), file.status, file.size) == (file_id, FileStatus.VALID, len(GOOD_GZ))

    async def test_patch_at_another_offset_is_409(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        location, _ = await self.finished(client, headers, study)
        for offset in (0, 10, len(GOOD_GZ) + 1):
            response = await patch(client, location, headers, offset, b"x")
            assert response.status_code == 409, (offset, response.text)
            assert response.json()["code"] == "OFFSET_MISMATCH"
            assert response.headers["upload-offset"] == str(len(GOOD_GZ))

    async def test_a_finished_upload_reserves_no_quota_and_is_not_uploading(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        await self.finished(client, headers, study)
        # The file's bytes count once (as the file), not again as a reservation.
        app.state.files_config = FilesConfig(storage_quota_bytes=2 * len(GOOD_GZ))
        response = await create(client, headers, study, len(GOOD_GZ), filename="S1_R2.fastq.gz")
        assert response.status_code == 201, response.text
        await client.delete(response.headers["location"], headers=headers)
        readiness = await client.get(
            f"/api/v1/studies/{study.accession}/readiness", headers=headers
        )
        assert readiness.status_code == 200
        codes = {problem["code"] for problem in readiness.json()["problems"]}
        assert "FILE_UPLOADING" not in codes, readiness.json()

    async def test_expiry_removes_the_row_and_keeps_the_file(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        location, file_id = await self.finished(client, headers, study)
        # The stranded-upload finisher leaves a finished upload alone.
        assert await finish_stranded_uploads(app) == 0
        await session.execute(update(Upload).values(expires_at=utcnow() - timedelta(minutes=1)))
        await session.commit()
        assert await cleanup.remove_expired_uploads(app.state.sessionmaker, app.state.storage) == 1
        assert await session.scalar(select(func.count(Upload.id))) == 0
        assert (await client.head(location, headers=headers)).status_code == 404
        file = await client.get(f"/api/v1/files/{file_id}", headers=headers)
        assert (file.status_code, file.json()["status"]) == (200, "valid")
        download = await client.get(f"/api/v1/files/{file_id}/download", headers=headers)
        assert (download.status_code, download.content) == (200, GOOD_GZ)

    async def test_expired_on_access_is_410_and_keeps_the_file(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        location, file_id = await self.finished(client, headers, study)
        await session.execute(update(Upload).values(expires_at=utcnow() - timedelta(minutes=1)))
        assert (await client.head(location, headers=headers)).status_code == 410
        download = await client.get(f"/api/v1/files/{file_id}/download", headers=headers)
        assert (download.status_code, download.content) == (200, GOOD_GZ)

    async def test_deleting_the_file_ends_the_upload(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        location, file_id = await self.finished(client, headers, study)
        assert (await client.delete(f"/api/v1/files/{file_id}", headers=headers)).status_code == 204
        assert (await client.head(location, headers=headers)).status_code == 404
        again = await create(client, headers, study, len(GOOD_GZ))
        assert again.status_code == 201, again.text


class TestProtocolDetails:
    async def test_trailing_slash_is_the_same_endpoint(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        options = await client.options(f"{UPLOADS}/")
        assert options.status_code == 204
        assert options.headers["tus-version"] == "1.0.0"
        response = await client.post(
            f"{UPLOADS}/",
            headers={
                **headers,
                "Upload-Length": str(len(GOOD_GZ)),
                "Upload-Metadata": metadata(
                    study=study.accession, sample_id="S1", filename="S1_R1.fastq.gz"
                ),
            },
        )
        assert response.status_code == 201, response.text
        location = response.headers["location"]
        assert location.startswith(f"{UPLOADS}/")
        assert "//" not in location
        done = await patch(client, location, headers, 0, GOOD_GZ)
        assert done.status_code == 204
        assert done.headers["upload-file-id"]

    async def test_trailing_slash_alias_is_not_documented(self, app: FastAPI) -> None:
        paths = app.openapi()["paths"]
        assert "/api/v1/uploads/" not in paths
        assert set(paths["/api/v1/uploads"]) == {"options", "post"}

    async def test_head_returns_upload_metadata_as_sent(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        sent = metadata(study=study.accession, sample_id="S1", filename="S1_R1.fastq.gz", read="R1")
        response = await client.post(
            UPLOADS,
            headers={**headers, "Upload-Length": str(len(GOOD_GZ)), "Upload-Metadata": sent},
        )
        location = response.headers["location"]
        assert (await client.head(location, headers=headers)).headers["upload-metadata"] == sent
        await patch(client, location, headers, 0, GOOD_GZ)
        assert (await client.head(location, headers=headers)).headers["upload-metadata"] == sent


class TestAuthorisationOnEveryRequest:
    """API.md: the caller must still edit the study, and the study still be a draft, on every
    HEAD and PATCH, before any byte is written."""

    async def test_a_removed_editor_can_no_longer_write(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        study: Study,
    ) -> None:
        editor = await create_user(session)
        await add_member(session, study=study, user=editor, role=MemberRole.EDITOR)
        headers = {**auth_headers(settings, editor), **TUS}
        location = (await create(client, headers, study, len(GOOD_GZ))).headers["location"]
        assert (await patch(client, location, headers, 0, GOOD_GZ[:100])).status_code == 204
        await revoke_access(session, editor)
        head = await client.head(location, headers=headers)
        assert head.status_code in (403, 404)
        response = await patch(client, location, headers, 100, GOOD_GZ[100:])
        assert response.status_code in (403, 404), response.text
        assert response.json()["code"] in ("FORBIDDEN", "STUDY_NOT_FOUND")
        upload = await session.scalar(select(Upload).execution_options(populate_existing=True))
        assert upload is not None
        assert upload.offset == 100
        # Made a viewer: still refused (403).
        await add_member(session, study=study, user=editor, role=MemberRole.VIEWER)
        await session.commit()
        response = await patch(client, location, headers, 100, GOOD_GZ[100:])
        assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN")
        # Termination is still the creator's.
        assert (await client.delete(location, headers=headers)).status_code == 204

    async def test_a_study_no_longer_a_draft_refuses_head_and_patch(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        location = (await create(client, headers, study, len(GOOD_GZ))).headers["location"]
        assert (await patch(client, location, headers, 0, GOOD_GZ[:100])).status_code == 204
        await leave_draft(session, study)
        for response in (
            await client.head(location, headers=headers),
            await patch(client, location, headers, 100, GOOD_GZ[100:]),
        ):
            assert response.status_code == 409
        response = await patch(client, location, headers, 100, GOOD_GZ[100:])
        assert response.json()["code"] == "STUDY_LOCKED"
        upload = await session.scalar(select(Upload).execution_options(populate_existing=True))
        assert upload is not None
        assert upload.offset == 100


# ---------------------------------------------------------------------------------------------
# Real processes: a real tus client, dropped connections, kill -9, two servers sharing one upload.


@pytest.fixture
async def real(
    scratch_database_url: str, tmp_path: Path, settings: Settings
) -> AsyncIterator[RealSetup]:
    seed = await seed_database(scratch_database_url)
    servers: list[ApiServer] = []
    environment = server_environment(settings)

    def server() -> ApiServer:
        started = ApiServer(scratch_database_url, tmp_path / "data", **environment).start()
        servers.append(started)
        return started

    try:
        yield RealSetup(seed=seed, server=server)
    finally:
        for started in servers:
            started.close()


@dataclass
class RealSetup:
    seed: Seed
    server: Callable[[], ApiServer]

    def metadata(self, filename: str) -> dict[str, str]:
        return {"study": self.seed.accession, "sample_id": "S1", "filename": filename}


def tus_uploader(
    base: str, setup: RealSetup, data: bytes, chunk_size: int, url: str | None = None
) -> Uploader:
    tus = TusClient(f"{base}{UPLOADS}", headers=setup.seed.headers)
    return tus.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=chunk_size,
        metadata=setup.metadata("real_R1.fastq.gz"),
        upload_checksum=True,
        url=url,
        retries=10,
        retry_delay=1,
    )


async def file_of(base: str, setup: RealSetup, file_id: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=base, headers=setup.seed.headers) as client:
        response = await client.get(f"/api/v1/files/{file_id}")
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        download = await client.get(f"/api/v1/files/{file_id}/download")
        assert download.content == DATA
        return body


def send_partial_patch(
    base: str, path: str, headers: dict[str, str], offset: int, body: bytes, claimed: int
) -> None:
    """A PATCH announcing ``claimed`` bytes that sends only ``body``, then drops the connection."""
    port = int(base.rsplit(":", 1)[1])
    lines = [
        f"PATCH {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Tus-Resumable: 1.0.0",
        "Content-Type: application/offset+octet-stream",
        f"Upload-Offset: {offset}",
        f"Content-Length: {claimed}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        time.sleep(0.5)


DATA = gz(records(40_000, seed=7))


async def head_offset(base: str, path: str, setup: RealSetup) -> int:
    async with httpx.AsyncClient(base_url=base, headers={**setup.seed.headers, **TUS}) as client:
        response = await client.head(path)
        assert response.status_code == 200
        return int(response.headers["upload-offset"])


class TestRealServers:
    async def test_tuspy_uploads_in_small_chunks(self, real: RealSetup) -> None:
        api = real.server()
        uploader = tus_uploader(api.url, real, DATA, chunk_size=256 * 1024)
        await anyio.to_thread.run_sync(uploader.upload)
        file_id = uploader.request.response_headers["upload-file-id"]
        body = await file_of(api.url, real, file_id)
        assert (body["status"], body["md5"], body["read_count"]) == ("valid", md5(DATA), 40_000)

    async def test_resume_after_a_dropped_connection(self, real: RealSetup) -> None:
        api = real.server()
        uploader = tus_uploader(api.url, real, DATA, chunk_size=300_000)
        await anyio.to_thread.run_sync(lambda: uploader.upload(stop_at=300_000))
        path = urlsplit(uploader.url).path
        await anyio.to_thread.run_sync(
            send_partial_patch,
            api.url,
            path,
            real.seed.headers,
            300_000,
            DATA[300_000:500_000],
            600_000,
        )
        # What arrived before the drop is kept (no Upload-Checksum): the client resumes there.
        offset = await head_offset(api.url, path, real)
        assert 300_000 <= offset <= 500_000
        resumed = tus_uploader(api.url, real, DATA, chunk_size=300_000, url=uploader.url)
        assert resumed.offset == offset
        await anyio.to_thread.run_sync(resumed.upload)
        body = await file_of(api.url, real, resumed.request.response_headers["upload-file-id"])
        assert (body["status"], body["sha256"]) == ("valid", sha256(DATA))

    async def test_resume_after_kill_9_and_restart(self, real: RealSetup) -> None:
        api = real.server()
        uploader = tus_uploader(api.url, real, DATA, chunk_size=250_000)
        await anyio.to_thread.run_sync(lambda: uploader.upload(stop_at=500_000))
        path = urlsplit(uploader.url).path
        port = int(api.url.rsplit(":", 1)[1])

        def die_mid_patch() -> None:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                head = (
                    f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                    "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 500000\r\n"
                    f"Content-Length: 400000\r\nAuthorization: {real.seed.headers['Authorization']}"
                    "\r\n\r\n"
                )
                sock.sendall(head.encode() + DATA[500_000:700_000])
                time.sleep(0.5)
                api.kill()

        await anyio.to_thread.run_sync(die_mid_patch)
        restarted = real.server()
        # Every acknowledged byte survived; the interrupted chunk is lost, nothing more.
        assert await head_offset(restarted.url, path, real) == 500_000
        resumed = tus_uploader(
            restarted.url, real, DATA, chunk_size=250_000, url=f"{restarted.url}{path}"
        )
        await anyio.to_thread.run_sync(resumed.upload)  # retries while the dead lease runs out
        body = await file_of(
            restarted.url, real, resumed.request.response_headers["upload-file-id"]
        )
        assert (body["status"], body["md5"]) == ("valid", md5(DATA))

    async def test_two_processes_alternate_chunks(self, real: RealSetup) -> None:
        first, second = real.server(), real.server()
        headers = {**real.seed.headers, **TUS}
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            created = await client.post(
                f"{first.url}{UPLOADS}",
                headers={
                    "Upload-Length": str(len(DATA)),
                    "Upload-Metadata": metadata(
                        study=real.seed.accession,
                        sample_id="S1",
                        filename="both.fq.gz",
                        md5=md5(DATA),
                    ),
                },
            )
            assert created.status_code == 201, created.text
            path = created.headers["location"]
            size, response = 200_000, None
            for number, offset in enumerate(range(0, len(DATA), size)):
                base = (first, second)[number % 2].url
                response = await client.patch(
                    f"{base}{path}",
                    headers={**PATCH_TYPE, "Upload-Offset": str(offset)},
                    content=DATA[offset : offset + size],
                )
                assert response.status_code == 204, response.text
        assert response is not None
        body = await file_of(second.url, real, response.headers["upload-file-id"])
        assert (body["status"], body["md5"]) == ("valid", md5(DATA))
