"""Database work of tus uploads: creating an upload with the ``uploading`` file it will complete,
the lease a PATCH holds, recorded progress, completion, and the expired and stranded uploads the
clean-up task finds. Plain async functions: they flush, never commit; the writer decides where a
transaction ends, so that none stays open while a chunk streams."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.database import utcnow
from src.sampleFileUpload.files.ingest import Ingested
from src.sampleFileUpload.files.service import apply_ingested, file_added, new_file
from src.study import counters
from src.study.constants import FileStatus, ReadKind
from src.study.exceptions import SampleNotFoundError
from src.study.models import Sample, SampleFile, Upload
from src.study.permissions import edits_draft
from src.study.visibility import StudyView


async def create_upload(
    session: AsyncSession,
    *,
    view: StudyView,
    sample: Sample,
    user: User,
    filename: str,
    read: ReadKind,
    length: int,
    declared_md5: str | None,
    declared_sha256: str | None,
    upload_metadata: str | None,
    storage_key: str,
    storage_state: dict[str, Any],
    expires_at: datetime,
) -> Upload:
    """An upload and the ``uploading`` file it will complete."""
    file = await new_file(
        session, sample=sample, user=user, filename=filename, read=read, storage_key=storage_key
    )
    file.size = 0
    file.status = FileStatus.UPLOADING
    file.validation_errors = []
    session.add(file)
    await session.flush()
    await counters.add(
        session, study_id=view.study.id, tally=counters.file_tally(file.status, 0, None, None)
    )
    upload = Upload(
        id=uuid.uuid4(),
        owner_id=user.id,
        study_id=view.study.id,
        sample_pk=sample.id,
        filename=filename,
        read=read,
        declared_md5=declared_md5,
        declared_sha256=declared_sha256,
        upload_metadata=upload_metadata,
        length=length,
        offset=0,
        storage_key=storage_key,
        storage_state=storage_state,
        file_id=file.id,
        expires_at=expires_at,
    )
    session.add(upload)
    await session.flush()
    return upload


async def get_upload(session: AsyncSession, *, upload_id: uuid.UUID) -> Upload | None:
    return await session.scalar(
        select(Upload).where(Upload.id == upload_id).execution_options(populate_existing=True)
    )


async def take_lease(
    session: AsyncSession,
    *,
    upload_id: uuid.UUID,
    offset: int,
    token: str,
    seconds: float,
) -> bool:
    """Claim the upload for one PATCH at ``offset``; False if it moved or someone holds it."""
    now = utcnow()
    result = await session.execute(
        update(Upload)
        .where(
            Upload.id == upload_id,
            Upload.offset == offset,
            or_(Upload.lease_token.is_(None), Upload.lease_expires_at < now),
        )
        .values(lease_token=token, lease_expires_at=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


async def renew_lease(
    session: AsyncSession, *, upload_id: uuid.UUID, token: str, seconds: float
) -> bool:
    result = await session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lease_token == token)
        .values(lease_expires_at=utcnow() + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


async def release_lease(session: AsyncSession, *, upload_id: uuid.UUID, token: str) -> None:
    await session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lease_token == token)
        .values(lease_token=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


async def save_progress(
    session: AsyncSession,
    *,
    upload_id: uuid.UUID,
    token: str,
    offset: int,
    storage_state: dict[str, Any],
    expires_at: datetime,
    keep_lease: bool,
) -> bool:
    """Record durable progress made under the lease ``token``; False if the lease was lost."""
    values: dict[str, Any] = {
        "offset": offset,
        "storage_state": storage_state,
        "expires_at": expires_at,
        "updated_at": utcnow(),
    }
    if not keep_lease:
        values.update(lease_token=None, lease_expires_at=None)
    result = await session.execute(
        update(Upload)
        .where(Upload.id == upload_id, Upload.lease_token == token)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


async def complete_upload(
    session: AsyncSession,
    *,
    upload: Upload,
    view: StudyView,
    sample: Sample,
    user: User,
    ingested: Ingested,
    expires_at: datetime,
) -> SampleFile:
    """Turn the upload's ``uploading`` file into a valid or invalid one; the upload is kept,
    finished (it holds no stored bytes of its own any more), until ``expires_at``."""
    file = await session.get(SampleFile, upload.file_id, populate_existing=True)
    if file is None:  # the file was deleted meanwhile: the upload went with it
        raise SampleNotFoundError("The file was deleted while it was uploading.")
    before = counters.file_tally(file.status, file.size, file.read_count, file.base_count)
    apply_ingested(file, ingested)
    file.sample_record = sample
    now = utcnow()
    await session.execute(
        update(Upload)
        .where(Upload.id == upload.id)
        .values(
            offset=upload.length,
            storage_state={},
            finished_at=now,
            expires_at=expires_at,
            lease_token=None,
            lease_expires_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    file_added(session, view, user, file)
    await session.flush()
    after = counters.file_tally(file.status, file.size, file.read_count, file.base_count)
    await counters.add(session, study_id=view.study.id, tally=after - before, touch=True)
    return file


async def forget_upload(session: AsyncSession, *, upload: Upload) -> None:
    """Delete an upload and its unfinished file record (stored bytes are the caller's); the
    file of a finished upload stays."""
    await forget(session, upload_id=upload.id, file_id=upload.file_id)


async def forget(session: AsyncSession, *, upload_id: uuid.UUID, file_id: uuid.UUID | None) -> None:
    """:func:`forget_upload` by ids (an upload row that is gone already is no error)."""
    await session.execute(
        delete(Upload).where(Upload.id == upload_id).execution_options(synchronize_session=False)
    )
    if file_id is not None:
        await counters.remove_files(
            session, where=and_(SampleFile.id == file_id, SampleFile.status == FileStatus.UPLOADING)
        )
    await session.flush()


async def upload_exists(session: AsyncSession, *, upload_id: uuid.UUID) -> bool:
    return await session.scalar(select(Upload.id).where(Upload.id == upload_id)) is not None


async def expired_uploads(session: AsyncSession, *, limit: int) -> Sequence[Upload]:
    """Expired uploads nobody is writing to, finished ones included, oldest first."""
    now = utcnow()
    result = await session.scalars(
        select(Upload)
        .where(
            Upload.expires_at <= now,
            or_(Upload.lease_token.is_(None), Upload.lease_expires_at < now),
        )
        .order_by(Upload.expires_at)
        .limit(limit)
    )
    return result.all()


async def stranded_uploads(session: AsyncSession, *, limit: int) -> Sequence[Upload]:
    """Uploads that hold every byte but were never finished (the process that received the last
    chunk died before recording the file), with nobody holding them, oldest first."""
    now = utcnow()
    result = await session.scalars(
        select(Upload)
        .where(
            Upload.offset == Upload.length,
            Upload.finished_at.is_(None),
            Upload.expires_at > now,
            or_(Upload.lease_token.is_(None), Upload.lease_expires_at < now),
        )
        .order_by(Upload.updated_at)
        .limit(limit)
    )
    return result.all()


async def unauthorised_uploads(session: AsyncSession, *, limit: int) -> Sequence[Upload]:
    """Unfinished uploads that may not go on: their study is no longer a draft, or their
    uploader no longer edits it (the rule of every HEAD and PATCH, in SQL), oldest first."""
    result = await session.scalars(
        select(Upload)
        .where(Upload.finished_at.is_(None), ~edits_draft(Upload.owner_id, Upload.study_id))
        .order_by(Upload.created_at)
        .limit(limit)
    )
    return result.all()


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
