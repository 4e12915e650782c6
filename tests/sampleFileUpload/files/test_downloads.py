"""Downloads: GET and HEAD, ranges (206, 416 and the edge cases), ETags, checksum headers,
visibility (a private file is 404 to anyone outside the study), and X-Accel-Redirect."""

from __future__ import annotations

import base64
import hashlib
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.config import Settings
from src.sampleFileUpload.config import FilesConfig
from src.study import counters
from src.study.constants import FileStatus, StudyStatus
from src.study.models import SampleFile, Study
from tests.factories import auth_headers, create_user
from tests.sampleFileUpload import backends
from tests.sampleFileUpload.fastq_samples import BROKEN, GOOD_GZ, md5, sha256
from tests.study.factories import create_study

FILES = "/api/v1/studies/{study}/samples/S1/files"
SIZE = len(GOOD_GZ)


# Every test runs on local disk and on S3 (see backends.py).
settings = backends.settings


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session)


@pytest.fixture
def headers(settings: Settings, owner: User) -> dict[str, str]:
    return auth_headers(settings, owner)


@pytest.fixture
async def study(session: AsyncSession, owner: User) -> Study:
    return await create_study(session, owner=owner, samples=1)


@pytest.fixture
async def file_id(client: httpx.AsyncClient, study: Study, headers: dict[str, str]) -> str:
    url = FILES.format(study=study.accession) + "/reads.fastq.gz"
    response = await client.put(url, headers=headers, content=GOOD_GZ)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def download(file_id: str) -> str:
    return f"/api/v1/files/{file_id}/download"


async def publish(session: AsyncSession, study: Study) -> None:
    await session.execute(
        update(Study).where(Study.id == study.id).values(status=StudyStatus.PUBLISHED)
    )
    await counters.status_changed(
        session,
        owner_id=study.owner_id,
        old=study.status,
        new=StudyStatus.PUBLISHED,
        release_date=study.release_date,
    )


class TestDownload:
    async def test_whole_file_with_headers(
        self, client: httpx.AsyncClient, file_id: str, headers: dict[str, str]
    ) -> None:
        response = await client.get(download(file_id), headers=headers)
        assert response.status_code == 200
        assert response.content == GOOD_GZ
        assert response.headers["content-length"] == str(SIZE)
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["etag"] == f'"{sha256(GOOD_GZ)}"'
        assert response.headers["content-disposition"] == 'attachment; filename="reads.fastq.gz"'
        assert response.headers["content-type"] == "application/gzip"
        assert response.headers["x-checksum-md5"] == md5(GOOD_GZ)
        assert response.headers["x-checksum-sha256"] == sha256(GOOD_GZ)
        digest = base64.b64encode(hashlib.sha256(GOOD_GZ).digest()).decode()
        assert response.headers["repr-digest"] == f"sha-256=:{digest}:"

    async def test_head_has_the_headers_and_no_body(
        self, client: httpx.AsyncClient, file_id: str, headers: dict[str, str]
    ) -> None:
        response = await client.head(download(file_id), headers=headers)
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["content-length"] == str(SIZE)
        assert response.headers["x-checksum-sha256"] == sha256(GOOD_GZ)

    @pytest.mark.parametrize(
        ("header", "start", "end"),
        [
            ("bytes=0-9", 0, 9),
            ("bytes=10-", 10, SIZE - 1),
            ("bytes=-5", SIZE - 5, SIZE - 1),
            ("bytes=-999999999", 0, SIZE - 1),
            ("bytes=100-999999999", 100, SIZE - 1),
            (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),
        ],
    )
    async def test_ranges(
        self,
        client: httpx.AsyncClient,
        file_id: str,
        headers: dict[str, str],
        header: str,
        start: int,
        end: int,
    ) -> None:
        response = await client.get(download(file_id), headers={**headers, "Range": header})
        assert response.status_code == 206
        assert response.content == GOOD_GZ[start : end + 1]
        assert response.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
        assert response.headers["content-length"] == str(end - start + 1)

    @pytest.mark.parametrize(
        "header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"]
    )
    async def test_unsatisfiable_range_is_416(
        self, client: httpx.AsyncClient, file_id: str, headers: dict[str, str], header: str
    ) -> None:
        response = await client.get(download(file_id), headers={**headers, "Range": header})
        assert response.status_code == 416
        assert response.headers["content-range"] == f"bytes */{SIZE}"
        assert response.json()["code"] == "RANGE_NOT_SATISFIABLE"

    @pytest.mark.parametrize("header", ["bytes=abc", "items=0-5", "bytes=0-1,5-9", "bytes=9-2"])
    async def test_ignored_ranges_send_everything(
        self, client: httpx.AsyncClient, file_id: str, headers: dict[str, str], header: str
    ) -> None:
        response = await client.get(download(file_id), headers={**headers, "Range": header})
        assert response.status_code == 200
        assert response.content == GOOD_GZ

    async def test_if_range_and_if_none_match(
        self, client: httpx.AsyncClient, file_id: str, headers: dict[str, str]
    ) -> None:
        etag = f'"{sha256(GOOD_GZ)}"'
        stale = await client.get(
            download(file_id), headers={**headers, "Range": "bytes=0-9", "If-Range": '"old"'}
        )
        assert stale.status_code == 200
        assert stale.content == GOOD_GZ
        fresh = await client.get(
            download(file_id), headers={**headers, "Range": "bytes=0-9", "If-Range": etag}
        )
        assert fresh.status_code == 206
        cached = await client.get(download(file_id), headers={**headers, "If-None-Match": etag})
        assert cached.status_code == 304
        assert cached.content == b""

    async def test_nginx_accel_redirect(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        file_id: str,
        headers: dict[str, str],
    ) -> None:
        app.state.files_config = FilesConfig(download_accel="nginx")
        response = await client.get(download(file_id), headers=headers)
        file = await session.get(SampleFile, uuid.UUID(file_id))
        assert file is not None
        assert response.status_code == 200
        assert response.headers["content-disposition"].startswith("attachment")
        if app.state.settings.storage_backend == "local":
            assert response.headers["x-accel-redirect"] == f"/_protected/{file.storage_key}"
            assert response.content == b""
        else:  # nothing for nginx to serve: the API streams it
            assert "x-accel-redirect" not in response.headers
            assert response.content == GOOD_GZ

    async def test_presigned_redirect(
        self, client: httpx.AsyncClient, app: FastAPI, file_id: str, headers: dict[str, str]
    ) -> None:
        app.state.files_config = FilesConfig(download_redirect=True)
        response = await client.get(download(file_id), headers=headers)
        if app.state.settings.storage_backend == "local":  # nothing to presign
            assert response.status_code == 200
            assert response.content == GOOD_GZ
            return
        assert response.status_code == 302
        location = response.headers["location"]
        assert "Signature" in location or "X-Amz-Signature" in location
        async with httpx.AsyncClient() as plain:
            fetched = await plain.get(location)
        assert fetched.status_code == 200
        assert fetched.content == GOOD_GZ
        head = await client.head(download(file_id), headers=headers)
        assert head.status_code == 200


