"""Whole-file uploads in one request: the multipart form (POST) and the raw body (PUT).

Three short steps, so no database transaction is open while the body streams: authorise and
reserve the bytes the body may store against the user's quota (the route's dependencies, then
``Receiver.reserved``, then a commit); stream the body into a new object through the ingest
pipeline with no transaction open, the reservation renewed meanwhile; record the file in a last
transaction after re-checking that the study is still an editable draft and the sample still
exists, the reservation giving way to the file's size in the same commit. Whatever fails, the
stored object is removed and the reservation given back: a refused or broken upload keeps
nothing and holds no quota.

A body of unknown length (no Content-Length) reserves all that is left of the quota, up to
MAX_UPLOAD_BYTES, and settles on its real size when recorded: the user's other uploads wait
for it meanwhile, which is the price of not knowing. Send Content-Length (curl does) to
reserve only what is needed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.auth.models import User
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.files import service
from src.sampleFileUpload.files.exceptions import ChecksumMismatchError, MissingFileError
from src.sampleFileUpload.files.fastq_workers import FastqWorkers
from src.sampleFileUpload.files.ingest import FileDigest, Ingested, TaskGroup, pump
from src.sampleFileUpload.files.multipart import MultipartForm
from src.sampleFileUpload.files.utils import check_filename, declared_hex, parse_read
from src.storage import Storage
from src.study.constants import ReadKind
from src.study.models import Sample, SampleFile
from src.study.visibility import StudyView

logger = logging.getLogger(__name__)

# Boundaries and the small text fields around the file in a multipart body.
MULTIPART_OVERHEAD = 1024 * 1024
# The whole-file MD5 and SHA-256 a client declared (hex), if it did.
Declared = tuple[str | None, str | None]


def check_declared(ingested: Ingested, *, md5: str | None, sha256: str | None) -> None:
    """422 CHECKSUM_MISMATCH when a declared whole-file digest differs from the computed one."""
    problems = []
    if md5 is not None and md5 != ingested.md5:
        problems.append({"algorithm": "md5", "declared": md5, "computed": ingested.md5})
    if sha256 is not None and sha256 != ingested.sha256:
        problems.append({"algorithm": "sha256", "declared": sha256, "computed": ingested.sha256})
    if problems:
        names = " and ".join(p["algorithm"] for p in problems)
        raise ChecksumMismatchError(
            f"The received file does not match its declared {names}; nothing was kept.",
            errors=problems,
        )


class Receiver:
    """One whole-file upload request: who sends what to which sample, and the steps that take
    it in (built by the route's ``ReceiverDep``)."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        sessions: async_sessionmaker[AsyncSession],
        storage: Storage,
        config: FilesConfig,
        workers: FastqWorkers,
        user: User,
        view: StudyView,
        sample: Sample,
    ) -> None:
        self.session = session
        self.sessions = sessions
        self.storage = storage
        self.config = config
        self.workers = workers
        self.user = user
        self.view = view
        self.sample = sample
        self.reservation = service.Reservation(
            id=None, limit=config.max_upload_bytes, quota_bound=False
        )

    @asynccontextmanager
    async def reserved(
        self, *, length: int | None, overhead: int = 0, filename: str | None = None
    ) -> AsyncIterator[None]:
        """Reserve the bytes the body may store (and check ``filename`` is free) in one short
        transaction, committed before the body is read; keep the reservation alive while the
        block runs, and give it back if the block fails. ``record`` settles it on success."""
        try:
            self.reservation = await service.reserve(
                self.session, config=self.config, user=self.user, length=length, overhead=overhead
            )
            if filename is not None:
                await service.ensure_name_free(
                    self.session, sample_pk=self.sample.id, filename=filename
                )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.session.rollback()
            raise
        await self.session.commit()
        try:
            async with TaskGroup() as group:
                if self.reservation.id is not None:
                    group.start_soon(self._keep, self.reservation.id)
                try:
                    yield
                finally:
                    group.cancel_scope.cancel()
        except BaseException:
            await self._release()
            raise

    async def _keep(self, reservation_id: uuid.UUID) -> None:
        """Renew the reservation every third of its lifetime while the body streams (on a
        session of its own: the request's is not to be used by two tasks at once)."""
        seconds = self.config.upload_reservation_seconds
        while True:
            await anyio.sleep(seconds / 3)
            with anyio.CancelScope(shield=True):
                try:
                    async with self.sessions() as session:
                        await service.renew_reservation(
                            session, reservation_id=reservation_id, seconds=seconds
                        )
                        await session.commit()
                except Exception:
                    logger.exception("could not renew quota reservation %s", reservation_id)

    async def _release(self) -> None:
        """Give the reservation back at once (else it stops counting when it expires)."""
        if self.reservation.id is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await self.session.rollback()
                await service.release_reservation(self.session, reservation_id=self.reservation.id)
                await self.session.commit()
            except Exception:
                logger.exception("could not release quota reservation %s", self.reservation.id)

    async def check_name(self, filename: str) -> None:
        try:
            await service.ensure_name_free(
                self.session, sample_pk=self.sample.id, filename=filename
            )
        finally:
            await self.session.commit()

    async def store(
        self, source: AsyncIterable[bytes], declared: Callable[[], Awaitable[Declared]]
    ) -> tuple[str, Ingested]:
        """Stream ``source`` into a new object, hashed and validated on the way; commit it only
        if it matches the checksums ``declared()`` gives once the body is read. Its key and
        what was learnt."""
        key = service.new_storage_key(self.view.study.id)
        async with await self.storage.open_writer(key) as writer:
            with FileDigest(self.workers) as digest:
                await pump(
                    source,
                    digest=digest,
                    writer=writer,
                    block_size=self.config.ingest_block_bytes,
                    limit=self.reservation.limit,
                    too_large=self.reservation.too_large,
                )
                md5, sha256 = await declared()
                ingested = await digest.finish()
                check_declared(ingested, md5=md5, sha256=sha256)
                await writer.commit()
        return key, ingested

    async def record(
        self, *, key: str, filename: str, read: ReadKind, ingested: Ingested
    ) -> SampleFile:
        """Record the committed object as a file, its size taking the reservation's place in
        the quota (one transaction); remove the object if that is refused."""
        try:
            await service.release_reservation(self.session, reservation_id=self.reservation.id)
            view, sample = await service.recheck_target(
                self.session, study_id=self.view.study.id, sample_pk=self.sample.id, user=self.user
            )
            file = await service.add_file(
                self.session,
                view=view,
                sample=sample,
                user=self.user,
                filename=filename,
                read=read,
                storage_key=key,
                ingested=ingested,
            )
            await self.session.commit()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.session.rollback()
                await self.storage.delete(key)
            raise
        return file


