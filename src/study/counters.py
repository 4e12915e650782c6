"""Counts kept on the study row: its samples, its files (all of them, and the valid and invalid
ones), their bytes, and the reads and bases of its valid files.

Every change to samples or files adds its difference to these columns in the same transaction,
with one ``UPDATE study SET n = n + :d`` (never read, add and write back), so concurrent writers
add up instead of overwriting each other; a difference is taken from the rows a statement
actually inserted, changed or deleted (``RETURNING``), not from rows read earlier. Lists and
aggregates read the columns instead of counting rows.

``recount_values`` is the same numbers counted from scratch: the migration that added the
columns fills them with it, and ``python main.py recount`` compares (and with ``--repair``
corrects) every study against it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    Table,
    Update,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy import insert as insert_into
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.expression import Executable

from src.database import utcnow
from src.study.constants import (
    COUNTER_COLUMNS,
    OWNER_COLUMNS,
    OWNER_STATUS_COLUMNS,
    PUBLISHED_TOTAL,
    FileStatus,
    StudyStatus,
)
from src.study.models import OwnerTotal, ReleaseTotal, Sample, SampleFile, Study, StudyTotal

# The maintained columns, in the order of ``Tally``'s fields.
COLUMNS = COUNTER_COLUMNS


@dataclass(frozen=True)
class Tally:
    """A difference to (or a value of) a study's counters, one field per column."""

    sample_count: int = 0
    file_count: int = 0
    total_bytes: int = 0
    valid_file_count: int = 0
    invalid_file_count: int = 0
    valid_bytes: int = 0
    valid_read_count: int = 0
    valid_base_count: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, name) + getattr(other, name) for name in COLUMNS))

    def __neg__(self) -> Tally:
        return Tally(*(-getattr(self, name) for name in COLUMNS))

    def __sub__(self, other: Tally) -> Tally:
        return self + -other

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in COLUMNS)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COLUMNS}


assert tuple(field.name for field in fields(Tally)) == COLUMNS


def samples(count: int) -> Tally:
    return Tally(sample_count=count)


def file_tally(
    status: FileStatus | str, size: int | None, read_count: int | None, base_count: int | None
) -> Tally:
    """What one file adds to its study's counters."""
    valid = FileStatus(status) == FileStatus.VALID
    return Tally(
        file_count=1,
        total_bytes=size or 0,
        valid_file_count=1 if valid else 0,
        invalid_file_count=1 if FileStatus(status) == FileStatus.INVALID else 0,
        valid_bytes=(size or 0) if valid else 0,
        valid_read_count=(read_count or 0) if valid else 0,
        valid_base_count=(base_count or 0) if valid else 0,
    )


def files_tally(rows: Iterable[Any]) -> Tally:
    """What files add, from rows with ``status, size, read_count, base_count`` (in that order),
    such as the ``RETURNING`` of a statement that inserted or deleted them."""
    total = Tally()
    for row in rows:
        total += file_tally(row[0], row[1], row[2], row[3])
    return total


_STUDY_TABLE = cast(Table, Study.__table__)

# The file columns ``files_tally`` reads, for a ``RETURNING``.
FILE_COLUMNS = (SampleFile.status, SampleFile.size, SampleFile.read_count, SampleFile.base_count)


async def add(
    session: AsyncSession,
    *,
    study_id: uuid.UUID,
    tally: Tally,
    touch: bool = False,
    to_owner: bool = True,
) -> uuid.UUID | None:
    """Add ``tally`` to the study's counters in one statement; with ``touch``, the same
    statement marks the study changed (``updated_at``, and a new ``version``, hence ETag), so
    concurrent changes to one study's samples and files all succeed instead of all but one
    failing the version check of a read-then-written row. The study object, when the session
    holds it, gets the values the statement wrote (without a further query). The owner's
    totals change by the same ``tally`` right after, unless ``to_owner`` is False (the caller
    then adds it itself); the study's owner is returned (None when there is no such study)."""
    changed = {name: value for name, value in tally.as_dict().items() if value}
    if not changed and not touch:
        return None
    table = _STUDY_TABLE
    written = [*COLUMNS, "updated_at", "version"]
    statement = (
        update(table)
        .where(table.c.id == study_id)
        .values({table.c[name]: table.c[name] + value for name, value in changed.items()})
        .values(
            {"updated_at": utcnow(), "version": table.c.version + 1}
            if touch
            else {"updated_at": table.c.updated_at}  # no onupdate: a count is not an edit
        )
        .returning(table.c.owner_id, *(table.c[name] for name in written))
    )
    row = (await session.execute(statement)).one_or_none()
    if row is None:
        return None
    if changed and to_owner:
        await add_to_owner(session, owner_id=row[0], tally=tally)
    study = session.identity_map.get(session.identity_key(Study, study_id))
    if study is not None:
        for name, value in zip(written, row[1:], strict=True):
            set_committed_value(study, name, value)
    owner_id: uuid.UUID = row[0]
    return owner_id


