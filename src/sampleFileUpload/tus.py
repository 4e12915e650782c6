"""Resumable uploads: the tus 1.0 protocol with the creation, creation-with-upload, termination,
checksum (md5, sha1, sha256) and expiration extensions, under /api/v1/uploads.

Every upload is a row of the ``upload`` table (offset, storage writer state, lease, expiry), so
any process can continue any upload and a restart loses no acknowledged byte. A PATCH takes a
short lease on the row (renewed while it streams), commits, streams the chunk with no
transaction open through the ingest pipeline (storage + MD5/SHA-256 + FASTQ validator), makes the
bytes durable (``writer.flush()``), then records the new offset and state under its lease. A
process keeps the hash and validator state of the uploads it served in memory; one that did not
see the earlier chunks rebuilds it by re-reading the stored bytes (``storage.read_pending``).
A process killed mid-PATCH loses only that unacknowledged chunk: the next PATCH resumes from the
recorded state once the lease runs out. When the last byte arrives the file is validated, checked
against the declared whole-file md5/sha256 (a mismatch keeps nothing), committed to storage and
recorded as ``valid`` or ``invalid``; its id is returned in ``Upload-File-Id``. If the process
dies between storing the last byte and recording the file, the upload is *stranded*: a periodic
task (or an empty PATCH at offset = length) finishes it from the stored bytes once the dead
process's lease has run out. Expired uploads are removed on access and by the same task.

Why not tuspyserver: we evaluated it (a FastAPI router for tus) against what MOSAIC needs. Its
upload state is a JSON file beside the data on local disk, so several processes or replicas
cannot share an upload and S3 is not supported (file IO is blocking, in the request); auth is
one router-wide dependency, not a per-upload owner check returning 404 to anyone else; its hook
runs once an upload completes, with no per-chunk hook to hash and validate on the way through,
so a 50 GB file would have to be read again after the last byte. Adapting it would have meant
replacing its storage, its state and its hook points, i.e. most of it, so the protocol is
implemented here (about as long as the glue would have been) on top of src/storage.py.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.auth.dependencies import CurrentUser
from src.auth.models import User
from src.database import after_commit, run_after_commit, utcnow
from src.dependencies import SessionDep, StorageDep
from src.exceptions import AppError, KernelErrorCode, error_response, error_responses
from src.sampleFileUpload import service
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.dependencies import FilesConfigDep
from src.sampleFileUpload.exceptions import (
    ChunkChecksumMismatchError,
    FileTooLargeError,
    InvalidContentTypeError,
    InvalidUploadRequestError,
    OffsetMismatchError,
    StorageUnavailableError,
    TusVersionError,
    UnsupportedChecksumAlgorithmError,
    UploadExpiredError,
    UploadLockedError,
    UploadNotFoundError,
)
from src.sampleFileUpload.fastq_workers import FastqWorkers
from src.sampleFileUpload.ingest import (
    HASH_ALGORITHMS,
    BodyInterrupted,
    FileDigest,
    TaskGroup,
    blocks,
    new_hash,
    pump,
)
from src.sampleFileUpload.uploads import check_declared
from src.sampleFileUpload.utils import check_filename, declared_hex, parse_read
from src.storage import ResumableWriter, Storage, WriterBusyError
from src.study import service as study_service
from src.study import visibility
from src.study.constants import StudyStatus
from src.study.exceptions import ForbiddenError, SampleNotFoundError, StudyLockedError
from src.study.models import Upload

logger = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
CLEANUP_BATCH = 100


# ---------------------------------------------------------------------------------------------
# Protocol plumbing: Tus-Resumable on every response, 412 on other versions.


class TusRoute(APIRoute):
    """Adds ``Tus-Resumable`` to every response (errors included) and refuses requests that do
    not speak tus 1.0.0 (OPTIONS excepted) with 412 and ``Tus-Version``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tus_handler(request: Request) -> Response:
            try:
                if (
                    request.method != "OPTIONS"
                    and request.headers.get("tus-resumable") != TUS_VERSION
                ):
                    raise TusVersionError(headers={"Tus-Version": TUS_VERSION})
                response = await handler(request)
            except AppError as exc:
                response = error_response(
                    exc.status_code, exc.code, exc.detail, errors=exc.errors, headers=exc.headers
                )
            except RequestValidationError as exc:
                response = error_response(
                    400,
                    KernelErrorCode.VALIDATION_ERROR,
                    "The tus request is malformed; see errors.",
                    errors=[
                        {"loc": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg"))}
                        for e in exc.errors()
                    ],
                )
            response.headers["Tus-Resumable"] = TUS_VERSION
            return response

        return tus_handler


tus_router = APIRouter(prefix="/uploads", tags=["uploads"], route_class=TusRoute)

TUS_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 412, 413, 415, 423, 460, 503)