class TestVisibility:
    async def test_private_file_is_404_to_anonymous_and_strangers(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        file_id: str,
    ) -> None:
        response = await client.get(download(file_id))
        assert (response.status_code, response.json()["code"]) == (404, "FILE_NOT_FOUND")
        assert (await client.head(download(file_id))).status_code == 404
        response = await client.get(f"/api/v1/files/{file_id}")
        assert (response.status_code, response.json()["code"]) == (404, "FILE_NOT_FOUND")
        stranger = auth_headers(settings, await create_user(session))
        response = await client.get(download(file_id), headers=stranger)
        assert response.status_code == 404
        assert response.json()["code"] == "FILE_NOT_FOUND"

    async def test_public_valid_file_downloads_anonymously(
        self, client: httpx.AsyncClient, session: AsyncSession, study: Study, file_id: str
    ) -> None:
        await publish(session, study)
        response = await client.get(download(file_id))
        assert response.status_code == 200
        assert response.content == GOOD_GZ

    async def test_public_invalid_file_is_hidden_from_anonymous(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        study: Study,
        headers: dict[str, str],
        file_id: str,
    ) -> None:
        name, data, _ = BROKEN["truncated_gzip"]
        url = FILES.format(study=study.accession) + f"/{name}"
        invalid = (await client.put(url, headers=headers, content=data)).json()
        assert invalid["status"] == "invalid"
        await publish(session, study)
        hidden = await client.get(download(invalid["id"]))
        assert (hidden.status_code, hidden.json()["code"]) == (404, "FILE_NOT_FOUND")
        listed = await client.get(FILES.format(study=study.accession))
        assert [f["id"] for f in listed.json()] == [file_id]
        assert (await client.get(download(invalid["id"]), headers=headers)).status_code == 200

    async def test_uploading_file_cannot_be_downloaded(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        file_id: str,
    ) -> None:
        await session.execute(update(SampleFile).values(status=FileStatus.UPLOADING))
        response = await client.get(download(file_id), headers=headers)
        assert (response.status_code, response.json()["code"]) == (404, "FILE_NOT_FOUND")
