"""Database work of sequence files: storage keys, quotas, file names, the re-check after a
stream, recording, listing and deleting files. Plain async functions: they flush, never commit;
the upload flows (``uploads.py`` and tus) decide where a transaction ends, so that none stays
open while a body streams.

Quotas count what a user stores (their files' sizes) plus what their unfinished tus uploads
have reserved (each upload's declared length).
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select
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
from src.study import service as study_service
from src.study import visibility
from src.study.constants import EventAction, FileStatus, ReadKind
from src.study.exceptions import SampleNotFoundError
from src.study.models import Sample, SampleFile, Study, Upload
from src.study.permissions import ensure_editable_draft
from src.study.visibility import StudyView


def new_storage_key(study_id: uuid.UUID) -> str:
    """A generated key under the study's prefix, so deleting the study removes the object."""
    return f"{study_storage_prefix(study_id)}{uuid.uuid4()}"


def study_storage_prefix(study_id: uuid.UUID) -> str:
    return study_service.study_storage_prefix(study_id)


# ---------------------------------------------------------------------------------------------
# Limits.


async def used_bytes(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    """Bytes the user stores plus bytes reserved by their unfinished uploads."""
    stored = await session.scalar(
        select(func.coalesce(func.sum(SampleFile.size), 0)).where(
            SampleFile.uploaded_by_id == user_id
        )
    )
    reserved = await session.scalar(
        select(func.coalesce(func.sum(Upload.length), 0)).where(
            Upload.owner_id == user_id,
            Upload.finished_at.is_(None),  # a finished upload's bytes are its file's
            Upload.expires_at > utcnow(),
        )
    )
    return int(stored or 0) + int(reserved or 0)


async def upload_allowance(
    session: AsyncSession, *, config: FilesConfig, user: User, length: int | None
) -> int:
    """The most bytes this upload may have; 413 at once when a known ``length`` is over it."""
    allowance = config.max_upload_bytes
    if length is not None and length > allowance:
        raise FileTooLargeError(
            f"The file has {length} bytes; the largest accepted upload is {allowance}."
        )
    if config.storage_quota_bytes:
        left = max(0, config.storage_quota_bytes - await used_bytes(session, user_id=user.id))
        if length is not None and length > left:
            raise QuotaExceededError(
                f"The file has {length} bytes; {left} of your "
                f"{config.storage_quota_bytes}-byte quota are left."
            )
        allowance = min(allowance, left)
    return allowance


def too_large_error(config: FilesConfig, allowance: int) -> FileTooLargeError | QuotaExceededError:
    if allowance < config.max_upload_bytes:
        return QuotaExceededError(f"The upload exceeds what is left of your quota ({allowance}).")
    return FileTooLargeError(f"The upload exceeds the largest accepted size ({allowance}).")


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
    view.study.updated_at = utcnow()
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
    uploads = (
        await session.execute(
            select(Upload.storage_key, Upload.storage_state).where(Upload.file_id == file.id)
        )
    ).all()
    await session.execute(delete(Upload).where(Upload.file_id == file.id))
    await session.execute(delete(SampleFile).where(SampleFile.id == file.id))
    view.study.updated_at = utcnow()
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
