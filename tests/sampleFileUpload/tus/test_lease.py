"""The lease of a PATCH: renewals never run beside the request's own transactions, so one due
just after the request let the lease go is not mistaken for a takeover by another request; a
renewal that finds the lease gone tells a takeover (423) from an ended upload (404)."""

from __future__ import annotations

import uuid

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from src.sampleFileUpload.tus import service
from src.sampleFileUpload.tus.exceptions import UploadLockedError, UploadNotFoundError
from src.sampleFileUpload.tus.lease import Lease, renewing
from src.study.models import Study, Upload
from tests.sampleFileUpload.tus.test_tus import create


async def test_a_renewal_due_after_the_lease_was_let_go_is_not_a_takeover(
    client: httpx.AsyncClient,
    app: FastAPI,
    session: AsyncSession,
    headers: dict[str, str],
    study: Study,
) -> None:
    location = (await create(client, headers, study, 10)).headers["location"]
    upload_id = uuid.UUID(location.rsplit("/", 1)[1])
    assert await service.take_lease(session, upload_id=upload_id, offset=0, token="t", seconds=5)
    await session.commit()
    lease = Lease(session, app.state.sessionmaker, upload_id, "t", seconds=0.03)
    with anyio.fail_after(60):
        async with renewing(lease):
            await anyio.sleep(0.05)  # renewed at least once
            async with lease.recording(ends=True):
                await service.release_lease(session, upload_id=upload_id, token="t")
                await session.commit()
            await anyio.sleep(0.1)  # renewals are due; none may run, none may fail
    upload = await session.get(Upload, upload_id, populate_existing=True)
    assert upload is not None
    assert upload.lease_token is None


async def test_a_lease_taken_over_stops_the_request(
    client: httpx.AsyncClient,
    app: FastAPI,
    session: AsyncSession,
    headers: dict[str, str],
    study: Study,
) -> None:
    location = (await create(client, headers, study, 10)).headers["location"]
    upload_id = uuid.UUID(location.rsplit("/", 1)[1])
    assert await service.take_lease(session, upload_id=upload_id, offset=0, token="t", seconds=5)
    await session.commit()
    lease = Lease(session, app.state.sessionmaker, upload_id, "t", seconds=0.03)

    async def request_that_outlives_its_lease() -> None:
        async with renewing(lease):
            # As if another request had taken it after expiry. Every session of a test shares
            # one connection, so this transaction must not interleave with a renewal's: it
            # runs in recording() (which lets renewals go on afterwards).
            async with lease.recording(ends=False):
                await service.release_lease(session, upload_id=upload_id, token="t")
                await session.commit()
            await anyio.sleep_forever()  # until a renewal finds out (fail_after: a hang)

    with anyio.fail_after(60), pytest.raises(UploadLockedError):
        await request_that_outlives_its_lease()


async def test_an_upload_ended_meanwhile_stops_the_request_as_not_found(
    client: httpx.AsyncClient,
    app: FastAPI,
    session: AsyncSession,
    headers: dict[str, str],
    study: Study,
) -> None:
    """Its study or the uploader's access changed and the upload was ended: 404, not a
    takeover (423)."""
    location = (await create(client, headers, study, 10)).headers["location"]
    upload_id = uuid.UUID(location.rsplit("/", 1)[1])
    assert await service.take_lease(session, upload_id=upload_id, offset=0, token="t", seconds=5)
    await session.commit()
    lease = Lease(session, app.state.sessionmaker, upload_id, "t", seconds=0.03)

    async def request_whose_upload_is_ended() -> None:
        async with renewing(lease):
            async with lease.recording(ends=False):
                await session.execute(delete(Upload).where(Upload.id == upload_id))
                await session.commit()
            await anyio.sleep_forever()  # until a renewal finds out (fail_after: a hang)

    with anyio.fail_after(60), pytest.raises(UploadNotFoundError):
        await request_whose_upload_is_ended()
