"""Database work of sequence files: storage keys, quotas, file names, the re-check after a
stream, recording, listing and deleting files. Plain async functions: they flush, never commit;
the upload flows (``uploads.py`` and tus) decide where a transaction ends, so that none stays
open while a body streams.

Quotas count what a user stores (their files' sizes) plus what their uploads in progress have
reserved: each unfinished tus upload its declared length, each whole-file upload its
``StorageReservation``. Both are taken under a per-user lock before any byte streams.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from src.auth.models import User
from src.database import after_commit, utcnow
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.files.exceptions import (
    FileExistsInSampleError,
    FileTooLargeError,
    QuotaExceededError,
)
from src.sampleFileUpload.files.ingest import Ingested
from src.storage import Storage
from src.study import counters, visibility
from src.study import service as study_service
from src.study.constants import EventAction, FileStatus, ReadKind
from src.study.exceptions import SampleNotFoundError
from src.study.models import Sample, SampleFile, StorageReservation, Study, Upload
from src.study.permissions import ensure_editable_draft
from src.study.visibility import StudyView


def new_storage_key(study_id: uuid.UUID) -> str:
    """A generated key under the study's prefix, so deleting the study removes the object."""
    return f"{study_storage_prefix(study_id)}{uuid.uuid4()}"


def study_storage_prefix(study_id: uuid.UUID) -> str:
    return study_service.study_storage_prefix(study_id)


# ---------------------------------------------------------------------------------------------
# Limits. Quota decisions of one user are serialised (``lock_quota``) and what they grant is
# recorded before any byte streams: a tus upload's row (its declared length), or a whole-file
# upload's ``StorageReservation``. So N parallel uploads never commit more than the quota.


# The advisory lock namespace of quota decisions ("QUOT").
QUOTA_LOCK_NAMESPACE = 0x51554F54


