"""The storage quota under concurrency: every upload path reserves its bytes before its body
streams, under a per-user lock, so parallel uploads (PUT, multipart, tus creations, a mix) never
commit more than the quota; a failed upload gives its reservation back at once, and one left by a
killed process stops counting when it expires.

The parallel tests run real requests at once (``asyncio.gather`` over the ASGI client) against an
app on a scratch database with real commits, each request on its own connection."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app import create_app
from src.auth.models import User
from src.config import Settings
from src.database import upgrade_database, utcnow
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.tus import cleanup
from src.study.models import SampleFile, StorageReservation, Study, Upload
from tests.factories import auth_headers, create_user
from tests.lifespan import running
from tests.sampleFileUpload.fastq_samples import GOOD, records, sha256
from tests.study.factories import create_study

FILES = "/api/v1/studies/{study}/samples/S1/files"
UPLOADS = "/api/v1/uploads"
DATA = GOOD
# Room for two uploads of DATA and half of a third.
QUOTA = 2 * len(DATA) + len(DATA) // 2


def tus_metadata(accession: str, name: str) -> str:
    pairs = {"study": accession, "sample_id": "S1", "filename": name}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


@dataclass
class Deployment:
    """An app with a real database (every request its own transaction) and a seeded user."""

    app: FastAPI
    client: httpx.AsyncClient
    headers: dict[str, str]
    accession: str
    user_id: uuid.UUID

    @property
    def files(self) -> str:
        return FILES.format(study=self.accession)

    async def put(
        self, name: str, data: bytes | AsyncIterator[bytes] = DATA, **headers: str
    ) -> httpx.Response:
        return await self.client.put(
            f"{self.files}/{name}", headers={**self.headers, **headers}, content=data
        )

    async def put_paused(
        self, name: str, meanwhile: Callable[[], Awaitable[None]]
    ) -> httpx.Response:
        """A PUT of DATA without Content-Length whose body pauses after its first half until
        ``meanwhile`` is done; its answer."""
        sent_half, go_on = anyio.Event(), anyio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield DATA[: len(DATA) // 2]
            sent_half.set()
            await go_on.wait()
            yield DATA[len(DATA) // 2 :]

        results: list[httpx.Response] = []

        async def put() -> None:
            results.append(await self.put(name, data=body()))

        async with anyio.create_task_group() as group:
            group.start_soon(put)
            await sent_half.wait()
            await meanwhile()
            go_on.set()
        (response,) = results
        return response

    async def post(self, name: str, data: bytes = DATA) -> httpx.Response:
        return await self.client.post(
            self.files, headers=self.headers, files={"file": (name, data)}
        )

    async def tus(self, name: str, length: int = len(DATA)) -> httpx.Response:
        return await self.client.post(
            UPLOADS,
            headers={
                **self.headers,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(length),
                "Upload-Metadata": tus_metadata(self.accession, name),
            },
        )

    async def committed(self) -> int:
        """Bytes the user's files hold plus the lengths of their unfinished tus uploads."""
        async with self.app.state.sessionmaker() as session:
            stored = await session.scalar(
                select(func.coalesce(func.sum(SampleFile.size), 0)).where(
                    SampleFile.uploaded_by_id == self.user_id
                )
            )
            uploading = await session.scalar(
                select(func.coalesce(func.sum(Upload.length), 0)).where(
                    Upload.owner_id == self.user_id, Upload.finished_at.is_(None)
                )
            )
        return int(stored or 0) + int(uploading or 0)

    async def reservations(self) -> list[StorageReservation]:
        async with self.app.state.sessionmaker() as session:
            return list(await session.scalars(select(StorageReservation)))


@pytest.fixture
async def deployment(settings: Settings, scratch_database_url: str) -> AsyncIterator[Deployment]:
    scratch = settings.model_copy(update={"database_url": scratch_database_url})
    await anyio.to_thread.run_sync(upgrade_database, scratch_database_url)
    app = create_app(scratch)
    async with running(app):
        async with app.state.sessionmaker() as session:
            user = await create_user(session)
            study = await create_study(session, owner=user, samples=1)
            await session.commit()
        app.state.files_config = FilesConfig(storage_quota_bytes=QUOTA)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Deployment(app, client, auth_headers(scratch, user), study.accession, user.id)


Sender = Callable[[Deployment, str], Awaitable[httpx.Response]]
SENDERS: dict[str, Sender] = {
    "put": lambda d, name: d.put(name),
    "multipart": lambda d, name: d.post(name),
    "tus": lambda d, name: d.tus(name),
}
MIXES = {
    "put": ["put"] * 6,
    "multipart": ["multipart"] * 6,
    "tus": ["tus"] * 6,
    "mix": ["put", "multipart", "tus"] * 2,
}