async def remove_files(
    session: AsyncSession, *, where: ColumnElement[bool], touch: bool = False
) -> int:
    """Delete the files matching ``where`` and take exactly those from their studies' counters
    (marking the studies changed with ``touch``: see ``add``); the number deleted."""
    rows = (
        await session.execute(
            delete(SampleFile)
            .where(where)
            .returning(SampleFile.sample_pk, *FILE_COLUMNS)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if not rows:
        return 0
    by_sample: dict[uuid.UUID, Tally] = {}
    for row in rows:
        by_sample[row[0]] = by_sample.get(row[0], Tally()) + file_tally(*row[1:])
    owners = await session.execute(
        select(Sample.id, Sample.study_id).where(Sample.id.in_(list(by_sample)))
    )
    by_study: dict[uuid.UUID, Tally] = {}
    for sample_pk, study_id in owners.all():
        by_study[study_id] = by_study.get(study_id, Tally()) - by_sample[sample_pk]
    # Studies in one order, then their owners: two such deletions never wait on each other's
    # rows in opposite orders (each study row, then the owner rows, as single-study changes do).
    by_owner: dict[uuid.UUID, Tally] = {}
    for study_id in sorted(by_study):
        tally = by_study[study_id]
        owner_id = await add(session, study_id=study_id, tally=tally, touch=touch, to_owner=False)
        if owner_id is not None:
            by_owner[owner_id] = by_owner.get(owner_id, Tally()) + tally
    for owner_id in sorted(by_owner):
        await add_to_owner(session, owner_id=owner_id, tally=by_owner[owner_id])
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Totals over many studies: the number of published ones, and each owner's.

_OWNER_TABLE = cast(Table, OwnerTotal.__table__)
_RELEASE_TABLE = cast(Table, ReleaseTotal.__table__)


def _upsert(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has ON CONFLICT DO UPDATE (PostgreSQL and SQLite)."""
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def add_to_owner(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    tally: Tally | None = None,
    statuses: Mapping[StudyStatus, int] | None = None,
) -> None:
    """Add ``tally`` and a number of studies per status to the owner's totals, in one upsert
    (the owner's first study creates the row). An owner's writers add up instead of
    overwriting each other, as with a study's own counters (``add``)."""
    values = {name: value for name, value in (tally or Tally()).as_dict().items() if value}
    for status, count in (statuses or {}).items():
        if count:
            column = OWNER_STATUS_COLUMNS[status]
            values[column] = values.get(column, 0) + count
    if not values:
        return
    table = _OWNER_TABLE
    insert = _upsert(session)
    statement = insert(table).values(owner_id=owner_id, **values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.owner_id],
            set_={name: table.c[name] + statement.excluded[name] for name in values},
        )
    )


async def study_created(session: AsyncSession, *, owner_id: uuid.UUID, samples: int) -> None:
    """A new draft with ``samples`` samples, in its creating transaction."""
    await add_to_owner(
        session,
        owner_id=owner_id,
        tally=Tally(sample_count=samples),
        statuses={StudyStatus.DRAFT: 1},
    )


async def status_changed(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    old: StudyStatus,
    new: StudyStatus,
    release_date: date | None = None,
) -> None:
    """A study went from ``old`` to ``new``, in the transaction that moved it. Publishing
    also counts one more published study, and one more for its release date if it has one
    (which never changes once published): publishing is rare (a reviewer's decision), so those
    rows are no point of contention."""
    await add_to_owner(session, owner_id=owner_id, statuses={old: -1, new: 1})
    if new != StudyStatus.PUBLISHED:
        return
    await session.execute(
        update(StudyTotal)
        .where(StudyTotal.name == PUBLISHED_TOTAL)
        .values(value=StudyTotal.value + 1)
    )
    if release_date is not None:
        table = _RELEASE_TABLE
        insert = _upsert(session)
        statement = insert(table).values(release_date=release_date, published_count=1)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.release_date],
                set_={"published_count": table.c.published_count + 1},
            )
        )


async def delete_study(session: AsyncSession, *, study_id: uuid.UUID) -> None:
    """Delete the study (its samples and files go with it) and take exactly what the deleted
    row held from its owner's totals."""
    table = _STUDY_TABLE
    row = (
        await session.execute(
            delete(table)
            .where(table.c.id == study_id)
            .returning(table.c.owner_id, table.c.status, *(table.c[name] for name in COLUMNS))
        )
    ).one_or_none()
    if row is None:
        return
    await add_to_owner(
        session,
        owner_id=row[0],
        tally=-Tally(*(int(value) for value in row[2:])),
        statuses={StudyStatus(row[1]): -1},
    )


