"""Read-only aggregates over study's tables: the public totals, a caller's summary, time series
and breakdowns. Plain async functions.

Every number is counted or summed by the database: the scope (the caller's studies, every study,
or the public ones) is a subquery of study ids inside each statement, and each request runs a
fixed, small number of statements whatever the amount of data. The only Python loops run over
periods of a time series or over the few rows a list returns (recent events, the review queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Select, distinct, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User, UserRole
from src.auth.schemas import UserRef
from src.dashboard.constants import (
    RECENT_EVENTS_LIMIT,
    REVIEW_QUEUE_LIMIT,
    BreakdownField,
    DashboardScope,
    Metric,
)
from src.dashboard.schemas import (
    BreakdownRow,
    FileCounts,
    PublicStats,
    QueuedStudy,
    RecentEvent,
    StudiesByStatus,
    StudyCounts,
    StudyRef,
    Summary,
    TimeseriesPoint,
    UserCounts,
    UsersByRole,
)
from src.dashboard.utils import PeriodWindow, next_start, period_start, periods
from src.database import today, utcnow
from src.study.constants import FileStatus, StudyStatus
from src.study.models import Sample, SampleFile, Study, StudyEvent, StudyMember


@dataclass(frozen=True)
class Viewer:
    """Who asks, and over which studies (already authorised)."""

    user: User
    scope: DashboardScope


def _scoped_study_ids(viewer: Viewer) -> Select[Any] | None:
    """Ids of the studies in scope; None when every study is (no filter at all)."""
    if viewer.scope == DashboardScope.ALL:
        return None
    # A union of two indexed lookups rather than OR over an EXISTS, which planners scan.
    owned = select(Study.id).where(Study.owner_id == viewer.user.id)
    joined = select(StudyMember.study_id).where(StudyMember.user_id == viewer.user.id)
    return select(union(owned, joined).subquery().c[0])


def _in_scope(column: Any, study_ids: Select[Any] | None) -> list[Any]:
    return [] if study_ids is None else [column.in_(study_ids)]


def _public_study_ids() -> Select[Any]:
    return select(Study.id).where(Study.public_clause())


def _valid(column: Any) -> Any:
    return func.coalesce(func.sum(column).filter(SampleFile.status == FileStatus.VALID), 0)


# ---------------------------------------------------------------------------------------------
# Public totals.


async def public_stats(session: AsyncSession) -> PublicStats:
    """Totals over public studies; unpublished and embargoed work is never counted."""
    public_ids = _public_study_ids()
    studies = (
        select(func.count(Study.id)).where(Study.public_clause()).correlate(None).scalar_subquery()
    )
    study_count, samples, organisms = (
        await session.execute(
            select(studies, func.count(Sample.id), func.count(distinct(Sample.organism))).where(
                Sample.study_id.in_(public_ids)
            )
        )
    ).one()
    files, size = (
        await session.execute(
            select(func.count(SampleFile.id), func.coalesce(func.sum(SampleFile.size), 0))
            .join(Sample, SampleFile.sample_pk == Sample.id)
            .where(SampleFile.status == FileStatus.VALID, Sample.study_id.in_(public_ids))
        )
    ).one()
    return PublicStats(
        studies=study_count, samples=samples, files=files, bytes=size, organisms=organisms
    )


# ---------------------------------------------------------------------------------------------
# The summary.


async def _study_counts(session: AsyncSession, study_ids: Select[Any] | None) -> StudyCounts:
    def with_status(status: StudyStatus) -> Any:
        return func.count(Study.id).filter(Study.status == status)

    embargoed = func.count(Study.id).filter(
        Study.status == StudyStatus.PUBLISHED, Study.release_date > today()
    )
    total, draft, in_review, published, embargoed_count = (
        await session.execute(
            select(
                func.count(Study.id),
                with_status(StudyStatus.DRAFT),
                with_status(StudyStatus.IN_REVIEW),
                with_status(StudyStatus.PUBLISHED),
                embargoed,
            ).where(*_in_scope(Study.id, study_ids))
        )
    ).one()
    return StudyCounts(
        total=total,
        by_status=StudiesByStatus(draft=draft, in_review=in_review, published=published),
        embargoed=embargoed_count,
    )


async def _file_counts(
    session: AsyncSession, study_ids: Select[Any] | None
) -> tuple[int, FileCounts, int, int, int]:
    # Its own FROM (correlate(None)): the outer query below may join sample too.
    samples = (
        select(func.count(Sample.id))
        .where(*_in_scope(Sample.study_id, study_ids))
        .correlate(None)
        .scalar_subquery()
    )

    def with_status(status: FileStatus) -> Any:
        return func.count(SampleFile.id).filter(SampleFile.status == status)

    files = select(
        samples,
        func.count(SampleFile.id),
        with_status(FileStatus.VALID),
        with_status(FileStatus.INVALID),
        with_status(FileStatus.UPLOADING),
        _valid(SampleFile.size),
        _valid(SampleFile.read_count),
        _valid(SampleFile.base_count),
    ).select_from(SampleFile)
    if study_ids is not None:
        files = files.join(Sample, SampleFile.sample_pk == Sample.id).where(
            Sample.study_id.in_(study_ids)
        )
    sample_count, total, valid, invalid, uploading, size, reads, bases = (
        await session.execute(files)
    ).one()
    counts = FileCounts(total=total, valid=valid, invalid=invalid, uploading=uploading)
    return sample_count, counts, int(size), int(reads), int(bases)


async def _recent_events(session: AsyncSession, study_ids: Select[Any] | None) -> list[RecentEvent]:
    rows = (
        await session.execute(
            select(
                StudyEvent.id,
                StudyEvent.at,
                StudyEvent.action,
                StudyEvent.detail,
                User.id.label("actor_id"),
                User.full_name,
                Study.id.label("study_id"),
                Study.accession,
                Study.title,
            )
            .join(Study, StudyEvent.study_id == Study.id)
            .outerjoin(User, StudyEvent.actor_id == User.id)
            .where(*_in_scope(StudyEvent.study_id, study_ids))
            .order_by(StudyEvent.at.desc(), StudyEvent.id.desc())
            .limit(RECENT_EVENTS_LIMIT)
        )
    ).all()
    return [
        RecentEvent(
            id=row.id,
            at=row.at,
            action=row.action,
            detail=row.detail,
            actor=None
            if row.actor_id is None
            else UserRef(id=row.actor_id, full_name=row.full_name),
            study=StudyRef(id=row.study_id, accession=row.accession, title=row.title),
        )
        for row in rows
    ]


async def _user_counts(session: AsyncSession) -> UserCounts:
    def with_role(role: UserRole) -> Any:
        return func.count(User.id).filter(User.role == role)

    total, active, researcher, reviewer, admin = (
        await session.execute(
            select(
                func.count(User.id),
                func.count(User.id).filter(User.is_active.is_(True)),
                with_role(UserRole.RESEARCHER),
                with_role(UserRole.REVIEWER),
                with_role(UserRole.ADMIN),
            )
        )
    ).one()
    return UserCounts(
        total=total,
        active=active,
        by_role=UsersByRole(researcher=researcher, reviewer=reviewer, admin=admin),
    )


async def _review_queue(session: AsyncSession, *, now: datetime) -> list[QueuedStudy]:
    rows = (
        await session.execute(
            select(
                Study.id,
                Study.accession,
                Study.title,
                Study.submitted_at,
                User.id.label("owner_id"),
                User.full_name,
            )
            .join(User, Study.owner_id == User.id)
            .where(Study.status == StudyStatus.IN_REVIEW)
            .order_by(Study.submitted_at.asc(), Study.id.asc())
            .limit(REVIEW_QUEUE_LIMIT)
        )
    ).all()
    queue = []
    for row in rows:
        submitted_at = row.submitted_at
        queue.append(
            QueuedStudy(
                id=row.id,
                accession=row.accession,
                title=row.title,
                owner=UserRef(id=row.owner_id, full_name=row.full_name),
                submitted_at=submitted_at,
                waiting_seconds=max(0, int((now - submitted_at).total_seconds())),
            )
        )
    return queue


async def summary(session: AsyncSession, *, viewer: Viewer) -> Summary:
    """Studies by status, samples, files by status, bytes, reads and bases over the scoped
    studies, with their latest events; with scope=all, accounts and the review queue too."""
    study_ids = _scoped_study_ids(viewer)
    studies = await _study_counts(session, study_ids)
    samples, files, size, reads, bases = await _file_counts(session, study_ids)
    everything = viewer.scope == DashboardScope.ALL
    return Summary(
        scope=viewer.scope,
        studies=studies,
        samples=samples,
        files=files,
        bytes=size,
        reads=reads,
        bases=bases,
        recent_events=await _recent_events(session, study_ids),
        users=await _user_counts(session) if everything else None,
        review_queue=await _review_queue(session, now=utcnow()) if everything else None,
    )


# ---------------------------------------------------------------------------------------------
# Time series and breakdowns.


def _metric_query(metric: Metric, study_ids: Select[Any] | None) -> tuple[Any, Select[Any]]:
    """The timestamp a metric is bucketed by, and its rows with the value to aggregate."""
    if metric == Metric.BYTES_UPLOADED:
        query = select(func.coalesce(func.sum(SampleFile.size), 0)).where(
            SampleFile.status == FileStatus.VALID
        )
        if study_ids is not None:
            query = query.join(Sample, SampleFile.sample_pk == Sample.id).where(
                Sample.study_id.in_(study_ids)
            )
        return SampleFile.created_at, query
    if metric == Metric.STUDIES_PUBLISHED:
        query = select(func.count(Study.id)).where(
            Study.status == StudyStatus.PUBLISHED, *_in_scope(Study.id, study_ids)
        )
        return Study.published_at, query
    return Study.created_at, select(func.count(Study.id)).where(*_in_scope(Study.id, study_ids))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


async def timeseries(
    session: AsyncSession, *, viewer: Viewer, metric: Metric, window: PeriodWindow
) -> list[TimeseriesPoint]:
    """One value per period of the window, empty periods included as 0."""
    starts = periods(window.interval, window.start, window.end)
    column, query = _metric_query(metric, _scoped_study_ids(viewer))
    bucket = period_start(column, window.interval).label("period_start")
    rows = await session.execute(
        query.add_columns(bucket)
        .where(
            column >= _midnight(starts[0]),
            column < _midnight(next_start(window.interval, starts[-1])),
        )
        .group_by(bucket)
    )
    values: dict[date, int] = {row.period_start: int(row[0]) for row in rows}
    return [TimeseriesPoint(period_start=start, value=values.get(start, 0)) for start in starts]


async def breakdown(
    session: AsyncSession, *, viewer: Viewer, by: BreakdownField, limit: int
) -> list[BreakdownRow]:
    """Samples and studies per value of a sample field, most samples first."""
    column = {
        BreakdownField.ORGANISM: Sample.organism,
        BreakdownField.TISSUE: Sample.tissue,
        BreakdownField.SEX: Sample.sex,
    }[by]
    samples = func.count(Sample.id).label("samples")
    rows = await session.execute(
        select(
            column.label("value"),
            samples,
            func.count(distinct(Sample.study_id)).label("studies"),
        )
        .where(*_in_scope(Sample.study_id, _scoped_study_ids(viewer)))
        .group_by(column)
        .order_by(samples.desc(), column.asc().nulls_last())
        .limit(limit)
    )
    return [BreakdownRow(value=row.value, samples=row.samples, studies=row.studies) for row in rows]