class TestParallelUploads:
    @pytest.mark.parametrize("mix", sorted(MIXES))
    async def test_six_at_once_never_commit_more_than_the_quota(
        self, deployment: Deployment, mix: str
    ) -> None:
        kinds = MIXES[mix]
        responses = await asyncio.gather(
            *(SENDERS[kind](deployment, f"f{n}_{kind}.fastq") for n, kind in enumerate(kinds))
        )
        statuses = sorted(
            (r.status_code, "" if r.status_code == 201 else r.json()["code"]) for r in responses
        )
        # Two fit; the others are refused as the contract says, none half-stored.
        assert statuses == [(201, "")] * 2 + [(413, "QUOTA_EXCEEDED")] * 4, statuses
        assert await deployment.committed() <= QUOTA
        assert await deployment.reservations() == []

    async def test_the_room_left_is_usable_once_they_are_done(self, deployment: Deployment) -> None:
        await asyncio.gather(*(deployment.put(f"f{n}.fastq") for n in range(4)))
        left = QUOTA - await deployment.committed()
        assert left == len(DATA) // 2
        response = await deployment.tus("rest.fastq", length=left)
        assert response.status_code == 201, response.text
        response = await deployment.tus("more.fastq", length=1)
        assert (response.status_code, response.json()["code"]) == (413, "QUOTA_EXCEEDED")


class TestUnknownLength:
    async def test_a_body_of_unknown_length_holds_what_is_left_until_it_settles(
        self, deployment: Deployment
    ) -> None:
        """Without Content-Length a PUT reserves all that is left (up to the largest upload)
        while it streams, and only its real size once recorded."""

        async def meanwhile() -> None:
            [reservation] = await deployment.reservations()
            assert reservation.bytes == QUOTA
            refused = await deployment.tus("meanwhile.fastq", length=1)
            assert (refused.status_code, refused.json()["code"]) == (413, "QUOTA_EXCEEDED")

        response = await deployment.put_paused("chunked.fastq", meanwhile)
        assert response.status_code == 201, response.text
        assert await deployment.reservations() == []
        assert await deployment.committed() == len(DATA)
        assert (await deployment.tus("after.fastq", length=QUOTA - len(DATA))).status_code == 201

    async def test_the_reservation_is_renewed_while_the_body_streams(
        self, deployment: Deployment
    ) -> None:
        deployment.app.state.files_config = FilesConfig(
            storage_quota_bytes=QUOTA, upload_reservation_seconds=0.3
        )

        async def meanwhile() -> None:
            [first] = await deployment.reservations()
            # Wait (on the event loop, not a clock assertion) for a renewal to move the expiry.
            for _ in range(400):
                await anyio.sleep(0.05)
                [now] = await deployment.reservations()
                if now.expires_at > first.expires_at:
                    break
            assert now.expires_at > first.expires_at

        response = await deployment.put_paused("slow.fastq", meanwhile)
        assert response.status_code == 201, response.text
        assert await deployment.reservations() == []


# Sequential: a failed upload gives its reservation back at once.
@pytest.fixture
async def quota_study(session: AsyncSession, owner: User) -> Study:
    return await create_study(session, owner=owner, samples=1)


@pytest.fixture
def files_url(quota_study: Study) -> str:
    return FILES.format(study=quota_study.accession)


async def reservation_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(StorageReservation.id))) or 0)


async def fail_checksum(
    client: httpx.AsyncClient, app: FastAPI, url: str, headers: dict[str, str]
) -> int:
    response = await client.put(
        f"{url}/x.fastq", headers={**headers, "X-Checksum-SHA256": sha256(b"x")}, content=DATA
    )
    assert response.json()["code"] == "CHECKSUM_MISMATCH"
    return response.status_code


async def fail_multipart_checksum(
    client: httpx.AsyncClient, app: FastAPI, url: str, headers: dict[str, str]
) -> int:
    response = await client.post(
        url, headers=headers, files={"file": ("x.fastq", DATA)}, data={"md5": "0" * 32}
    )
    assert response.json()["code"] == "CHECKSUM_MISMATCH"
    return response.status_code


async def fail_multipart_name(
    client: httpx.AsyncClient, app: FastAPI, url: str, headers: dict[str, str]
) -> int:
    response = await client.post(url, headers=headers, files={"file": ("notes.txt", DATA)})
    assert response.json()["code"] == "UNSUPPORTED_FILE_TYPE"
    return response.status_code


