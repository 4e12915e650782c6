"""Small data helpers for study tests: a study in a given state, samples and file records
inserted directly (the way the upload paths will leave them)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.database import utcnow
from src.study import counters, service
from src.study.constants import FileStatus, MemberRole, ReadKind, StudyStatus
from src.study.models import Sample, SampleFile, Study, StudyMember
from src.study.schemas import SampleCreate, StudyCreate


async def create_study(
    session: AsyncSession,
    *,
    owner: User,
    title: str = "Liver regeneration atlas",
    status: StudyStatus = StudyStatus.DRAFT,
    release_date: date | None = None,
    samples: int = 0,
    files: bool = False,
    **fields: object,
) -> Study:
    """A study as if created through the API, then moved to ``status`` directly."""
    data = StudyCreate(
        title=title,
        samples=[
            SampleCreate(sample_id=f"S{n + 1}", organism="Mus musculus") for n in range(samples)
        ]
        or None,
        **fields,
    )
    study = await service.create(session, data=data, owner=owner, accession_prefix="MOSAIC")
    if files:
        for sample in await service.all_samples(session, study=study):
            await add_file(session, sample=sample)
    if status != StudyStatus.DRAFT or release_date is not None:
        now = utcnow()
        values: dict[str, object] = {"status": status, "release_date": release_date}
        if status != StudyStatus.DRAFT:
            values["submitted_at"] = now
        if status == StudyStatus.PUBLISHED:
            values["published_at"] = now
        await session.execute(update(Study).where(Study.id == study.id).values(**values))
        if status != StudyStatus.DRAFT:
            await counters.status_changed(
                session,
                owner_id=owner.id,
                old=StudyStatus.DRAFT,
                new=status,
                release_date=release_date,
            )
        await session.refresh(study)
    await session.flush()
    return study


async def add_member(
    session: AsyncSession, *, study: Study, user: User, role: MemberRole
) -> StudyMember:
    member = StudyMember(study_id=study.id, user_id=user.id, role=role, created_at=utcnow())
    session.add(member)
    await session.flush()
    return member


def names_digest(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


async def add_file(
    session: AsyncSession,
    *,
    sample: Sample,
    filename: str | None = None,
    read: ReadKind = ReadKind.SINGLE,
    status: FileStatus = FileStatus.VALID,
    read_count: int = 100,
    name_digest: str | None = None,
    size: int = 1000,
) -> SampleFile:
    """A file record as an upload would leave it (no stored bytes), counted in its study."""
    file = SampleFile(
        sample_pk=sample.id,
        filename=filename or f"{sample.sample_id}_{uuid.uuid4().hex[:6]}.fastq.gz",
        read=read,
        size=size,
        md5="0" * 32,
        sha256="0" * 64,
        storage_key=f"studies/{sample.study_id}/{uuid.uuid4()}",
        status=status,
        read_count=read_count if status == FileStatus.VALID else None,
        base_count=read_count * 100 if status == FileStatus.VALID else None,
        name_digest=name_digest or names_digest([f"r{n}" for n in range(read_count)]),
        validation_errors=[],
        created_at=utcnow(),
    )
    session.add(file)
    await session.flush()
    await counters.add(
        session,
        study_id=sample.study_id,
        tally=counters.file_tally(file.status, file.size, file.read_count, file.base_count),
    )
    return file