async def lock_quota(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Serialise the quota decisions of one user until this transaction ends.

    PostgreSQL: a transaction-scoped advisory lock keyed by the user (no row of theirs is
    locked, so their other requests are not held up). SQLite: nothing to do, every write
    transaction already holds the database's one write lock (``BEGIN IMMEDIATE``)."""
    if session.get_bind().dialect.name == "postgresql":
        # The two-key form, in a namespace of its own: no clash with single-key advisory locks
        # taken elsewhere; two users sharing a key (1 in 2**32) merely wait for each other.
        key = int.from_bytes(user_id.bytes[:4], "big", signed=True)
        await session.execute(select(func.pg_advisory_xact_lock(QUOTA_LOCK_NAMESPACE, key)))


async def used_bytes(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    """Bytes the user stores, plus those reserved by their unfinished tus uploads and by their
    whole-file uploads in progress (expired reservations no longer count)."""
    now = utcnow()
    stored = select(func.coalesce(func.sum(SampleFile.size), 0)).where(
        SampleFile.uploaded_by_id == user_id
    )
    uploading = select(func.coalesce(func.sum(Upload.length), 0)).where(
        Upload.owner_id == user_id,
        Upload.finished_at.is_(None),  # a finished upload's bytes are its file's
        Upload.expires_at > now,
    )
    reserved = select(func.coalesce(func.sum(StorageReservation.bytes), 0)).where(
        StorageReservation.user_id == user_id, StorageReservation.expires_at > now
    )
    row = (
        await session.execute(
            select(
                stored.scalar_subquery(), uploading.scalar_subquery(), reserved.scalar_subquery()
            )
        )
    ).one()
    return sum(int(value or 0) for value in row)


def _quota_left(config: FilesConfig, used: int) -> int:
    return max(0, config.storage_quota_bytes - used)


def _check_size(config: FilesConfig, length: int | None) -> None:
    if length is not None and length > config.max_upload_bytes:
        raise FileTooLargeError(
            f"The file has {length} bytes; the largest accepted upload is "
            f"{config.max_upload_bytes}."
        )


def _quota_exceeded(config: FilesConfig, length: int, left: int) -> QuotaExceededError:
    return QuotaExceededError(
        f"The upload has {length} bytes; {left} of your {config.storage_quota_bytes}-byte "
        "quota are left (stored files and uploads in progress count)."
    )


async def check_room(
    session: AsyncSession, *, config: FilesConfig, user: User, length: int, lock: bool
) -> None:
    """413 unless an upload of ``length`` bytes fits the largest upload and what is left of the
    user's quota. With ``lock``, the user's quota stays locked until the transaction ends, so
    the caller can record the upload (a tus upload row) before anyone else decides."""
    _check_size(config, length)
    if not config.storage_quota_bytes:
        return
    if lock:
        await lock_quota(session, user_id=user.id)
    left = _quota_left(config, await used_bytes(session, user_id=user.id))
    if length > left:
        raise _quota_exceeded(config, length, left)


@dataclass(frozen=True)
class Reservation:
    """What a whole-file upload may store: ``limit`` bytes, reserved by the row ``id`` (None
    when there is no quota, so nothing to reserve)."""

    id: uuid.UUID | None
    limit: int
    quota_bound: bool  # the limit is what was left of the quota, not the largest upload

    def too_large(self) -> FileTooLargeError | QuotaExceededError:
        if self.quota_bound:
            return QuotaExceededError(
                f"The upload exceeds what was left of your quota ({self.limit} bytes)."
            )
        return FileTooLargeError(f"The upload exceeds the largest accepted size ({self.limit}).")


async def reserve(
    session: AsyncSession,
    *,
    config: FilesConfig,
    user: User,
    length: int | None,
    overhead: int = 0,
) -> Reservation:
    """Reserve, under the user's quota lock, the bytes a whole-file upload may store: its
    ``length`` (the request body's, of which up to ``overhead`` may be multipart framing) or,
    when the length is unknown, all that is left up to the largest upload; the upload settles
    on its real size when it records the file. 413 when even ``length - overhead`` does not fit.
    The caller commits at once (before reading the body) and later ``settle``s or ``release``s."""
    _check_size(config, None if length is None else length - overhead)
    largest = config.max_upload_bytes if length is None else min(length, config.max_upload_bytes)
    if not config.storage_quota_bytes:
        return Reservation(id=None, limit=config.max_upload_bytes, quota_bound=False)
    await lock_quota(session, user_id=user.id)
    now = utcnow()
    # Reservations left by killed processes stop counting when they expire; drop the user's.
    await session.execute(
        delete(StorageReservation).where(
            StorageReservation.user_id == user.id, StorageReservation.expires_at <= now
        )
    )
    left = _quota_left(config, await used_bytes(session, user_id=user.id))
    if length is not None and length - overhead > left:
        raise _quota_exceeded(config, length - overhead, left)
    limit = min(largest, left)
    row = StorageReservation(
        id=uuid.uuid4(),
        user_id=user.id,
        bytes=limit,
        expires_at=now + timedelta(seconds=config.upload_reservation_seconds),
    )
    session.add(row)
    await session.flush()
    return Reservation(id=row.id, limit=limit, quota_bound=limit < config.max_upload_bytes)


async def renew_reservation(
    session: AsyncSession, *, reservation_id: uuid.UUID, seconds: float
) -> None:
    """Keep a reservation counting for ``seconds`` more (while its body streams)."""
    await session.execute(
        update(StorageReservation)
        .where(StorageReservation.id == reservation_id)
        .values(expires_at=utcnow() + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )


async def release_reservation(session: AsyncSession, *, reservation_id: uuid.UUID | None) -> None:
    """Drop a reservation: the upload failed, or its file now counts in its place."""
    if reservation_id is not None:
        await session.execute(
            delete(StorageReservation)
            .where(StorageReservation.id == reservation_id)
            .execution_options(synchronize_session=False)
        )


async def remove_expired_reservations(session: AsyncSession) -> int:
    """Delete every expired reservation (they no longer count; a user's are also dropped by
    their next reservation, but one who never uploads again would keep them); the count."""
    result = await session.execute(
        delete(StorageReservation)
        .where(StorageReservation.expires_at <= utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def ensure_name_free(session: AsyncSession, *, sample_pk: uuid.UUID, filename: str) -> None:
    """409 FILE_EXISTS when the sample has a file (finished or uploading) of that name."""
    taken = await session.scalar(
        select(SampleFile.id).where(
            SampleFile.sample_pk == sample_pk, SampleFile.filename == filename
        )
    )
    if taken is not None:
        raise FileExistsInSampleError(
            f"The sample already has a file named {filename!r}; delete it first."
        )


# ---------------------------------------------------------------------------------------------
# Re-checking after a stream: the study may have changed while the body was arriving.


async def recheck_target(
    session: AsyncSession, *, study_id: uuid.UUID, sample_pk: uuid.UUID, user: User
) -> tuple[StudyView, Sample]:
    """The study and sample, locked and re-read, if ``user`` may still add files to them."""
    await session.execute(
        select(Study)
        .where(Study.id == study_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    view = await visibility.get_view(session, reference=str(study_id), user=user)
    ensure_editable_draft(
        view,
        locked_detail=f"The study became {view.study.status.value} while the file was uploading.",
    )
    sample = await session.scalar(
        select(Sample)
        .where(Sample.id == sample_pk)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if sample is None:
        raise SampleNotFoundError("The sample was deleted while the file was uploading.")
    return view, sample


def apply_ingested(file: SampleFile, ingested: Ingested) -> None:
    report = ingested.report
    file.size = ingested.size
    file.md5 = ingested.md5
    file.sha256 = ingested.sha256
    file.status = FileStatus.VALID if report.valid else FileStatus.INVALID
    file.read_count = report.read_count
    file.base_count = report.base_count
    file.min_length = report.min_length
    file.max_length = report.max_length
    file.mean_length = report.mean_length
    file.name_digest = report.name_digest
    file.validation_errors = [
        {"line": issue.line, "code": str(issue.code), "message": issue.message}
        for issue in report.errors
    ]


async def new_file(
    session: AsyncSession,
    *,
    sample: Sample,
    user: User,
    filename: str,
    read: ReadKind,
    storage_key: str,
) -> SampleFile:
    """A file record for ``sample`` (not yet added), once its name is known to be free."""
    await ensure_name_free(session, sample_pk=sample.id, filename=filename)
    return SampleFile(
        id=uuid.uuid4(),
        sample_pk=sample.id,
        filename=filename,
        read=read,
        storage_key=storage_key,
        uploaded_by_id=user.id,
        created_at=utcnow(),
    )


def file_added(session: AsyncSession, view: StudyView, user: User, file: SampleFile) -> None:
    """The audit trail's entry (the study's counters, updated_at and version are the caller's:
    ``counters.add`` with ``touch``)."""
    study_service.record_event(
        session,
        study=view.study,
        actor=user,
        action=EventAction.FILE_ADDED,
        detail={
            "file_id": str(file.id),
            "sample_id": file.sample_record.sample_id,
            "filename": file.filename,
            "size": file.size,
            "status": file.status.value,
        },
    )


async def add_file(
    session: AsyncSession,
    *,
    view: StudyView,
    sample: Sample,
    user: User,
    filename: str,
    read: ReadKind,
    storage_key: str,
    ingested: Ingested,
) -> SampleFile:
    """Record a stored, validated file in ``sample``."""
    file = await new_file(
        session, sample=sample, user=user, filename=filename, read=read, storage_key=storage_key
    )
    apply_ingested(file, ingested)
    file.sample_record = sample
    session.add(file)
    file_added(session, view, user, file)
    await session.flush()
    await counters.add(
        session,
        study_id=view.study.id,
        tally=counters.file_tally(file.status, file.size, file.read_count, file.base_count),
        touch=True,
    )
    return file


# ---------------------------------------------------------------------------------------------
# Reading and deleting files.


async def get_file(session: AsyncSession, *, file_id: uuid.UUID) -> SampleFile | None:
    """A file with its sample loaded (for ``sample_id`` and the study)."""
    result = await session.scalars(
        select(SampleFile)
        .where(SampleFile.id == file_id)
        .options(joinedload(SampleFile.sample_record))
    )
    return result.one_or_none()


async def list_files(
    session: AsyncSession, *, sample: Sample, valid_only: bool
) -> list[SampleFile]:
    statement = (
        select(SampleFile)
        .where(SampleFile.sample_pk == sample.id)
        .options(joinedload(SampleFile.sample_record))
        .order_by(SampleFile.created_at, SampleFile.id)
    )
    if valid_only:
        statement = statement.where(SampleFile.status == FileStatus.VALID)
    return list((await session.scalars(statement)).all())


async def delete_file(
    session: AsyncSession, *, view: StudyView, file: SampleFile, storage: Storage, actor: User
) -> None:
    """Delete a file (and the tus upload filling it); its bytes go once committed."""
    # The study's row first, the order a finishing upload takes its study and file in.
    await session.execute(select(Study.id).where(Study.id == view.study.id).with_for_update())
    uploads = (
        await session.execute(
            select(Upload.storage_key, Upload.storage_state).where(Upload.file_id == file.id)
        )
    ).all()
    await session.execute(delete(Upload).where(Upload.file_id == file.id))
    await counters.remove_files(session, where=SampleFile.id == file.id, touch=True)
    study_service.record_event(
        session,
        study=view.study,
        actor=actor,
        action=EventAction.FILE_DELETED,
        detail={"file_id": str(file.id), "filename": file.filename},
    )
    await session.flush()
    key = file.storage_key

    async def remove() -> None:
        await storage.delete(key)
        for upload_key, state in uploads:
            if state:
                await storage.abort_state(upload_key, state)

    after_commit(session, remove)
