"""Whole-file uploads: the multipart form (POST) and the raw body (PUT), with checksums,
validation of every kind of broken FASTQ, file names, limits, permissions, listing and deletion."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.config import Settings
from src.sampleFileUpload.config import FilesConfig
from src.storage import LocalStorage, Storage
from src.study.constants import MemberRole, StudyStatus
from src.study.models import SampleFile, Study, StudyEvent
from tests.factories import auth_headers, create_user
from tests.sampleFileUpload import backends
from tests.sampleFileUpload.fastq_samples import BROKEN, GOOD, GOOD_GZ, gz, md5, records, sha256
from tests.study.factories import add_member, create_study

FILES = "/api/v1/studies/{study}/samples/{sample}/files"


# Every test runs on local disk and on S3 (see backends.py).
settings = backends.settings


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session, full_name="Ada Owner")


@pytest.fixture
def headers(settings: Settings, owner: User) -> dict[str, str]:
    return auth_headers(settings, owner)


@pytest.fixture
async def study(session: AsyncSession, owner: User) -> Study:
    return await create_study(session, owner=owner, samples=2)


@pytest.fixture
def url(study: Study) -> str:
    return FILES.format(study=study.accession, sample="S1")


async def stored_objects(storage: Storage) -> list[str]:
    """Every file under the storage root (temp files included) or every S3 object."""
    if isinstance(storage, LocalStorage):
        root = Path(storage.root)

        def walk() -> list[str]:
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

        return await anyio.to_thread.run_sync(walk)
    client = await storage._client()  # type: ignore[attr-defined]
    listed = await client.list_objects_v2(Bucket=storage.bucket)  # type: ignore[attr-defined]
    return sorted(item["Key"] for item in listed.get("Contents", []))


async def file_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(SampleFile.id))) or 0)


async def post_file(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    name: str,
    data: bytes,
    **fields: str,
) -> httpx.Response:
    return await client.post(url, headers=headers, files={"file": (name, data)}, data=fields)


async def put_file(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    name: str,
    data: bytes,
    **extra: str,
) -> httpx.Response:
    return await client.put(f"{url}/{name}", headers={**headers, **extra}, content=data)


class TestMultipartUpload:
    async def test_valid_gzip_file_is_hashed_validated_and_stored(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        url: str,
        headers: dict[str, str],
        owner: User,
    ) -> None:
        response = await post_file(client, url, headers, "S1_L001_R1_001.fastq.gz", GOOD_GZ)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "valid"
        assert body["read"] == "R1"
        assert body["sample_id"] == "S1"
        assert (body["size"], body["md5"], body["sha256"]) == (
            len(GOOD_GZ),
            md5(GOOD_GZ),
            sha256(GOOD_GZ),
        )
        assert (body["read_count"], body["base_count"]) == (200, 200 * 50)
        assert (body["min_length"], body["max_length"], body["mean_length"]) == (50, 50, 50.0)
        assert body["errors"] == []
        assert body["download_url"] == f"/api/v1/files/{body['id']}/download"
        row = await session.get(SampleFile, uuid.UUID(body["id"]))
        assert row is not None
        assert row.uploaded_by_id == owner.id
        assert row.storage_key.startswith("studies/")
        storage: Storage = app.state.storage
        assert [chunk async for chunk in storage.open_range(row.storage_key)] == [GOOD_GZ]
        events = await session.scalars(select(StudyEvent.action))
        assert "file.added" in list(events)

    async def test_fields_after_the_file_are_read(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        boundary = "xyzBOUNDARYxyz"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.fq"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode() + GOOD
        body += (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="read"\r\n\r\nR2'
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="md5"\r\n\r\n{md5(GOOD)}'
            f"\r\n--{boundary}--\r\n"
        ).encode()
        response = await client.post(
            url,
            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
            content=body,
        )
        assert response.status_code == 201, response.text
        assert response.json()["read"] == "R2"
        assert response.json()["md5"] == md5(GOOD)

    async def test_declared_checksums_that_match_are_accepted(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        response = await post_file(
            client, url, headers, "x.fastq", GOOD, md5=md5(GOOD), sha256=sha256(GOOD).upper()
        )
        assert response.status_code == 201, response.text

    @pytest.mark.parametrize("field", ["md5", "sha256"])
    async def test_wrong_declared_checksum_keeps_nothing(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        url: str,
        headers: dict[str, str],
        field: str,
    ) -> None:
        wrong = {"md5": md5(b"other"), "sha256": sha256(b"other")}[field]
        response = await post_file(client, url, headers, "x.fastq.gz", GOOD_GZ, **{field: wrong})
        assert response.status_code == 422
        assert response.json()["code"] == "CHECKSUM_MISMATCH"
        assert response.json()["errors"][0]["algorithm"] == field
        assert await file_count(session) == 0
        assert await stored_objects(app.state.storage) == []

    async def test_malformed_declared_checksum_is_refused_before_the_upload(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        response = await post_file(client, url, headers, "x.fastq", GOOD, md5="not-a-digest")
        assert response.status_code == 422
        assert response.json()["code"] == "INVALID_CHECKSUM"

    async def test_body_without_file_part(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        response = await client.post(url, headers=headers, data={"read": "R1"}, files={"x": b""})
        assert response.status_code == 422
        assert response.json()["code"] == "MISSING_FILE"

    async def test_not_multipart(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        response = await client.post(url, headers=headers, content=GOOD)
        assert response.status_code == 422
        assert response.json()["code"] == "MALFORMED_MULTIPART"

    async def test_unterminated_multipart_keeps_nothing(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        url: str,
        headers: dict[str, str],
    ) -> None:
        body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.fq"\r\n\r\n' + GOOD
        response = await client.post(
            url,
            headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
            content=body,
        )
        assert response.status_code == 422
        assert response.json()["code"] == "MALFORMED_MULTIPART"
        assert await file_count(session) == 0
        assert await stored_objects(app.state.storage) == []

    async def test_invalid_read_value(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        response = await post_file(client, url, headers, "x.fastq", GOOD, read="R3")
        assert response.status_code == 422
        assert response.json()["code"] == "INVALID_READ"


class TestRawUpload:
    async def test_put_body_with_content_md5(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        content_md5 = base64.b64encode(hashlib.md5(GOOD_GZ).digest()).decode()
        response = await put_file(
            client, url, headers, "lib_2.fq.gz", GOOD_GZ, **{"Content-MD5": content_md5}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["status"], body["read"], body["filename"]) == ("valid", "R2", "lib_2.fq.gz")
        assert body["sha256"] == sha256(GOOD_GZ)

    async def test_put_read_query_overrides_the_guess(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        response = await client.put(
            f"{url}/lib_2.fq.gz", params={"read": "single"}, headers=headers, content=GOOD_GZ
        )
        assert response.status_code == 201, response.text
        assert response.json()["read"] == "single"

    async def test_put_wrong_sha256_keeps_nothing(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        url: str,
        headers: dict[str, str],
    ) -> None:
        response = await put_file(
            client, url, headers, "x.fq", GOOD, **{"X-Checksum-SHA256": sha256(b"x")}
        )
        assert response.status_code == 422
        assert response.json()["code"] == "CHECKSUM_MISMATCH"
        assert await file_count(session) == 0
        assert await stored_objects(app.state.storage) == []

    async def test_streamed_body_without_length(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        async def body() -> AsyncIterator[bytes]:
            for start in range(0, len(GOOD_GZ), 1000):
                yield GOOD_GZ[start : start + 1000]

        response = await client.put(f"{url}/chunked.fastq.gz", headers=headers, content=body())
        assert response.status_code == 201, response.text
        assert response.json()["md5"] == md5(GOOD_GZ)


@pytest.mark.parametrize("kind", sorted(BROKEN))
@pytest.mark.parametrize("path", ["multipart", "put"])
async def test_broken_fastq_is_recorded_invalid_with_line_numbered_errors(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], kind: str, path: str
) -> None:
    name, data, code = BROKEN[kind]
    send = post_file if path == "multipart" else put_file
    response = await send(client, url, headers, name, data)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "invalid"
    assert body["errors"], body
    assert body["errors"][0]["code"] == code
    assert body["errors"][0]["message"]
    assert body["size"] == len(data)
    if code in ("MISSING_AT", "MISSING_PLUS", "LENGTH_MISMATCH", "BAD_QUALITY"):
        assert isinstance(body["errors"][0]["line"], int)


class TestFileNames:
    @pytest.mark.parametrize(
        "name",
        ["../../etc/passwd.fastq", "../../etc/passwd", "x" * 300 + ".fastq"],
    )
    async def test_unsafe_names_are_refused(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        url: str,
        headers: dict[str, str],
        name: str,
    ) -> None:
        response = await post_file(client, url, headers, name, GOOD)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "INVALID_FILENAME"
        assert await stored_objects(app.state.storage) == []

    async def test_nul_byte_in_raw_multipart_header(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        body = (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a\x00b.fastq"\r\n\r\n'
            + GOOD
            + b"\r\n--b--\r\n"
        )
        response = await client.post(
            url,
            headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},
            content=body,
        )
        assert response.status_code == 422
        assert response.json()["code"] == "INVALID_FILENAME"

    async def test_nul_byte_in_put_url(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        response = await client.put(f"{url}/a%00b.fastq", headers=headers, content=GOOD)
        assert response.status_code == 422
        assert response.json()["code"] == "INVALID_FILENAME"

    async def test_path_in_put_url_is_refused(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        response = await client.put(
            f"{url}/..%2F..%2Fetc%2Fpasswd.fastq", headers=headers, content=GOOD
        )
        assert response.status_code == 422
        assert response.json()["code"] == "INVALID_FILENAME"

    async def test_non_fastq_name_is_415(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        response = await post_file(client, url, headers, "notes.txt", GOOD)
        assert response.status_code == 415
        assert response.json()["code"] == "UNSUPPORTED_FILE_TYPE"

    async def test_same_name_twice_is_a_conflict(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> None:
        assert (await put_file(client, url, headers, "a.fastq", GOOD)).status_code == 201
        response = await post_file(client, url, headers, "a.fastq", GOOD)
        assert response.status_code == 409
        assert response.json()["code"] == "FILE_EXISTS"


class TestLimits:
    async def test_declared_length_over_the_maximum_is_refused_before_reading(
        self, client: httpx.AsyncClient, app: FastAPI, url: str, headers: dict[str, str]
    ) -> None:
        app.state.files_config = FilesConfig(max_upload_bytes=1000)
        response = await put_file(client, url, headers, "big.fastq", GOOD)
        assert response.status_code == 413
        assert response.json()["code"] == "FILE_TOO_LARGE"
        assert await stored_objects(app.state.storage) == []

    async def test_streamed_body_over_the_maximum_keeps_nothing(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        url: str,
        headers: dict[str, str],
    ) -> None:
        app.state.files_config = FilesConfig(max_upload_bytes=5000, ingest_block_bytes=65536)

        async def body() -> AsyncIterator[bytes]:
            for start in range(0, len(GOOD), 1000):
                yield GOOD[start : start + 1000]

        response = await client.put(f"{url}/big.fastq", headers=headers, content=body())
        assert response.status_code == 413
        assert response.json()["code"] == "FILE_TOO_LARGE"
        assert await file_count(session) == 0
        assert await stored_objects(app.state.storage) == []

    async def test_multipart_file_over_the_maximum(
        self, client: httpx.AsyncClient, app: FastAPI, url: str, headers: dict[str, str]
    ) -> None:
        app.state.files_config = FilesConfig(max_upload_bytes=5000)
        response = await post_file(client, url, headers, "big.fastq", records(2000))
        assert (response.status_code, response.json()["code"]) == (413, "FILE_TOO_LARGE")
        assert await stored_objects(app.state.storage) == []

    async def test_quota_counts_what_the_user_stores(
        self, client: httpx.AsyncClient, app: FastAPI, url: str, headers: dict[str, str]
    ) -> None:
        app.state.files_config = FilesConfig(storage_quota_bytes=len(GOOD) + 10)
        assert (await put_file(client, url, headers, "one.fastq", GOOD)).status_code == 201
        response = await put_file(client, url, headers, "two.fastq", GOOD)
        assert response.status_code == 413
        assert response.json()["code"] == "QUOTA_EXCEEDED"


class TestPermissions:
    async def test_anonymous_is_401(self, client: httpx.AsyncClient, url: str) -> None:
        response = await post_file(client, url, {}, "a.fastq", GOOD)
        assert (response.status_code, response.json()["code"]) == (401, "INVALID_TOKEN")

    async def test_stranger_is_404(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings, url: str
    ) -> None:
        stranger = await create_user(session)
        response = await post_file(client, url, auth_headers(settings, stranger), "a.fq", GOOD)
        assert (response.status_code, response.json()["code"]) == (404, "STUDY_NOT_FOUND")

    async def test_viewer_is_403(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        study: Study,
        url: str,
    ) -> None:
        viewer = await create_user(session)
        await add_member(session, study=study, user=viewer, role=MemberRole.VIEWER)
        response = await put_file(client, url, auth_headers(settings, viewer), "a.fq", GOOD)
        assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN")

    async def test_editor_may_upload(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        study: Study,
        url: str,
    ) -> None:
        editor = await create_user(session)
        await add_member(session, study=study, user=editor, role=MemberRole.EDITOR)
        response = await put_file(client, url, auth_headers(settings, editor), "a.fq", GOOD)
        assert response.status_code == 201

    async def test_submitted_study_is_locked(
        self, client: httpx.AsyncClient, session: AsyncSession, owner: User, headers: dict[str, str]
    ) -> None:
        study = await create_study(session, owner=owner, samples=1, status=StudyStatus.IN_REVIEW)
        url = FILES.format(study=study.accession, sample="S1")
        response = await put_file(client, url, headers, "a.fq", GOOD)
        assert response.status_code == 409
        assert response.json()["code"] == "STUDY_LOCKED"

    async def test_unknown_sample_is_404(
        self, client: httpx.AsyncClient, study: Study, headers: dict[str, str]
    ) -> None:
        url = FILES.format(study=study.accession, sample="nope")
        response = await put_file(client, url, headers, "a.fq", GOOD)
        assert response.status_code == 404
        assert response.json()["code"] == "SAMPLE_NOT_FOUND"


class TestReadAndDelete:
    async def test_list_get_and_delete(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        url: str,
        headers: dict[str, str],
    ) -> None:
        first = (await put_file(client, url, headers, "a_R1.fq.gz", gz(GOOD))).json()
        second = (await put_file(client, url, headers, "a_R2.fq.gz", gz(GOOD))).json()
        listed = await client.get(url, headers=headers)
        assert listed.status_code == 200
        assert [f["id"] for f in listed.json()] == [first["id"], second["id"]]
        one = await client.get(f"/api/v1/files/{first['id']}", headers=headers)
        assert one.status_code == 200
        assert one.json()["filename"] == "a_R1.fq.gz"
        assert len(await stored_objects(app.state.storage)) == 2
        deleted = await client.delete(f"/api/v1/files/{first['id']}", headers=headers)
        assert deleted.status_code == 204
        gone = await client.get(f"/api/v1/files/{first['id']}", headers=headers)
        assert (gone.status_code, gone.json()["code"]) == (404, "FILE_NOT_FOUND")
        assert len(await stored_objects(app.state.storage)) == 1
        events = list(await session.scalars(select(StudyEvent.action)))
        assert "file.deleted" in events

    async def test_delete_in_a_locked_study_is_409(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        study: Study,
        url: str,
        headers: dict[str, str],
    ) -> None:
        created = (await put_file(client, url, headers, "a.fq", GOOD)).json()
        await session.execute(
            update(Study).where(Study.id == study.id).values(status=StudyStatus.IN_REVIEW)
        )
        response = await client.delete(f"/api/v1/files/{created['id']}", headers=headers)
        assert (response.status_code, response.json()["code"]) == (409, "STUDY_LOCKED")

    async def test_unknown_file_is_404(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        response = await client.get(
            "/api/v1/files/00000000-0000-0000-0000-000000000000", headers=headers
        )
        assert response.status_code == 404
        assert response.json()["code"] == "FILE_NOT_FOUND"