async def fail_too_large(
    client: httpx.AsyncClient, app: FastAPI, url: str, headers: dict[str, str]
) -> int:
    async def body() -> AsyncIterator[bytes]:
        yield DATA
        yield DATA  # twice the quota's room, with no Content-Length

    response = await client.put(f"{url}/big.fastq", headers=headers, content=body())
    assert response.json()["code"] == "QUOTA_EXCEEDED"
    return response.status_code


async def fail_abort(
    client: httpx.AsyncClient, app: FastAPI, url: str, headers: dict[str, str]
) -> int:
    """The client goes away mid-body: the server hears ``http.disconnect`` (as uvicorn says
    it), which no ASGI test client can send, so the app is called directly."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": DATA[:1000], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    path = f"{url}/gone.fastq"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "server": ("test", 80),
        "client": ("127.0.0.1", 50000),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    return 400


FAILURES = {
    "checksum": (fail_checksum, 422),
    "multipart_checksum": (fail_multipart_checksum, 422),
    "multipart_name": (fail_multipart_name, 415),
    "too_large": (fail_too_large, 413),
    "client_abort": (fail_abort, 400),
}


class TestReleasedOnFailure:
    @pytest.mark.parametrize("failure", sorted(FAILURES))
    async def test_a_failed_upload_frees_its_reservation_at_once(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        files_url: str,
        headers: dict[str, str],
        failure: str,
    ) -> None:
        app.state.files_config = FilesConfig(storage_quota_bytes=len(DATA))
        fail, status = FAILURES[failure]
        assert await fail(client, app, files_url, headers) == status
        assert await reservation_count(session) == 0
        response = await client.put(f"{files_url}/ok.fastq", headers=headers, content=DATA)
        assert response.status_code == 201, response.text

    async def test_an_invalid_fastq_counts_until_it_is_deleted(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        files_url: str,
        headers: dict[str, str],
    ) -> None:
        """A broken FASTQ is kept (so its errors can be read) and its bytes count; deleting it
        frees them."""
        broken = records(10)[:-3]
        app.state.files_config = FilesConfig(storage_quota_bytes=len(DATA) + len(broken))
        invalid = await client.put(f"{files_url}/broken.fastq", headers=headers, content=broken)
        assert invalid.json()["status"] == "invalid"
        assert await reservation_count(session) == 0
        response = await client.put(f"{files_url}/big.fastq", headers=headers, content=DATA + b"@")
        assert (response.status_code, response.json()["code"]) == (413, "QUOTA_EXCEEDED")
        deleted = await client.delete(f"/api/v1/files/{invalid.json()['id']}", headers=headers)
        assert deleted.status_code == 204
        response = await client.put(f"{files_url}/big.fastq", headers=headers, content=DATA + b"@")
        assert response.status_code == 201, response.text


class TestExpiry:
    @pytest.mark.parametrize(("expired", "status"), [(True, 201), (False, 413)])
    async def test_a_reservation_left_by_a_killed_process_counts_until_it_expires(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        owner: User,
        files_url: str,
        headers: dict[str, str],
        expired: bool,
        status: int,
    ) -> None:
        app.state.files_config = FilesConfig(storage_quota_bytes=len(DATA))
        offset = timedelta(seconds=-1 if expired else 300)
        session.add(
            StorageReservation(user_id=owner.id, bytes=len(DATA), expires_at=utcnow() + offset)
        )
        await session.flush()
        response = await client.put(f"{files_url}/a.fastq", headers=headers, content=DATA)
        assert response.status_code == status, response.text
        # An expired reservation is swept by the user's next reservation.
        assert await reservation_count(session) == (0 if expired else 1)

    async def test_the_periodic_clean_up_deletes_expired_reservations_only(
        self, app: FastAPI, session: AsyncSession, owner: User
    ) -> None:
        # A user who never uploads again never sweeps their own: the clean-up task does.
        expired, live = uuid.uuid4(), uuid.uuid4()
        for id_, offset in ((expired, -1), (live, 300)):
            session.add(
                StorageReservation(
                    id=id_,
                    user_id=owner.id,
                    bytes=len(DATA),
                    expires_at=utcnow() + timedelta(seconds=offset),
                )
            )
        await session.commit()
        removed = await cleanup.remove_expired_uploads_and_reservations(
            app.state.sessionmaker, app.state.storage
        )
        assert removed == 1
        assert [r.id for r in await session.scalars(select(StorageReservation))] == [live]