def public_total_expression(*, on: ColumnElement[date] | None = None) -> ColumnElement[int]:
    """The number of public studies (``Study.public_clause``) without counting them: the kept
    number of published studies less those under embargo."""
    return (
        select(StudyTotal.value - ReleaseTotal.coming(on))
        .where(StudyTotal.name == PUBLISHED_TOTAL)
        .scalar_subquery()
    )


def _studies_of(row: Any) -> ColumnElement[int]:
    return cast(ColumnElement[int], row.draft_count + row.in_review_count + row.published_count)


def owned_total_expression(owner_id: ColumnElement[Any]) -> ColumnElement[int]:
    """The number of studies ``owner_id`` owns, from their kept row (0 without one)."""
    table = _OWNER_TABLE
    owned = select(_studies_of(table.c)).where(table.c.owner_id == owner_id).scalar_subquery()
    return func.coalesce(owned, 0)


def all_total_expression() -> ColumnElement[int]:
    """The number of studies, from the owners' kept rows (one row per owner, not per study);
    an integer (PostgreSQL's sum of bigints is numeric)."""
    summed = select(func.sum(_studies_of(_OWNER_TABLE.c))).scalar_subquery()
    return sql_cast(func.coalesce(summed, 0), BigInteger)


async def public_total(session: AsyncSession) -> int:
    return int((await session.execute(select(public_total_expression()))).scalar_one())


@dataclass(frozen=True)
class TotalDrift:
    """A kept total over many studies (``name``: ``published``, ``release dates`` or
    ``owner <id>``) that is not what a count gives; ``kept`` and ``counted`` hold each of its
    values."""

    name: str
    kept: dict[str, int]
    counted: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kept": self.kept, "counted": self.counted}


def _published_count() -> ColumnElement[int]:
    return (
        select(func.count())
        .select_from(Study)
        .where(Study.status == StudyStatus.PUBLISHED)
        .scalar_subquery()
    )


def _release_recount() -> Select[Any]:
    """Published studies per release date, counted: release_date, published_count."""
    table = _STUDY_TABLE
    return (
        select(table.c.release_date, func.count())
        .where(table.c.status == StudyStatus.PUBLISHED, table.c.release_date.is_not(None))
        .group_by(table.c.release_date)
    )


def _owner_recount() -> Select[Any]:
    """Each owner's totals counted from their studies: owner_id, then OWNER_COLUMNS."""
    table = _STUDY_TABLE
    by_status = (
        func.coalesce(func.sum(case((table.c.status == status, 1), else_=0)), 0)
        for status in OWNER_STATUS_COLUMNS
    )
    sums = (func.coalesce(func.sum(table.c[name]), 0) for name in COLUMNS)
    return select(table.c.owner_id, *by_status, *sums).group_by(table.c.owner_id)


async def find_total_drift(session: AsyncSession) -> list[TotalDrift]:
    """The kept number of published studies, the published ones per release date and every
    owner's totals against a count (empty when they all agree; an owner without studies agrees
    when their row is all zeros, a date without studies when it holds none)."""
    drifts: list[TotalDrift] = []
    kept_published, counted_published = (
        await session.execute(
            select(StudyTotal.value, _published_count()).where(StudyTotal.name == PUBLISHED_TOTAL)
        )
    ).one()
    if kept_published != counted_published:
        drifts.append(
            TotalDrift(
                PUBLISHED_TOTAL, {"value": int(kept_published)}, {"value": int(counted_published)}
            )
        )
    release = _RELEASE_TABLE
    kept_dates = {
        str(day): int(count)
        for day, count in (
            await session.execute(select(release.c.release_date, release.c.published_count))
        ).all()
        if count
    }
    counted_dates = {
        str(day): int(count) for day, count in (await session.execute(_release_recount())).all()
    }
    if kept_dates != counted_dates:
        drifts.append(TotalDrift("release dates", kept_dates, counted_dates))
    zero = dict.fromkeys(OWNER_COLUMNS, 0)
    counted = {
        row[0]: dict(zip(OWNER_COLUMNS, map(int, row[1:]), strict=True))
        for row in (await session.execute(_owner_recount())).all()
    }
    table = _OWNER_TABLE
    kept = {
        row[0]: dict(zip(OWNER_COLUMNS, map(int, row[1:]), strict=True))
        for row in (
            await session.execute(select(table.c.owner_id, *(table.c[n] for n in OWNER_COLUMNS)))
        ).all()
    }
    for owner_id in sorted(counted.keys() | kept.keys(), key=str):
        if kept.get(owner_id, zero) != counted.get(owner_id, zero):
            drifts.append(
                TotalDrift(
                    f"owner {owner_id}", kept.get(owner_id, zero), counted.get(owner_id, zero)
                )
            )
    return drifts


