"""The resumable writer: everything a PATCH (or a POST with a body) does with an upload's bytes.

It takes the upload's lease, streams the chunk with no transaction open through the ingest
pipeline (storage + MD5/SHA-256 + FASTQ validator), makes the bytes durable
(``writer.flush()``), then records the new offset and state under its lease. A process keeps the
hash and validator state of the uploads it served in memory (:class:`DigestCache`); one that did
not see the earlier chunks rebuilds it by re-reading the stored bytes (``storage.read_pending``).
When the last byte arrives the file is validated, checked against the declared whole-file
md5/sha256 (a mismatch keeps nothing), committed to storage and recorded as ``valid`` or
``invalid``. An upload whose last byte was stored but whose file was never recorded (the process
died in between) is *stranded*; :meth:`ChunkWriter.finish_stored` finishes it from the stored
bytes.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable
from datetime import datetime, timedelta
from typing import Any

import anyio
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.auth.models import User
from src.database import after_commit, utcnow
from src.exceptions import AppError
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.files import service as files_service
from src.sampleFileUpload.files.exceptions import FileTooLargeError, StorageUnavailableError
from src.sampleFileUpload.files.fastq_workers import FastqWorkers
from src.sampleFileUpload.files.ingest import (
    BodyInterrupted,
    FileDigest,
    Ingested,
    blocks,
    new_hash,
    pump,
)
from src.sampleFileUpload.files.uploads import check_declared
from src.sampleFileUpload.tus import service
from src.sampleFileUpload.tus.exceptions import (
    ChunkChecksumMismatchError,
    OffsetMismatchError,
    UploadLockedError,
    UploadNotFoundError,
)
from src.sampleFileUpload.tus.lease import Lease, lost_lease, renewing
from src.sampleFileUpload.tus.protocol import (
    ChunkChecksum,
    ChunkResult,
    parse_checksum,
    wants_body,
)
from src.sampleFileUpload.tus.schemas import ChunkRequest, UploadTarget
from src.storage import ResumableWriter, Storage, WriterBusyError
from src.study.exceptions import (
    ForbiddenError,
    SampleNotFoundError,
    StudyLockedError,
    StudyNotFoundError,
)
from src.study.models import SampleFile, Upload

logger = logging.getLogger(__name__)

# What the re-checks before and while a finished file is recorded may answer: the study is gone
# or no longer seen, the caller no longer edits it, it is no longer a draft, the sample is gone.
TARGET_REFUSALS = (StudyNotFoundError, ForbiddenError, StudyLockedError, SampleNotFoundError)


class DigestCache:
    """Digests of uploads this process served, so the next chunk need not re-read storage.

    A cached digest's lane may still be hashing and validating the end of the previous chunk;
    the next PATCH queues behind it. The cache owns what it holds: a digest it drops (evicted,
    or found at the wrong offset) is closed, which stops its lane's thread."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[uuid.UUID, tuple[int, str, FileDigest]] = OrderedDict()

    def take(self, upload_id: uuid.UUID, offset: int, token: str) -> FileDigest | None:
        """The digest at exactly this offset and writer, removed from the cache (one user)."""
        entry = self._entries.pop(upload_id, None)
        if entry is None:
            return None
        if entry[0] != offset or entry[1] != token:
            entry[2].close()
            return None
        return entry[2]

    def put(self, upload_id: uuid.UUID, offset: int, token: str, digest: FileDigest) -> None:
        if self.capacity <= 0:
            digest.close()
            return
        previous = self._entries.pop(upload_id, None)
        if previous is not None and previous[2] is not digest:
            previous[2].close()
        self._entries[upload_id] = (offset, token, digest)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)[1][2].close()

    def holds(self, upload_id: uuid.UUID, digest: FileDigest) -> bool:
        entry = self._entries.get(upload_id)
        return entry is not None and entry[2] is digest

    def clear(self) -> None:
        while self._entries:
            self._entries.popitem()[1][2].close()


def cache_of(app: FastAPI) -> DigestCache:
    cache: DigestCache | None = getattr(app.state, "tus_cache", None)
    if cache is None:
        config: FilesConfig = app.state.files_config
        cache = app.state.tus_cache = DigestCache(config.tus_cached_uploads)
    return cache


async def discard_upload(session: AsyncSession, storage: Storage, upload: Upload) -> None:
    """Forget an upload and, once committed, its stored bytes."""
    key, state = upload.storage_key, dict(upload.storage_state or {})
    await service.forget_upload(session, upload=upload)

    async def remove() -> None:
        if state:
            await storage.abort_state(key, state)

    after_commit(session, remove)


