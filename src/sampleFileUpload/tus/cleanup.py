"""The clean-up task of tus uploads, run beside the app by its lifespan: it discards unfinished
uploads that may not go on (their study left draft, or their uploader lost the right to edit
it), finishes *stranded* uploads (every byte stored, the file never recorded because the process
died in between) once the dead process's lease has run out, and removes expired uploads with
their unfinished files and stored bytes. A finished upload is kept (so HEAD says it is done)
until it expires too; then only its row goes: its file stays, and it holds no stored bytes of
its own. Expired uploads are also removed on access (``dependencies.callers_upload``). With the
expired uploads go the expired quota reservations of whole-file uploads (``storage_reservation``
rows left by killed processes), which no longer count but would otherwise stay."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.auth.models import User
from src.database import run_after_commit
from src.exceptions import AppError
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.files.service import remove_expired_reservations
from src.sampleFileUpload.tus import service
from src.sampleFileUpload.tus.constants import CLEANUP_BATCH
from src.sampleFileUpload.tus.exceptions import UploadLockedError
from src.sampleFileUpload.tus.writer import (
    TARGET_REFUSALS,
    ChunkWriter,
    DigestCache,
    cache_of,
    discard_upload,
)
from src.storage import Storage

logger = logging.getLogger(__name__)


async def remove_expired_uploads(
    sessionmaker: async_sessionmaker[AsyncSession], storage: Storage
) -> int:
    """Delete expired, unleased uploads, their unfinished files and stored bytes (a finished
    upload's file stays; its storage state is empty); the count."""
    removed = 0
    while True:
        async with sessionmaker() as session:
            uploads = await service.expired_uploads(session, limit=CLEANUP_BATCH)
            doomed = [(u.storage_key, dict(u.storage_state or {})) for u in uploads]
            for upload in uploads:
                await service.forget_upload(session, upload=upload)
            await session.commit()
        for key, state in doomed:
            try:
                if state:
                    await storage.abort_state(key, state)
            except Exception:
                logger.exception("could not remove the bytes of expired upload %s", key)
        removed += len(doomed)
        if len(doomed) < CLEANUP_BATCH:
            return removed


async def remove_expired_uploads_and_reservations(
    sessionmaker: async_sessionmaker[AsyncSession], storage: Storage
) -> int:
    """One expiry pass: the expired quota reservations of whole-file uploads, then the expired
    uploads (``remove_expired_uploads``); the count of both."""
    async with sessionmaker() as session:
        removed = await remove_expired_reservations(session)
        await session.commit()
    return removed + await remove_expired_uploads(sessionmaker, storage)


async def end_unauthorised_uploads(
    sessionmaker: async_sessionmaker[AsyncSession], storage: Storage
) -> int:
    """Discard unfinished uploads that may not go on, with their unfinished files and stored
    bytes: their study left draft, or their uploader no longer edits it. That is final (no
    PATCH would be accepted again), so they are not retried until they expire. Removing a
    member or submitting a study ends such uploads at once; this catches one created while
    that happened. The count."""
    ended = 0
    while True:
        async with sessionmaker() as session:
            uploads = await service.unauthorised_uploads(session, limit=CLEANUP_BATCH)
            for upload in uploads:
                await discard_upload(session, storage, upload)
            await session.commit()
            await run_after_commit(session)
        ended += len(uploads)
        if len(uploads) < CLEANUP_BATCH:
            return ended


async def finish_stranded_uploads(app: FastAPI) -> int:
    """Finish uploads whose last byte was stored but whose file was never recorded (the process
    died in between): each is validated from its stored bytes and recorded, as the empty PATCH
    at offset = length would, so no client has to know that trick. The count finished."""
    sessionmaker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    finished = 0
    async with sessionmaker() as session:
        uploads = await service.stranded_uploads(session, limit=CLEANUP_BATCH)
        await session.commit()
    for upload in uploads:
        async with sessionmaker() as session:
            owner = await session.get(User, upload.owner_id)
            current = await service.get_upload(session, upload_id=upload.id)
            if owner is None or current is None:
                continue
            chunk = ChunkWriter.in_app(
                app, session=session, user=owner, upload=current, cache=DigestCache(0)
            )
            try:
                await chunk.finish_stored()
                finished += 1
            except UploadLockedError:
                pass  # another process is on it
            except TARGET_REFUSALS as exc:  # discarded by the writer: final, not retried
                logger.info("stranded upload %s was discarded: %s", upload.id, exc.code)
            except AppError as exc:
                logger.warning("stranded upload %s was not finished: %s", upload.id, exc.code)
    return finished


@asynccontextmanager
async def upload_cleanup(app: FastAPI) -> AsyncIterator[None]:
    """While the app runs: discard uploads that may not go on and finish stranded ones every
    TUS_LEASE_SECONDS (once the lease of the process that died has run out), and remove expired
    ones every TUS_CLEANUP_INTERVAL_SECONDS. At shutdown, the cached upload states are let go."""
    config: FilesConfig = app.state.files_config
    interval = config.tus_cleanup_interval_seconds
    if not interval:
        try:
            yield
        finally:
            cache_of(app).clear()
        return

    async def run(task: Callable[[], Coroutine[Any, Any, int]], what: str) -> None:
        try:
            count = await task()
            if count:
                logger.info("%s: %d", what, count)
        except Exception:
            logger.exception("periodic upload task failed: %s", what)

    async def loop() -> None:
        period = min(interval, config.tus_lease_seconds)
        waited = 0.0
        while True:
            await anyio.sleep(period)
            waited += period
            await run(
                lambda: end_unauthorised_uploads(app.state.sessionmaker, app.state.storage),
                "uploads ended (access lost or study left draft)",
            )
            await run(lambda: finish_stranded_uploads(app), "stranded uploads finished")
            if waited >= interval:
                waited = 0.0
                await run(
                    lambda: remove_expired_uploads_and_reservations(
                        app.state.sessionmaker, app.state.storage
                    ),
                    "expired uploads and quota reservations removed",
                )

    async with anyio.create_task_group() as group:
        group.start_soon(loop)
        try:
            yield
        finally:
            group.cancel_scope.cancel()
            cache_of(app).clear()
