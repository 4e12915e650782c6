"""The lease a PATCH holds on an upload: taken when the request starts, renewed in the background
(each renewal on a session of its own) while the chunk streams, released if the request fails.
A process that dies mid-PATCH loses its lease when it runs out, and the next PATCH resumes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.exceptions import AppError
from src.sampleFileUpload.files.ingest import TaskGroup
from src.sampleFileUpload.tus import service
from src.sampleFileUpload.tus.exceptions import UploadLockedError, UploadNotFoundError
from src.study.models import Upload


class Lease:
    """The PATCH's claim on an upload, renewed in the background while the chunk streams.

    Renewals run beside the request's own work (recording progress, finishing the file), so
    each takes a session of its own: one session is never used by two tasks at once. The
    request's own transactions on the upload row run in :meth:`recording`, never beside a
    renewal: a renewal that ran just after the request let the lease go (or removed the upload)
    would find no lease and report a takeover that never happened."""

    def __init__(
        self,
        session: AsyncSession,
        sessions: async_sessionmaker[AsyncSession],
        upload_id: uuid.UUID,
        token: str,
        seconds: float,
    ) -> None:
        self.session = session
        self.sessions = sessions
        self.upload_id = upload_id
        self.token = token
        self.seconds = seconds
        self._turn = anyio.Lock()
        self._ended = False

    async def keep(self) -> None:
        """Renew the lease every third of its time, until the request lets it go; a renewal
        that finds the lease gone (another request took over, or the upload was ended) stops
        the request."""
        while True:
            await anyio.sleep(self.seconds / 3)
            with anyio.CancelScope(shield=True):
                async with self._turn:
                    if self._ended:
                        return
                    async with self.sessions() as session:
                        renewed = await service.renew_lease(
                            session,
                            upload_id=self.upload_id,
                            token=self.token,
                            seconds=self.seconds,
                        )
                        if not renewed:
                            lost = await lost_lease(session, self.upload_id)
                        await session.commit()
            if not renewed:
                raise lost

    @asynccontextmanager
    async def recording(self, *, ends: bool) -> AsyncIterator[None]:
        """The request's own transaction on the upload row, with no renewal beside it; when it
        lets the lease go or removes the upload (``ends``), no renewal follows it."""
        async with self._turn:
            try:
                yield
            finally:
                if ends:
                    self._ended = True

    async def release(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.session.rollback()
            await service.release_lease(self.session, upload_id=self.upload_id, token=self.token)
            await self.session.commit()


@asynccontextmanager
async def renewing(lease: Lease) -> AsyncIterator[None]:
    """Keep the lease alive while the block runs."""
    async with TaskGroup() as group:
        group.start_soon(lease.keep)
        try:
            yield
        finally:
            group.cancel_scope.cancel()


async def lost_lease(session: AsyncSession, upload_id: uuid.UUID) -> AppError:
    """Why a request no longer holds its lease: the upload was ended meanwhile (its study or
    the uploader's access to it changed, or it was abandoned), or another request took it over
    after the lease ran out."""
    if await service.upload_exists(session, upload_id=upload_id):
        return UploadLockedError("The upload was taken over by another request.")
    return UploadNotFoundError("The upload was ended while this request was writing to it.")


def leased(upload: Upload, now: datetime) -> bool:
    """True while a request holds the upload's lease."""
    return (
        upload.lease_token is not None
        and upload.lease_expires_at is not None
        and upload.lease_expires_at > now
    )