class ChunkWriter:
    """Everything one PATCH (or a POST with a body) does with the upload's bytes."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        sessions: async_sessionmaker[AsyncSession],
        storage: Storage,
        config: FilesConfig,
        workers: FastqWorkers,
        cache: DigestCache,
        user: User,
        upload: Upload,
    ) -> None:
        self.session = session
        self.sessions = sessions
        self.storage = storage
        self.config = config
        self.workers = workers
        self.cache = cache
        self.user = user
        self.upload = upload
        self.upload_id = upload.id
        self.file_id = upload.file_id
        self.length = upload.length
        self.key = upload.storage_key
        self.state: dict[str, Any] = dict(upload.storage_state)
        self.offset = upload.offset

    @classmethod
    def in_app(
        cls,
        app: FastAPI,
        *,
        session: AsyncSession,
        user: User,
        upload: Upload,
        cache: DigestCache | None = None,
    ) -> ChunkWriter:
        """A writer with the app's storage, settings, validators and (by default) cache."""
        state = app.state
        return cls(
            session=session,
            sessions=state.sessionmaker,
            storage=state.storage,
            config=state.files_config,
            workers=state.fastq_workers,
            cache=cache if cache is not None else cache_of(app),
            user=user,
            upload=upload,
        )

    def _expiry(self) -> datetime:
        return utcnow() + timedelta(hours=self.config.tus_expiry_hours)

    async def claim(self) -> Lease:
        """Take the lease at the client's offset and end the transaction."""
        token = secrets.token_hex(16)
        taken = await service.take_lease(
            self.session,
            upload_id=self.upload_id,
            offset=self.offset,
            token=token,
            seconds=self.config.tus_lease_seconds,
        )
        await self.session.commit()
        if not taken:
            current = await service.get_upload(self.session, upload_id=self.upload_id)
            await self.session.commit()
            if current is None:
                raise UploadNotFoundError
            if current.offset != self.offset:
                raise OffsetMismatchError(
                    f"The upload is at offset {current.offset}.",
                    headers={"Upload-Offset": str(current.offset)},
                )
            raise UploadLockedError
        return Lease(
            self.session, self.sessions, self.upload_id, token, self.config.tus_lease_seconds
        )

    async def _digest(self) -> FileDigest:
        """The running digest at ``offset``: cached here, or rebuilt from the stored bytes."""
        token = str(self.state.get("token", ""))
        digest = self.cache.take(self.upload_id, self.offset, token)
        if digest is not None:
            return digest
        digest = FileDigest(self.workers)
        if self.offset:
            logger.info(
                "rebuilding upload %s state from %d stored bytes", self.upload_id, self.offset
            )
            try:
                pending = self.storage.read_pending(
                    self.key, self.state, chunk_size=self.config.ingest_block_bytes
                )
                async for block in blocks(pending, self.config.ingest_block_bytes):
                    await digest.update(block)
                if digest.size != self.offset:
                    raise StorageUnavailableError(
                        f"The stored upload has {digest.size} bytes, not {self.offset}."
                    )
            except BaseException:
                digest.close()
                raise
        return digest

    async def _resume_writer(self) -> ResumableWriter:
        try:
            return await self.storage.resume_writer(self.key, self.state)
        except WriterBusyError:  # a process that lost its lease has not let go yet
            raise UploadLockedError(
                "An earlier request is still writing this upload; retry shortly."
            ) from None

    async def write(
        self, body: AsyncIterable[bytes], checksum: ChunkChecksum | None
    ) -> ChunkResult:
        """Append the body at ``offset``; on the last byte, finish the file."""
        lease = await self.claim()
        try:
            async with renewing(lease):
                return await self._write(body, checksum, lease)
        except UploadNotFoundError:
            await self._ended_meanwhile()
            raise
        except BaseException:
            await lease.release()
            raise

    async def _write(
        self, body: AsyncIterable[bytes], checksum: ChunkChecksum | None, lease: Lease
    ) -> ChunkResult:
        digest = await self._digest()
        try:
            return await self._append(body, checksum, lease, digest)
        finally:
            if not self.cache.holds(self.upload_id, digest):
                digest.close()  # finished, or fed bytes that were not kept

    async def _append(
        self,
        body: AsyncIterable[bytes],
        checksum: ChunkChecksum | None,
        lease: Lease,
        digest: FileDigest,
    ) -> ChunkResult:
        writer = await self._resume_writer()
        try:
            chunk_hash = new_hash(checksum.algorithm) if checksum else None
            try:
                await pump(
                    body,
                    digest=digest,
                    writer=writer,
                    block_size=self.config.ingest_block_bytes,
                    limit=self.length - self.offset,
                    too_large=lambda: FileTooLargeError(
                        f"The chunk goes past Upload-Length ({self.length})."
                    ),
                    extra=(chunk_hash,) if chunk_hash is not None else (),
                )
            except BodyInterrupted as interrupted:
                # The client went away: keep what fully arrived, unless the chunk had to be
                # checked as a whole (then it is discarded, as a checksum mismatch would be).
                if checksum is not None or not interrupted.consumed:
                    raise
                await self._save(writer, digest, lease, final=False)
                raise
            if (
                chunk_hash is not None
                and checksum is not None
                and chunk_hash.digest() != checksum.expected
            ):
                raise ChunkChecksumMismatchError(
                    f"The chunk's {checksum.algorithm} does not match Upload-Checksum; "
                    f"it was discarded. Resend it from offset {self.offset}."
                )
            final = digest.size == self.length
            if final:
                # The validator catches up before the last byte is recorded: one lost during
                # the upload refuses this chunk (503, resumable from the recorded offset)
                # instead of leaving a complete upload with no file, whatever the timing.
                await digest.drain()
            result = await self._save(writer, digest, lease, final=final)
            if not final:
                return result
            return await self.finish(writer, digest, lease)
        finally:
            await writer.release()  # a no-op once finish() committed or aborted it

    async def _save(
        self, writer: ResumableWriter, digest: FileDigest, lease: Lease, *, final: bool
    ) -> ChunkResult:
        """Make the received bytes durable and record them under the lease."""
        state = await writer.flush()
        expires_at = self._expiry()
        async with lease.recording(ends=not final):
            saved = await service.save_progress(
                self.session,
                upload_id=self.upload_id,
                token=lease.token,
                offset=digest.size,
                storage_state=state,
                expires_at=expires_at,
                keep_lease=final,
            )
            await self.session.commit()
        if not saved:
            raise await lost_lease(self.session, self.upload_id)
        self.offset, self.state = digest.size, state
        if not final:
            self.cache.put(self.upload_id, digest.size, str(state.get("token", "")), digest)
        return ChunkResult(offset=digest.size, expires_at=expires_at)

    async def finish(
        self, writer: ResumableWriter | None, digest: FileDigest, lease: Lease
    ) -> ChunkResult:
        """Validate, check the declared checksums and that the caller may still add the file,
        commit the object, record the file (checking again, under the study's lock). A refusal
        keeps nothing: no object is committed for a caller who lost access or a study that left
        draft, and one committed meanwhile is removed."""
        upload = self.upload
        ingested = await digest.finish()
        try:
            check_declared(ingested, md5=upload.declared_md5, sha256=upload.declared_sha256)
            await self._recheck_target()
        except AppError:
            await self._give_up(writer, lease)
            raise
        if writer is not None:
            await writer.commit()
        expires_at = self._expiry()
        try:
            async with lease.recording(ends=True):
                file = await self._record_file(ingested, expires_at)
        except TARGET_REFUSALS:
            await self._give_up(None, lease)
            raise
        return ChunkResult(offset=self.length, expires_at=expires_at, file_id=file.id)

    async def _recheck_target(self) -> None:
        """Raise TARGET_REFUSALS unless the caller may still add the file to its sample."""
        upload = self.upload
        await files_service.recheck_target(
            self.session, study_id=upload.study_id, sample_pk=upload.sample_pk, user=self.user
        )
        await self.session.commit()

    async def _record_file(self, ingested: Ingested, expires_at: datetime) -> SampleFile:
        """Record the finished file, if the caller may still add it to the sample."""
        upload = self.upload
        view, sample = await files_service.recheck_target(
            self.session, study_id=upload.study_id, sample_pk=upload.sample_pk, user=self.user
        )
        file = await service.complete_upload(
            self.session,
            upload=upload,
            view=view,
            sample=sample,
            user=self.user,
            ingested=ingested,
            expires_at=expires_at,
        )
        await self.session.commit()
        return file

    async def _give_up(self, writer: ResumableWriter | None, lease: Lease) -> None:
        """Keep nothing of a refused upload: its bytes (``writer``'s, or the object committed
        at its key), its row and its unfinished file."""
        with anyio.CancelScope(shield=True):
            await self.session.rollback()
            async with lease.recording(ends=True):
                await service.forget(self.session, upload_id=self.upload_id, file_id=self.file_id)
                await self.session.commit()
            if writer is not None:
                await writer.abort()
            await self.storage.delete(self.key)  # committed already (a stranded upload)
            if self.state:
                await self.storage.abort_state(self.key, self.state)

    async def _ended_meanwhile(self) -> None:
        """The upload was ended (its study or the caller's access changed) while this request
        wrote to it: remove what it wrote since, which the ending could not see."""
        with anyio.CancelScope(shield=True):
            try:
                if self.state:
                    await self.storage.abort_state(self.key, self.state)
            except Exception:
                logger.exception("could not remove the bytes of ended upload %s", self.key)

    async def finish_stored(self) -> ChunkResult:
        """Finish an upload whose bytes all arrived but whose file was never recorded (the
        process died in between): re-read the bytes, wherever they are now."""
        lease = await self.claim()
        try:
            async with renewing(lease):
                committed = await self.storage.size(self.key) == self.length
                if committed:
                    with FileDigest(self.workers) as digest:
                        source = self.storage.open_range(
                            self.key, chunk_size=self.config.ingest_block_bytes
                        )
                        async for block in blocks(source, self.config.ingest_block_bytes):
                            await digest.update(block)
                        return await self.finish(None, digest, lease)
                digest = await self._digest()
                writer = await self._resume_writer()
                try:
                    return await self.finish(writer, digest, lease)
                finally:
                    digest.close()
                    await writer.release()
        except UploadNotFoundError:
            await self._ended_meanwhile()
            raise
        except BaseException:
            await lease.release()
            raise