async def receive_raw(
    receiver: Receiver,
    *,
    filename: str,
    body: AsyncIterable[bytes],
    length: int | None,
    content_md5: str | None,
    content_sha256: str | None,
    read: str | None,
) -> SampleFile:
    """PUT: the body is the file; checksums come from Content-MD5 / X-Checksum-SHA256."""
    filename = check_filename(filename)
    read_kind = parse_read(read, filename)
    md5 = declared_hex(content_md5, "md5", source="Content-MD5")
    sha256 = declared_hex(content_sha256, "sha256", source="X-Checksum-SHA256")

    async def declared() -> Declared:
        return md5, sha256

    async with receiver.reserved(length=length, filename=filename):
        key, ingested = await receiver.store(body, declared)
        return await receiver.record(key=key, filename=filename, read=read_kind, ingested=ingested)


async def receive_form(
    receiver: Receiver,
    *,
    content_type: str | None,
    body: AsyncIterable[bytes],
    length: int | None,
) -> SampleFile:
    """POST: a multipart form with a ``file`` part and optional ``read``, ``md5``, ``sha256``."""
    form = MultipartForm(content_type, body)
    async with receiver.reserved(length=length, overhead=MULTIPART_OVERHEAD):
        filename = await form.next_file()
        if filename is None:
            raise MissingFileError
        filename = check_filename(filename)
        # Fields sent before the file are checked now, so a typo costs no upload.
        parse_read(form.fields.get("read"), filename)
        declared_hex(form.fields.get("md5"), "md5", source="md5")
        declared_hex(form.fields.get("sha256"), "sha256", source="sha256")
        await receiver.check_name(filename)

        async def declared() -> Declared:
            """The fields, wherever they came in the body (read to its end first)."""
            fields = await form.finish()
            parse_read(fields.get("read"), filename)
            return (
                declared_hex(fields.get("md5"), "md5", source="md5"),
                declared_hex(fields.get("sha256"), "sha256", source="sha256"),
            )

        key, ingested = await receiver.store(form.file_data(), declared)
        read_kind = parse_read(form.fields.get("read"), filename)
        return await receiver.record(key=key, filename=filename, read=read_kind, ingested=ingested)
