"""Readiness: what keeps a study from being submitted. Every sample needs a valid file, none
still uploading or invalid; paired R1/R2 files need equal read counts and matching read names; no
resumable upload may be left unfinished."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from src.database import utcnow
from src.study.constants import FileStatus, ReadinessCode, ReadKind
from src.study.models import Sample, SampleFile, Study, Upload
from src.study.schemas import ReadinessProblem


def _pair_partner(filename: str) -> str:
    for one, two in (("_R1", "_R2"), ("_1.", "_2."), ("_r1", "_r2"), (".R1", ".R2")):
        if one in filename:
            return filename[::-1].replace(one[::-1], two[::-1], 1)[::-1]
    return filename


def _pair_reads(
    files: list[SampleFile],
) -> tuple[list[tuple[SampleFile, SampleFile]], list[SampleFile]]:
    """R1/R2 mates by file name (``x_R1`` with ``x_R2``, ...), or the only R1 with the only R2;
    and the reads left without a mate."""
    r1 = {f.filename: f for f in files if f.read == ReadKind.R1}
    r2 = {f.filename: f for f in files if f.read == ReadKind.R2}
    pairs: list[tuple[SampleFile, SampleFile]] = []
    for name, first in list(r1.items()):
        partner = r2.pop(_pair_partner(name), None)
        if partner is not None:
            pairs.append((first, partner))
            del r1[name]
    if len(r1) == 1 and len(r2) == 1:
        pairs.append((next(iter(r1.values())), next(iter(r2.values()))))
        r1.clear()
        r2.clear()
    return pairs, [*r1.values(), *r2.values()]


def _pair_problem(first: SampleFile, second: SampleFile) -> tuple[ReadinessCode, str] | None:
    """Mates must hold the same reads: equal counts, matching read names."""
    if first.read_count != second.read_count:
        return (
            ReadinessCode.PAIR_READ_COUNT_MISMATCH,
            f"{first.filename} has {first.read_count} reads but {second.filename} "
            f"has {second.read_count}",
        )
    if first.name_digest != second.name_digest:
        return (
            ReadinessCode.PAIR_READ_NAMES_MISMATCH,
            f"the read names of {first.filename} and {second.filename} differ",
        )
    return None


def _sample_problems(sample: Sample) -> list[ReadinessProblem]:
    def problem(code: ReadinessCode, message: str) -> ReadinessProblem:
        return ReadinessProblem(sample_id=sample.sample_id, code=code, message=message)

    problems: list[ReadinessProblem] = []
    valid = []
    for file in sample.files:
        if file.status == FileStatus.UPLOADING:
            problems.append(
                problem(ReadinessCode.FILE_UPLOADING, f"{file.filename} is still uploading")
            )
        elif file.status == FileStatus.INVALID:
            problems.append(problem(ReadinessCode.FILE_INVALID, f"{file.filename} is invalid"))
        else:
            valid.append(file)
    if not valid:
        problems.append(problem(ReadinessCode.NO_VALID_FILE, "the sample has no valid file"))
        return problems
    pairs, unpaired = _pair_reads(valid)
    problems.extend(
        problem(ReadinessCode.UNPAIRED_READ, f"{file.filename} ({file.read}) has no {mate} mate")
        for file in unpaired
        for mate in [ReadKind.R2 if file.read == ReadKind.R1 else ReadKind.R1]
    )
    for first, second in pairs:
        found = _pair_problem(first, second)
        if found is not None:
            problems.append(problem(*found))
    return problems


async def find_problems(session: AsyncSession, *, study: Study) -> list[ReadinessProblem]:
    """What keeps the study from being submitted; empty when it is ready."""
    samples = (
        await session.scalars(
            select(Sample)
            .where(Sample.study_id == study.id)
            .options(selectinload(Sample.files))
            .order_by(Sample.sample_key)
        )
    ).all()
    if not samples:
        return [
            ReadinessProblem(
                sample_id=None, code=ReadinessCode.NO_SAMPLES, message="the study has no samples"
            )
        ]
    problems = [problem for sample in samples for problem in _sample_problems(sample)]
    uploads = (
        await session.execute(
            select(func.count(Upload.id)).where(
                Upload.study_id == study.id,
                Upload.finished_at.is_(None),  # kept after finishing, until they expire
                Upload.expires_at > utcnow(),
            )
        )
    ).scalar_one()
    if uploads:
        problems.append(
            ReadinessProblem(
                sample_id=None,
                code=ReadinessCode.FILE_UPLOADING,
                message=f"{uploads} resumable upload(s) are not finished",
            )
        )
    return problems