def http_date(moment: datetime) -> str:
    """RFC 7231 IMF-fixdate, as Upload-Expires wants it."""
    return format_datetime(moment, usegmt=True)


def parse_metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated ``key base64value`` pairs (the value may be absent)."""
    metadata: dict[str, str] = {}
    if not header or not header.strip():
        return metadata
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if not parts[0] or len(parts) > 2 or parts[0] in metadata:
            raise InvalidUploadRequestError(f"Upload-Metadata has a malformed pair: {pair!r}.")
        value = ""
        if len(parts) == 2:
            try:
                value = base64.b64decode(parts[1], validate=True).decode("utf-8")
            except (binascii.Error, ValueError) as exc:
                raise InvalidUploadRequestError(
                    f"Upload-Metadata value of {parts[0]!r} is not base64 of UTF-8 text."
                ) from exc
        metadata[parts[0]] = value
    return metadata


def _non_negative(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 19:
        raise InvalidUploadRequestError(f"{name} must be a non-negative integer.")
    return int(text)


@dataclass(frozen=True)
class ChunkChecksum:
    algorithm: str
    expected: bytes


def parse_checksum(header: str | None) -> ChunkChecksum | None:
    if header is None:
        return None
    algorithm, _, value = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in HASH_ALGORITHMS:
        raise UnsupportedChecksumAlgorithmError(
            f"Upload-Checksum algorithm {algorithm!r} is not one of md5, sha1, sha256."
        )
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != new_hash(algorithm).digest_size:
        raise InvalidUploadRequestError("Upload-Checksum is not a base64 digest.")
    return ChunkChecksum(algorithm, raw)


# ---------------------------------------------------------------------------------------------
# Per-process cache of hash and validator states, keyed by upload, offset and writer token.


class DigestCache:
    """Digests of uploads this process served, so the next chunk need not re-read storage.

    A cached digest's validator may still be working through the end of the previous chunk;
    the next PATCH queues behind it. The cache owns what it holds: a digest it drops (evicted,
    or found at the wrong offset) is closed, which stops its validator thread."""

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


def _cache_of(app: FastAPI) -> DigestCache:
    cache: DigestCache | None = getattr(app.state, "tus_cache", None)
    if cache is None:
        config: FilesConfig = app.state.files_config
        cache = app.state.tus_cache = DigestCache(config.tus_cached_uploads)
    return cache


# ---------------------------------------------------------------------------------------------
# Loading an upload: 404 for unknown or someone else's, 410 (and clean-up) once expired.


async def discard_upload(session: AsyncSession, storage: Storage, upload: Upload) -> None:
    """Forget an upload and, once committed, its stored bytes."""
    key, state = upload.storage_key, dict(upload.storage_state or {})
    await service.forget_upload(session, upload=upload)

    async def remove() -> None:
        if state:
            await storage.abort_state(key, state)

    after_commit(session, remove)


async def owned_upload(
    upload_id: str, user: CurrentUser, session: SessionDep, storage: StorageDep
) -> Upload:
    try:
        parsed = uuid.UUID(upload_id)
    except ValueError:
        raise UploadNotFoundError from None
    upload = await service.get_upload(session, upload_id=parsed)
    if upload is None or upload.owner_id != user.id:
        raise UploadNotFoundError
    now = utcnow()
    if upload.expires_at <= now and not _leased(upload, now):
        await discard_upload(session, storage, upload)
        await session.commit()
        await run_after_commit(session)
        raise UploadExpiredError
    return upload


def _leased(upload: Upload, now: datetime) -> bool:
    return (
        upload.lease_token is not None
        and upload.lease_expires_at is not None
        and upload.lease_expires_at > now
    )


OwnedUpload = Annotated[Upload, Depends(owned_upload)]


# ---------------------------------------------------------------------------------------------
# Writing a chunk.


class _Lease:
    """The PATCH's claim on an upload, renewed in the background while the chunk streams.

    Renewals run beside the request's own work (recording progress, finishing the file), so
    each takes a session of its own: one session is never used by two tasks at once."""

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

    async def keep(self) -> None:
        while True:
            await anyio.sleep(self.seconds / 3)
            with anyio.CancelScope(shield=True):
                async with self.sessions() as session:
                    renewed = await service.renew_lease(
                        session, upload_id=self.upload_id, token=self.token, seconds=self.seconds
                    )
                    await session.commit()
            if not renewed:
                raise UploadLockedError("The upload was taken over by another request.")

    async def release(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.session.rollback()
            await service.release_lease(self.session, upload_id=self.upload_id, token=self.token)
            await self.session.commit()


@asynccontextmanager
async def _renewing(lease: _Lease) -> AsyncIterator[None]:
    """Keep the lease alive while the block runs."""
    async with TaskGroup() as group:
        group.start_soon(lease.keep)
        try:
            yield
        finally:
            group.cancel_scope.cancel()


@dataclass
class ChunkResult:
    offset: int
    expires_at: datetime
    file_id: uuid.UUID | None = None


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
            cache=cache if cache is not None else _cache_of(app),
            user=user,
            upload=upload,
        )

    def _expiry(self) -> datetime:
        return utcnow() + timedelta(hours=self.config.tus_expiry_hours)

    async def claim(self) -> _Lease:
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
        return _Lease(
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
            async with _renewing(lease):
                return await self._write(body, checksum, lease)
        except BaseException:
            await lease.release()
            raise

    async def _write(
        self, body: AsyncIterable[bytes], checksum: ChunkChecksum | None, lease: _Lease
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
        lease: _Lease,
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
            result = await self._save(writer, digest, lease, final=final)
            if not final:
                return result
            return await self.finish(writer, digest)
        finally:
            await writer.release()  # a no-op once finish() committed or aborted it

    async def _save(
        self, writer: ResumableWriter, digest: FileDigest, lease: _Lease, *, final: bool
    ) -> ChunkResult:
        """Make the received bytes durable and record them under the lease."""
        state = await writer.flush()
        expires_at = self._expiry()
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
            raise UploadLockedError("The upload was taken over by another request.")
        self.offset, self.state = digest.size, state
        if not final:
            self.cache.put(self.upload_id, digest.size, str(state.get("token", "")), digest)
        return ChunkResult(offset=digest.size, expires_at=expires_at)

    async def finish(self, writer: ResumableWriter | None, digest: FileDigest) -> ChunkResult:
        """Validate, check the declared checksums, commit the object, record the file."""
        upload = self.upload
        ingested = await digest.finish()
        try:
            check_declared(ingested, md5=upload.declared_md5, sha256=upload.declared_sha256)
        except AppError:
            with anyio.CancelScope(shield=True):
                if writer is not None:
                    await writer.abort()
                await self.session.rollback()
                await discard_upload(self.session, self.storage, upload)
                await self.session.commit()
                await run_after_commit(self.session)
            raise
        if writer is not None:
            await writer.commit()
        try:
            view, sample = await service.recheck_target(
                self.session, study_id=upload.study_id, sample_pk=upload.sample_pk, user=self.user
            )
            file = await service.complete_upload(
                self.session,
                upload=upload,
                view=view,
                sample=sample,
                user=self.user,
                ingested=ingested,
            )
            await self.session.commit()
        except (ForbiddenError, StudyLockedError, SampleNotFoundError):
            with anyio.CancelScope(shield=True):
                await self.session.rollback()
                await self.storage.delete(self.key)
                await discard_upload(self.session, self.storage, upload)
                await self.session.commit()
                await run_after_commit(self.session)
            raise
        return ChunkResult(offset=self.length, expires_at=self._expiry(), file_id=file.id)

    async def finish_stored(self) -> ChunkResult:
        """Finish an upload whose bytes all arrived but whose file was never recorded (the
        process died in between): re-read the bytes, wherever they are now."""
        lease = await self.claim()
        try:
            async with _renewing(lease):
                committed = await self.storage.size(self.key) == self.length
                if committed:
                    with FileDigest(self.workers) as digest:
                        source = self.storage.open_range(
                            self.key, chunk_size=self.config.ingest_block_bytes
                        )
                        async for block in blocks(source, self.config.ingest_block_bytes):
                            await digest.update(block)
                        return await self.finish(None, digest)
                digest = await self._digest()
                writer = await self._resume_writer()
                try:
                    return await self.finish(writer, digest)
                finally:
                    digest.close()
                    await writer.release()
        except BaseException:
            await lease.release()
            raise


def _offset_headers(result: ChunkResult) -> dict[str, str]:
    headers = {"Upload-Offset": str(result.offset), "Upload-Expires": http_date(result.expires_at)}
    if result.file_id is not None:
        headers["Upload-File-Id"] = str(result.file_id)
    return headers


def _wants_body(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == OFFSET_CONTENT_TYPE


# ---------------------------------------------------------------------------------------------
# Routes.


@tus_router.options("", status_code=204)
async def tus_options(config: FilesConfigDep) -> Response:
    """tus discovery: version, extensions, maximum size and checksum algorithms."""
    return Response(
        status_code=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(config.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(HASH_ALGORITHMS),
        },
    )


@tus_router.post("", status_code=201, responses=TUS_ERRORS)
async def create_upload(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
    config: FilesConfigDep,
) -> Response:
    """Create an upload (Upload-Length, Upload-Metadata: study, sample_id, filename, read?, md5?,
    sha256?); with an application/offset+octet-stream body, its first chunk too."""
    headers = request.headers
    if headers.get("upload-defer-length") is not None:
        raise InvalidUploadRequestError("Upload-Defer-Length is not supported; send Upload-Length.")
    length = _non_negative(headers.get("upload-length"), "Upload-Length")
    if length is None:
        raise InvalidUploadRequestError("Upload-Length is required.")
    metadata = parse_metadata(headers.get("upload-metadata"))
    missing = [name for name in ("study", "sample_id", "filename") if not metadata.get(name)]
    if missing:
        raise InvalidUploadRequestError(
            f"Upload-Metadata must include {', '.join(missing)}.",
            errors=[{"field": name, "message": "required"} for name in missing],
        )
    view = await visibility.get_view(session, reference=metadata["study"], user=user)
    if view.my_role not in service.EDITORS:
        raise ForbiddenError
    if view.study.status != StudyStatus.DRAFT:
        raise StudyLockedError(f"The study is {view.study.status.value}; only drafts can change.")
    sample = await study_service.get_sample(
        session, study=view.study, sample_id=metadata["sample_id"]
    )
    if sample is None:
        raise SampleNotFoundError
    filename = check_filename(metadata["filename"])
    read = parse_read(metadata.get("read"), filename)
    md5 = declared_hex(metadata.get("md5"), "md5", source="md5")
    sha256 = declared_hex(metadata.get("sha256"), "sha256", source="sha256")
    await service.upload_allowance(session, config=config, user=user, length=length)
    await service.ensure_name_free(session, sample_pk=sample.id, filename=filename)
    key = service.new_storage_key(view.study.id)
    writer = await storage.open_resumable(key)
    state = await writer.flush()
    await writer.release()
    try:
        upload = await service.create_upload(
            session,
            view=view,
            sample=sample,
            user=user,
            filename=filename,
            read=read,
            length=length,
            declared_md5=md5,
            declared_sha256=sha256,
            storage_key=key,
            storage_state=state,
            expires_at=utcnow() + timedelta(hours=config.tus_expiry_hours),
        )
        await session.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await storage.abort_state(key, state)
        raise
    location = f"{request.url.path.rstrip('/')}/{upload.id}"
    result = ChunkResult(offset=0, expires_at=upload.expires_at)
    chunk = ChunkWriter.in_app(request.app, session=session, user=user, upload=upload)
    if length == 0:
        result = await chunk.finish_stored()
    elif _wants_body(request):
        checksum = parse_checksum(headers.get("upload-checksum"))
        try:
            result = await chunk.write(request.stream(), checksum)
        except (BodyInterrupted, ChunkChecksumMismatchError):
            # The upload exists either way; the client resumes from the offset it reads back.
            result = ChunkResult(offset=chunk.offset, expires_at=upload.expires_at)
    return Response(status_code=201, headers={"Location": location, **_offset_headers(result)})


@tus_router.head("/{upload_id}", status_code=200, responses=TUS_ERRORS)
async def upload_offset(upload: OwnedUpload) -> Response:
    """How much of the upload the server has (Upload-Offset) out of Upload-Length."""
    return Response(
        status_code=200,
        headers={
            "Upload-Offset": str(upload.offset),
            "Upload-Length": str(upload.length),
            "Upload-Expires": http_date(upload.expires_at),
            "Cache-Control": "no-store",
        },
    )


@tus_router.patch("/{upload_id}", status_code=204, responses=TUS_ERRORS)
async def append_chunk(
    request: Request,
    upload: OwnedUpload,
    user: CurrentUser,
    session: SessionDep,
) -> Response:
    """Append a chunk at Upload-Offset (409 if that is not the upload's offset; 460 if it does
    not match Upload-Checksum). After the last byte, Upload-File-Id names the finished file."""
    if not _wants_body(request):
        raise InvalidContentTypeError
    offset = _non_negative(request.headers.get("upload-offset"), "Upload-Offset")
    if offset is None:
        raise InvalidUploadRequestError("Upload-Offset is required.")
    if offset != upload.offset:
        raise OffsetMismatchError(
            f"Upload-Offset is {offset} but the upload is at {upload.offset}.",
            headers={"Upload-Offset": str(upload.offset)},
        )
    checksum = parse_checksum(request.headers.get("upload-checksum"))
    length = _non_negative(request.headers.get("content-length"), "Content-Length")
    if length is not None and offset + length > upload.length:
        raise FileTooLargeError(
            f"The chunk goes past Upload-Length: {offset} + {length} > {upload.length}."
        )
    chunk = ChunkWriter.in_app(request.app, session=session, user=user, upload=upload)
    if offset == upload.length:  # every byte is here: finish a file left unrecorded
        result = await chunk.finish_stored()
    else:
        try:
            result = await chunk.write(request.stream(), checksum)
        except BodyInterrupted:
            raise InvalidUploadRequestError("The chunk was interrupted.") from None
    return Response(status_code=204, headers=_offset_headers(result))


@tus_router.delete("/{upload_id}", status_code=204, responses=TUS_ERRORS)
async def terminate_upload(
    upload: OwnedUpload, session: SessionDep, storage: StorageDep
) -> Response:
    """Abandon the upload: its bytes and its unfinished file go."""
    if _leased(upload, utcnow()):
        raise UploadLockedError
    await discard_upload(session, storage, upload)
    return Response(status_code=204)


# ---------------------------------------------------------------------------------------------
# Clean-up of expired uploads.


async def remove_expired_uploads(
    sessionmaker: async_sessionmaker[AsyncSession], storage: Storage
) -> int:
    """Delete expired, unleased uploads, their unfinished files and stored bytes; the count."""
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
            except AppError as exc:
                logger.warning("stranded upload %s was not finished: %s", upload.id, exc.code)
    return finished


@asynccontextmanager
async def upload_cleanup(app: FastAPI) -> AsyncIterator[None]:
    """While the app runs: finish stranded uploads every TUS_LEASE_SECONDS (once the lease of
    the process that died has run out), and remove expired ones every
    TUS_CLEANUP_INTERVAL_SECONDS. At shutdown, the cached upload states are let go."""
    config: FilesConfig = app.state.files_config
    interval = config.tus_cleanup_interval_seconds
    if not interval:
        try:
            yield
        finally:
            _cache_of(app).clear()
        return

    async def run(task: Callable[[], Coroutine[Any, Any, int]], what: str) -> None:
        try:
            count = await task()
            if count:
                logger.info("%s %d uploads", what, count)
        except Exception:
            logger.exception("periodic upload task failed: %s", what)

    async def loop() -> None:
        period = min(interval, config.tus_lease_seconds)
        waited = 0.0
        while True:
            await anyio.sleep(period)
            waited += period
            await run(lambda: finish_stranded_uploads(app), "finished stranded")
            if waited >= interval:
                waited = 0.0
                await run(
                    lambda: remove_expired_uploads(app.state.sessionmaker, app.state.storage),
                    "removed expired",
                )

    async with anyio.create_task_group() as group:
        group.start_soon(loop)
        try:
            yield
        finally:
            group.cancel_scope.cancel()
            _cache_of(app).clear()