async def _open_upload(
    session: AsyncSession,
    *,
    target: UploadTarget,
    user: User,
    storage: Storage,
    config: FilesConfig,
) -> Upload:
    """An empty stored object and the upload row that will fill it, committed; the object is
    removed again if the row cannot be recorded (the quota has no room left for it, say)."""
    key = files_service.new_storage_key(target.view.study.id)
    resumable = await storage.open_resumable(key)
    state = await resumable.flush()
    await resumable.release()
    try:
        # The upload row is the reservation: checked and written under the user's quota lock.
        await files_service.check_room(
            session, config=config, user=user, length=target.length, lock=True
        )
        upload = await service.create_upload(
            session,
            view=target.view,
            sample=target.sample,
            user=user,
            filename=target.filename,
            read=target.read,
            length=target.length,
            declared_md5=target.declared_md5,
            declared_sha256=target.declared_sha256,
            upload_metadata=target.upload_metadata,
            storage_key=key,
            storage_state=state,
            expires_at=utcnow() + timedelta(hours=config.tus_expiry_hours),
        )
        await session.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await storage.abort_state(key, state)
        raise
    return upload


async def start_upload(
    request: Request,
    *,
    target: UploadTarget,
    user: User,
    session: AsyncSession,
    storage: Storage,
    config: FilesConfig,
) -> tuple[Upload, ChunkResult]:
    """Create an upload and, with an offset+octet-stream body, write its first chunk; an empty
    file is finished at once."""
    upload = await _open_upload(session, target=target, user=user, storage=storage, config=config)
    result = ChunkResult(offset=0, expires_at=upload.expires_at)
    chunk = ChunkWriter.in_app(request.app, session=session, user=user, upload=upload)
    if target.length == 0:
        result = await chunk.finish_stored()
    elif wants_body(request):
        checksum = parse_checksum(request.headers.get("upload-checksum"))
        try:
            result = await chunk.write(request.stream(), checksum)
        except (BodyInterrupted, ChunkChecksumMismatchError):
            # The upload exists either way; the client resumes from the offset it reads back.
            result = ChunkResult(offset=chunk.offset, expires_at=upload.expires_at)
    return upload, result


async def append_chunk(
    request: Request, *, chunk: ChunkRequest, user: User, session: AsyncSession
) -> ChunkResult:
    """Write a PATCH's body at the upload's offset; an empty PATCH at offset = length finishes
    a file whose bytes all arrived but which was never recorded, and on a finished upload
    answers where it stands (its file's id), writing nothing."""
    upload = chunk.upload
    if upload.finished_at is not None:  # done already: say so, read nothing
        return ChunkResult(
            offset=upload.length, expires_at=upload.expires_at, file_id=upload.file_id
        )
    writer = ChunkWriter.in_app(request.app, session=session, user=user, upload=upload)
    if upload.offset == upload.length:
        return await writer.finish_stored()
    return await writer.write(request.stream(), chunk.checksum)
