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
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, distinct, func, select, union
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
from src.database import utcnow
from src.study.constants import (
    COUNTER_COLUMNS,
    OWNER_COLUMNS,
    OWNER_STATUS_COLUMNS,
    FileStatus,
    StudyStatus,
)
from src.study.models import (
    OwnerTotal,
    ReleaseTotal,
    Sample,
    SampleFile,
    Study,
    StudyEvent,
    StudyMember,
)


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
    """Totals over public studies; unpublished and embargoed work is never counted. Samples,
    files and bytes are the studies' kept counters; organisms are counted among their samples."""
    study_count, samples, files, size = (
        await session.execute(
            select(
                func.count(Study.id),
                func.coalesce(func.sum(Study.sample_count), 0),
                func.coalesce(func.sum(Study.valid_file_count), 0),
                func.coalesce(func.sum(Study.valid_bytes), 0),
            ).where(Study.public_clause())
        )
    ).one()
    organisms = (
        await session.execute(
            select(func.count(distinct(Sample.organism))).where(
                Sample.study_id.in_(_public_study_ids())
            )
        )
    ).scalar_one()
    return PublicStats(
        studies=study_count,
        samples=int(samples),
        files=int(files),
        bytes=int(size),
        organisms=organisms,
    )


# ---------------------------------------------------------------------------------------------
# The summary.


def _member_studies(viewer: Viewer) -> list[ColumnElement[bool]]:
    """The studies the viewer is a member of but does not own."""
    return [
        Study.id.in_(select(StudyMember.study_id).where(StudyMember.user_id == viewer.user.id)),
        Study.owner_id != viewer.user.id,
    ]


async def _counts(
    session: AsyncSession, viewer: Viewer
) -> tuple[StudyCounts, int, FileCounts, int, int, int]:
    """Studies by status and the sums of their kept counters, without visiting the studies one
    owns: their totals are the owners' kept rows (``owner_total``, study/counters.py), all of
    them for scope=all, the caller's otherwise, to which the studies they are a member of are
    added (a few rows, by the membership index, in one statement with their embargoed ones).
    The caller's own embargoed studies are counted by a partial index, all of them from the
    kept number per release date."""
    owners = cast(Table, OwnerTotal.__table__)
    # An aggregate: one row, zeros for a caller who owns nothing.
    kept = [func.coalesce(func.sum(owners.c[name]), 0) for name in OWNER_COLUMNS]
    member: list[Any] = [0] * len(OWNER_COLUMNS)
    member_embargoed = 0
    if viewer.scope == DashboardScope.ALL:
        statement = select(*kept, ReleaseTotal.coming())
    else:
        # The caller's own embargoed studies by the partial index of published studies' owner
        # and release date.
        own_embargoed = (
            select(func.count())
            .where(Study.embargoed_clause(), Study.owner_id == viewer.user.id)
            .scalar_subquery()
        )
        statement = select(*kept, own_embargoed).where(owners.c.owner_id == viewer.user.id)
        by_status = (func.count().filter(Study.status == status) for status in OWNER_STATUS_COLUMNS)
        sums = (func.coalesce(func.sum(getattr(Study, name)), 0) for name in COUNTER_COLUMNS)
        embargoed = func.count().filter(Study.embargoed_clause())
        joined = select(*by_status, *sums, embargoed).where(*_member_studies(viewer))
        *member, member_embargoed = (await session.execute(joined)).one()
    *owned, embargoed_count = (await session.execute(statement)).one()
    values = {
        name: int(own) + int(other)
        for name, own, other in zip(OWNER_COLUMNS, owned, member, strict=True)
    }
    draft, in_review, published = (values[name] for name in OWNER_STATUS_COLUMNS.values())
    studies = StudyCounts(
        total=draft + in_review + published,
        by_status=StudiesByStatus(draft=draft, in_review=in_review, published=published),
        embargoed=int(embargoed_count) + int(member_embargoed),
    )
    valid, invalid = values["valid_file_count"], values["invalid_file_count"]
    files = FileCounts(
        total=values["file_count"],
        valid=valid,
        invalid=invalid,
        uploading=values["file_count"] - valid - invalid,
    )
    return (
        studies,
        values["sample_count"],
        files,
        values["valid_bytes"],
        values["valid_read_count"],
        values["valid_base_count"],
    )


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
    studies, samples, files, size, reads, bases = await _counts(session, viewer)
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