def totals_repair_statements() -> list[Executable]:
    """Set every kept total to a count: the number of published studies, and the owners'
    rows written again from their studies (also for rows loaded around the API, as a bench's
    bulk load)."""
    table = _OWNER_TABLE
    return [
        update(StudyTotal)
        .where(StudyTotal.name == PUBLISHED_TOTAL)
        .values(value=_published_count()),
        delete(table),
        insert_into(table).from_select(["owner_id", *OWNER_COLUMNS], _owner_recount()),
        delete(_RELEASE_TABLE),
        insert_into(_RELEASE_TABLE).from_select(
            ["release_date", "published_count"], _release_recount()
        ),
    ]


async def repair_totals(session: AsyncSession, *, drifts: Sequence[TotalDrift]) -> int:
    """Set the kept totals to a count (all of them, counted again under the statements) when
    any drifted; the number that had."""
    if not drifts:
        return 0
    for statement in totals_repair_statements():
        await session.execute(statement)
    return len(drifts)


# ---------------------------------------------------------------------------------------------
# Counting from scratch.


def _recount_columns() -> dict[str, ColumnElement[Any]]:
    """Each counter of the outer ``study`` row, counted from its samples and files."""

    def of_files(value: Any) -> ColumnElement[Any]:
        return (
            select(func.coalesce(func.sum(value), 0))
            .select_from(SampleFile)
            .join(Sample, SampleFile.sample_pk == Sample.id)
            .where(Sample.study_id == Study.id)
            .correlate(Study)
            .scalar_subquery()
        )

    valid = SampleFile.status == FileStatus.VALID
    invalid = SampleFile.status == FileStatus.INVALID

    def when(condition: ColumnElement[bool], value: Any) -> Any:
        then = literal(value) if isinstance(value, int) else value
        return case((condition, func.coalesce(then, 0)), else_=0)

    return {
        "sample_count": select(func.count(Sample.id))
        .where(Sample.study_id == Study.id)
        .correlate(Study)
        .scalar_subquery(),
        "file_count": of_files(literal(1)),
        "total_bytes": of_files(SampleFile.size),
        "valid_file_count": of_files(when(valid, 1)),
        "invalid_file_count": of_files(when(invalid, 1)),
        "valid_bytes": of_files(when(valid, SampleFile.size)),
        "valid_read_count": of_files(when(valid, SampleFile.read_count)),
        "valid_base_count": of_files(when(valid, SampleFile.base_count)),
    }


def drift_query(study_ids: Sequence[uuid.UUID] | None = None) -> Select[Any]:
    """Studies whose counters differ from a recount: id, accession, then for each counter the
    kept value and the recounted one."""
    recount = _recount_columns()
    kept = [getattr(Study, name) for name in COLUMNS]
    differs = or_(*(getattr(Study, name) != recount[name] for name in COLUMNS))
    statement = (
        select(Study.id, Study.accession, *kept, *(recount[name] for name in COLUMNS))
        .where(differs)
        .order_by(Study.accession)
    )
    if study_ids is not None:
        statement = statement.where(Study.id.in_(study_ids))
    return statement


def repair_statement(study_ids: Sequence[uuid.UUID] | None = None) -> Update:
    """Set the counters of the given studies (all when None) to a recount."""
    table = _STUDY_TABLE
    statement = update(table).values(
        {table.c[name]: value for name, value in _recount_columns().items()}
    )
    if study_ids is not None:
        statement = statement.where(table.c.id.in_(study_ids))
    # Counters only: updated_at is not touched by a recount.
    return statement.values(updated_at=table.c.updated_at)


@dataclass(frozen=True)
class Drift:
    study_id: uuid.UUID
    accession: str
    kept: Tally
    counted: Tally

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_id": str(self.study_id),
            "accession": self.accession,
            "kept": self.kept.as_dict(),
            "counted": self.counted.as_dict(),
        }


def _drifts(rows: Sequence[Any]) -> list[Drift]:
    width = len(COLUMNS)
    return [
        Drift(
            study_id=row[0],
            accession=row[1],
            kept=Tally(*(int(value) for value in row[2 : 2 + width])),
            counted=Tally(*(int(value or 0) for value in row[2 + width :])),
        )
        for row in rows
    ]


async def find_drift(
    session: AsyncSession, *, study_ids: Sequence[uuid.UUID] | None = None
) -> list[Drift]:
    """Every study (or those given) whose counters are not what a recount gives."""
    return _drifts((await session.execute(drift_query(study_ids))).all())


async def repair(session: AsyncSession, *, drifts: Sequence[Drift]) -> int:
    """Set the drifted studies' counters to a recount (counted again, under the statement)."""
    if not drifts:
        return 0
    await session.execute(repair_statement([drift.study_id for drift in drifts]))
    return len(drifts)
