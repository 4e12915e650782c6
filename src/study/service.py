"""Database work of the study module: studies, accessions, lifecycle, members, samples and the
audit trail. Plain async functions; they flush, the request commits. Who sees a study is in
visibility.py, what keeps it from being submitted in readiness.py.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    Uuid,
    and_,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from src.auth import service as auth_service
from src.auth.models import User
from src.database import after_commit, contains, utcnow
from src.schemas import Page, PageOf, paginate
from src.storage import Storage
from src.study import bulk, checklist, counters
from src.study.constants import (
    ACCESSION_COUNTER,
    ChecklistCode,
    EventAction,
    FileStatus,
    MemberRole,
    ReviewDecision,
    StudyStatus,
)
from src.study.exceptions import (
    CommentRequiredError,
    InvalidSampleError,
    InvalidTransitionError,
    MemberNotFoundError,
    OwnerNotMemberError,
    PreconditionFailedError,
    SampleIdTakenError,
    StudyIncompleteError,
    UserNotFoundError,
)
from src.study.models import (
    AccessionCounter,
    Sample,
    SampleFile,
    Study,
    StudyEvent,
    StudyMember,
    Upload,
)
from src.study.readiness import find_problems
from src.study.schemas import (
    SampleCreate,
    SampleUpdate,
    StudyCreate,
    StudyUpdate,
)

# A checked sample as insert_samples takes it: its normalised values and its attributes.
SampleInput = tuple[Mapping[str, Any], Mapping[str, str]]

# ---------------------------------------------------------------------------------------------
# Accessions and events.


async def next_accession(session: AsyncSession, *, prefix: str) -> str:
    """The next accession number. The UPDATE takes the counter's row lock, so concurrent
    creations queue, get consecutive numbers, and a rolled-back creation gives its number back."""
    statement = (
        update(AccessionCounter)
        .where(AccessionCounter.name == ACCESSION_COUNTER)
        .values(value=AccessionCounter.value + 1)
        .returning(AccessionCounter.value)
    )
    value = (await session.execute(statement)).scalar_one()
    return f"{prefix}-{value:04d}"


def record_event(
    session: AsyncSession,
    *,
    study: Study,
    actor: User | None,
    action: EventAction,
    detail: dict[str, Any] | None = None,
) -> StudyEvent:
    event = StudyEvent(
        study_id=study.id,
        actor_id=actor.id if actor is not None else None,
        action=action.value,
        detail=detail or {},
        at=utcnow(),
    )
    session.add(event)
    return event


async def list_events(session: AsyncSession, *, study: Study, page: Page) -> PageOf[StudyEvent]:
    """The study's audit trail, newest first."""

    async def with_actors(statement: Select[Any]) -> Sequence[StudyEvent]:
        return (await session.scalars(statement.options(joinedload(StudyEvent.actor)))).all()

    statement = (
        select(StudyEvent)
        .where(StudyEvent.study_id == study.id)
        .order_by(StudyEvent.at.desc(), StudyEvent.id)
    )
    return await paginate(session, statement, page=page, load=with_actors)


# ---------------------------------------------------------------------------------------------
# Studies.


def _search_text(study: Study, *, accession: str | None = None) -> str:
    """What ``q`` searches: accession (``accession`` if given), title, description, authors."""
    parts = [
        study.accession if accession is None else accession,
        study.title,
        study.description,
        *study.authors,
    ]
    return " ".join(part for part in parts if part).casefold()


def check_samples(samples: Sequence[SampleCreate]) -> list[checklist.SampleCheck]:
    """Check every sample against the checklist and sample_id uniqueness; raise all errors."""
    checks: list[checklist.SampleCheck] = []
    errors: list[dict[str, Any]] = []
    sample_ids = checklist.SampleIds()
    for index, sample in enumerate(samples):
        check = checklist.validate_sample(sample.model_dump(exclude_unset=True))
        errors.extend({"index": index, **issue.as_dict()} for issue in check.errors)
        sample_id = check.values.get("sample_id")
        if sample_id and (earlier := sample_ids.earlier_use(str(sample_id), index)) is not None:
            errors.append(
                {
                    "index": index,
                    "field": "sample_id",
                    "code": ChecklistCode.DUPLICATE_SAMPLE_ID,
                    "message": f"sample_id {sample_id!r} repeats sample {earlier}",
                    "value": sample_id,
                }
            )
        checks.append(check)
    if errors:
        raise InvalidSampleError(errors=errors)
    return checks


def _new_sample(study: Study, check: checklist.SampleCheck) -> Sample:
    return Sample(**_sample_row(study, check.values, check.attributes))


def _sample_columns(
    study: Study,
    samples: Sequence[SampleInput],
    *,
    start: datetime | None = None,
    offset: int = 0,
) -> dict[str, Any]:
    """``insert_rows``'s arguments for new samples of ``study``: the columns' values, sample by
    sample. Timestamps are one instant (``start``, else now) plus a microsecond per sample
    (from ``offset``, the samples of the same instant inserted before these), so that the
    samples' order (the sheet's) is their created_at order."""
    count = len(samples)
    fields = [values for values, _ in samples]
    columns: dict[str, Sequence[Any]] = {
        name: list(map(itemgetter(name), fields)) for name in checklist.FIELD_NAMES
    }
    columns["sample_key"] = [str(sample_id).casefold() for sample_id in columns["sample_id"]]
    # Only serialised to JSON on the way in: a dict goes as it is (a sheet's 50,000 are).
    columns["attributes"] = [
        attributes if type(attributes) is dict else dict(attributes) for _, attributes in samples
    ]
    columns["id"] = _new_ids(count)
    start = start or utcnow()
    created = [start + timedelta(microseconds=n) for n in range(offset, offset + count)]
    columns["created_at"] = columns["updated_at"] = created
    return {"columns": columns, "constants": {"study_id": study.id}, "types": {"id": _ID_TEXT}}


def _new_ids(count: int) -> list[str]:
    """``count`` uuid4s as 32 hex digits (what ``_ID_TEXT`` takes), from one read of the
    system's random source: the version and variant bits are set in C, a byte table for each,
    and no UUID object is made (50,000 of them took 75 ms, these 10)."""
    random = bytearray(os.urandom(16 * count))
    random[6::16] = random[6::16].translate(_VERSION_4)
    random[8::16] = random[8::16].translate(_RFC_4122_VARIANT)
    digits = random.hex()
    return [digits[n : n + 32] for n in range(0, 32 * count, 32)]


# Byte tables setting a uuid4's version (the high half of byte 6) and variant (the two high
# bits of byte 8), and the type of the ids _new_ids makes, for bulk.insert_rows.
_VERSION_4 = bytes((byte & 0x0F) | 0x40 for byte in range(256))
_RFC_4122_VARIANT = bytes((byte & 0x3F) | 0x80 for byte in range(256))
_ID_TEXT = Uuid(as_uuid=False)


def _sample_row(
    study: Study, values: Mapping[str, Any], attributes: Mapping[str, str]
) -> dict[str, Any]:
    now = utcnow()
    return {
        **values,
        "id": uuid.uuid4(),
        "study_id": study.id,
        "sample_key": str(values["sample_id"]).casefold(),
        "attributes": dict(attributes),
        "created_at": now,
        "updated_at": now,
    }


async def insert_samples(
    session: AsyncSession,
    *,
    study: Study,
    samples: Sequence[SampleInput] | AsyncIterator[Sequence[SampleInput]],
) -> int:
    """Insert checked samples (normalised values, attributes) in bulk (``bulk.insert_rows``:
    COPY on PostgreSQL, one executemany on SQLite); a sample_id already in the study fails the
    whole insert (the unique constraint). created_at follows the samples' order.

    ``samples`` may come in batches from an async iterator (a sheet's rows checked a chunk at a
    time in a worker thread). Where the database works outside this process (PostgreSQL's COPY,
    ``bulk.works_in_server``), each batch is inserted while the iterator makes the next one, so
    the server and the checks work at the same time; on SQLite one after the other. The
    counters are added once, after the last batch; an error from the iterator ends the insert
    before that and is raised (the batches inserted so far are the caller's to roll back: a
    savepoint around the call)."""
    table = cast(Table, Sample.__table__)
    ahead = bulk.works_in_server((await session.connection()).dialect)
    start, count = utcnow(), 0
    batches = _one_batch(samples) if isinstance(samples, Sequence) else samples
    following = asyncio.ensure_future(anext(batches, None))
    try:
        while (batch := await following) is not None:
            if ahead:
                following = asyncio.ensure_future(anext(batches, None))
            if batch:
                columns = _sample_columns(study, batch, start=start, offset=count)
                await bulk.insert_rows(session, table, **columns)
                count += len(batch)
            if not ahead:
                following = asyncio.ensure_future(anext(batches, None))
    finally:
        await _settled(following)
        if isinstance(batches, AsyncGenerator):
            await batches.aclose()
    if count:
        await counters.add(session, study_id=study.id, tally=counters.samples(count), touch=True)
    return count


async def _one_batch(samples: Sequence[SampleInput]) -> AsyncGenerator[Sequence[SampleInput]]:
    yield samples


async def _settled(task: asyncio.Future[Any]) -> None:
    """Wait for ``task`` to end (its worker thread, if any, cannot be stopped) and take its
    outcome, which the error being raised instead of it replaces."""
    if not task.done():
        await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


async def create(
    session: AsyncSession, *, data: StudyCreate, owner: User, accession_prefix: str
) -> Study:
    """A new draft with its accession, and its inline samples: all of them or nothing.

    The study and its samples are written first under a provisional accession; the number is
    taken by one of the last statements before the commit (``assign_accession``), so the
    counter's row lock, which serialises creations, is held for the end of the transaction
    only."""
    checks = check_samples(data.samples or [])
    study_id = uuid.uuid4()
    study = Study(
        id=study_id,
        # Unique and never seen outside this transaction: replaced before it commits.
        accession=f"~{study_id.hex[:31]}",
        owner_id=owner.id,
        title=data.title,
        description=data.description,
        authors=list(data.authors),
        release_date=data.release_date,
        status=StudyStatus.DRAFT,
        search_text="",
        sample_count=len(checks),
    )
    study.owner = owner
    session.add(study)
    session.add_all(_new_sample(study, check) for check in checks)
    await session.flush()
    await assign_accession(
        session, study=study, prefix=accession_prefix, actor=owner, samples=len(checks)
    )
    # Last, like the accession: an owner's creations queue on their totals' row only for the
    # rest of the transaction.
    await counters.study_created(session, owner_id=owner.id, samples=len(checks))
    return study


# The numbering statement on PostgreSQL: the counter, the study's accession and search text, and
# the STUDY_CREATED event in one round trip. The number is formatted as f"{prefix}-{value:04d}".
_ASSIGN_ACCESSION = text(
    """
    WITH counter AS (
        UPDATE accession_counter SET value = value + 1 WHERE name = :counter
        RETURNING CAST(:prefix AS text) || '-' || CASE WHEN value < 10000
            THEN lpad(CAST(value AS text), 4, '0') ELSE CAST(value AS text) END AS accession
    ), numbered AS (
        UPDATE study SET accession = counter.accession,
            search_text = lower(counter.accession) || CAST(:rest AS text)
        FROM counter WHERE study.id = :study_id
        RETURNING study.accession
    ), created AS (
        INSERT INTO study_event (id, study_id, actor_id, action, detail, at)
        SELECT CAST(:event_id AS uuid), :study_id, CAST(:actor_id AS uuid),
            CAST(:action AS varchar), json_build_object(
                'accession', numbered.accession, 'samples', CAST(:samples AS integer)),
            CAST(:at AS timestamptz)
        FROM numbered
    )
    SELECT accession FROM numbered
    """
)


async def assign_accession(
    session: AsyncSession, *, study: Study, prefix: str, actor: User, samples: int
) -> None:
    """Number a study just written (``create``): the next accession from the counter (its
    UPDATE takes the row lock, so concurrent creations get consecutive numbers and a rolled-back
    creation gives its number back), the search text that includes it, and the STUDY_CREATED
    event. Call it last before the commit: the lock is held from here to the commit."""
    # The search text after the accession (see _search_text), so SQL can put the two together.
    rest = _search_text(study, accession="")
    rest = f" {rest}" if rest else ""
    if session.get_bind().dialect.name == "postgresql":
        accession = (
            await session.execute(
                _ASSIGN_ACCESSION,
                {
                    "counter": ACCESSION_COUNTER,
                    "prefix": prefix,
                    "rest": rest,
                    "study_id": study.id,
                    "event_id": uuid.uuid4(),
                    "actor_id": actor.id,
                    "action": EventAction.STUDY_CREATED.value,
                    "samples": samples,
                    "at": utcnow(),
                },
            )
        ).scalar_one()
    else:
        accession = await next_accession(session, prefix=prefix)
        table = cast(Table, Study.__table__)
        await session.execute(
            update(table)
            .where(table.c.id == study.id)
            .values(
                accession=accession,
                search_text=_search_text(study, accession=accession),
                updated_at=study.updated_at,  # not the column's onupdate: unchanged
            )
        )
        record_event(
            session,
            study=study,
            actor=actor,
            action=EventAction.STUDY_CREATED,
            detail={"accession": accession, "samples": samples},
        )
    # The row has them already; the loaded study is told without being marked changed.
    set_committed_value(study, "accession", accession)
    set_committed_value(study, "search_text", _search_text(study, accession=accession))


def check_if_match(study: Study, if_match: str | None) -> None:
    """412 unless ``If-Match`` (when sent) names the study's current ETag."""
    if if_match is None:
        return
    candidates = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if "*" not in candidates and etag(study) not in candidates:
        raise PreconditionFailedError


def etag(study: Study) -> str:
    return f'"{study.id.hex}-{study.version}"'


async def update_study(
    session: AsyncSession, *, study: Study, data: StudyUpdate, actor: User
) -> Study:
    changes = data.model_dump(exclude_unset=True)
    for required in ("title", "description", "authors"):
        if required in changes and changes[required] is None:
            changes.pop(required)
    changed = {key: value for key, value in changes.items() if getattr(study, key) != value}
    for key, value in changed.items():
        setattr(study, key, value)
    if changed:
        study.search_text = _search_text(study)
        study.updated_at = utcnow()
        record_event(
            session,
            study=study,
            actor=actor,
            action=EventAction.STUDY_UPDATED,
            detail={"fields": sorted(changed)},
        )
    try:
        await session.flush()
    except StaleDataError:
        raise PreconditionFailedError("The study was changed by someone else; reload it.") from None
    return study


def study_storage_prefix(study_id: uuid.UUID) -> str:
    """Where every stored object of a study lives, so deleting the study can remove them all."""
    return f"studies/{study_id}/"


async def delete_study(session: AsyncSession, *, study: Study, storage: Storage) -> None:
    """Delete the study with its samples, files and uploads; its objects go once committed."""
    prefix = study_storage_prefix(study.id)
    await counters.delete_study(session, study_id=study.id)
    await session.flush()
    after_commit(session, lambda: storage.delete_prefix(prefix))


# ---------------------------------------------------------------------------------------------
# Lifecycle.


def _require_status(study: Study, *allowed: StudyStatus) -> None:
    if study.status not in allowed:
        raise InvalidTransitionError(
            f"The study is {study.status.value}; this needs "
            + " or ".join(status.value for status in allowed)
            + "."
        )


async def submit(
    session: AsyncSession, *, study: Study, actor: User, review_required: bool, storage: Storage
) -> Study:
    """Leave draft for review (or publication). An unfinished upload keeps a study from being
    submitted (readiness); one created while the study was being submitted is ended."""
    _require_status(study, StudyStatus.DRAFT)
    problems = await find_problems(session, study=study)
    if problems:
        raise StudyIncompleteError(errors=[p.model_dump() for p in problems])
    now = utcnow()
    study.submitted_at = now
    study.updated_at = now
    study.review_comment = None
    if review_required:
        study.status = StudyStatus.IN_REVIEW
        record_event(session, study=study, actor=actor, action=EventAction.STUDY_SUBMITTED)
    else:
        study.status = StudyStatus.PUBLISHED
        study.published_at = now
        record_event(
            session,
            study=study,
            actor=actor,
            action=EventAction.STUDY_PUBLISHED,
            detail={"review": "not required"},
        )
    await session.flush()
    await counters.status_changed(
        session,
        owner_id=study.owner_id,
        old=StudyStatus.DRAFT,
        new=study.status,
        release_date=study.release_date,
    )
    await end_uploads(session, storage=storage, where=Upload.study_id == study.id)
    return study


async def withdraw(session: AsyncSession, *, study: Study, actor: User) -> Study:
    _require_status(study, StudyStatus.IN_REVIEW)
    study.status = StudyStatus.DRAFT
    study.updated_at = utcnow()
    record_event(session, study=study, actor=actor, action=EventAction.STUDY_WITHDRAWN)
    await session.flush()
    await counters.status_changed(
        session, owner_id=study.owner_id, old=StudyStatus.IN_REVIEW, new=StudyStatus.DRAFT
    )
    return study


async def review(
    session: AsyncSession,
    *,
    study: Study,
    actor: User,
    decision: ReviewDecision,
    comment: str | None,
) -> Study:
    _require_status(study, StudyStatus.IN_REVIEW)
    now = utcnow()
    study.updated_at = now
    study.review_comment = comment or None
    if decision == ReviewDecision.APPROVE:
        study.status = StudyStatus.PUBLISHED
        study.published_at = now
        action = EventAction.STUDY_APPROVED
    else:
        if not comment:
            raise CommentRequiredError
        study.status = StudyStatus.DRAFT
        action = EventAction.STUDY_CHANGES_REQUESTED
    record_event(session, study=study, actor=actor, action=action, detail={"comment": comment})
    await session.flush()
    await counters.status_changed(
        session,
        owner_id=study.owner_id,
        old=StudyStatus.IN_REVIEW,
        new=study.status,
        release_date=study.release_date,
    )
    return study


# ---------------------------------------------------------------------------------------------
# Members.


async def list_members(session: AsyncSession, *, study: Study) -> list[StudyMember]:
    members = await session.scalars(
        select(StudyMember)
        .where(StudyMember.study_id == study.id)
        .options(joinedload(StudyMember.user))
        .order_by(StudyMember.created_at)
    )
    return list(members.all())


async def set_member(
    session: AsyncSession,
    *,
    study: Study,
    email: str,
    role: MemberRole,
    actor: User,
    storage: Storage,
) -> StudyMember:
    """Add a member or change their role; one made a viewer loses their unfinished uploads."""
    await _lock_study(session, study)
    user = await auth_service.get_by_email(session, email=email)
    # A deactivated account cannot take part, and answering for it would tell it exists.
    if user is None or not user.is_active:
        raise UserNotFoundError
    if user.id == study.owner_id:
        raise OwnerNotMemberError
    member = await session.get(StudyMember, (study.id, user.id))
    if member is None:
        member = StudyMember(study_id=study.id, user_id=user.id, role=role, created_at=utcnow())
        session.add(member)
    else:
        member.role = role
    member.user = user
    record_event(
        session,
        study=study,
        actor=actor,
        action=EventAction.MEMBER_SET,
        detail={"user_id": str(user.id), "email": user.email, "role": role.value},
    )
    await session.flush()
    if role != MemberRole.EDITOR:
        await _end_members_uploads(session, study=study, user_id=user.id, storage=storage)
    return member


async def remove_member(
    session: AsyncSession, *, study: Study, user_id: uuid.UUID, actor: User, storage: Storage
) -> None:
    """Remove a member; their unfinished uploads to the study end with them."""
    await _lock_study(session, study)
    member = await session.get(StudyMember, (study.id, user_id))
    if member is None:
        raise MemberNotFoundError
    await session.delete(member)
    record_event(
        session,
        study=study,
        actor=actor,
        action=EventAction.MEMBER_REMOVED,
        detail={"user_id": str(user_id)},
    )
    await session.flush()
    await _end_members_uploads(session, study=study, user_id=user_id, storage=storage)


async def _lock_study(session: AsyncSession, study: Study) -> None:
    """Take the study's row lock before a member's role changes. A chunk finishing a member's
    upload takes it too before re-reading their role, so the two are ordered: either the file
    was recorded first and stays, or the upload ends here and the chunk finds it gone."""
    await session.execute(select(Study.id).where(Study.id == study.id).with_for_update())


async def _end_members_uploads(
    session: AsyncSession, *, study: Study, user_id: uuid.UUID, storage: Storage
) -> None:
    await end_uploads(
        session,
        storage=storage,
        where=and_(Upload.study_id == study.id, Upload.owner_id == user_id),
    )


# ---------------------------------------------------------------------------------------------
# Samples.


def _sample_query(study: Study) -> Select[Sample]:
    return select(Sample).where(Sample.study_id == study.id).options(selectinload(Sample.files))


async def list_samples(
    session: AsyncSession,
    *,
    study: Study,
    q: str | None,
    organism: str | None,
    sex: str | None,
    page: Page,
) -> PageOf[Sample]:
    conditions: list[ColumnElement[bool]] = [Sample.study_id == study.id]
    if q and q.strip():
        text = q.strip().lower()
        searched = (
            Sample.sample_id,
            Sample.sample,
            Sample.description,
            Sample.tissue,
            Sample.sample_group,
        )
        conditions.append(or_(*(contains(func.lower(column), text) for column in searched)))
    if organism and organism.strip():
        conditions.append(func.lower(Sample.organism) == organism.strip().lower())
    if sex and sex.strip():
        conditions.append(func.lower(Sample.sex) == sex.strip().lower())

    async def with_files(statement: Select[Any]) -> Sequence[Sample]:
        return (await session.scalars(statement.options(selectinload(Sample.files)))).all()

    statement = select(Sample).where(*conditions).order_by(Sample.created_at, Sample.sample_key)
    return await paginate(session, statement, page=page, load=with_files)


async def get_sample(session: AsyncSession, *, study: Study, sample_id: str) -> Sample | None:
    result = await session.scalars(
        _sample_query(study).where(Sample.sample_key == sample_id.strip().casefold())
    )
    return result.one_or_none()


async def all_samples(session: AsyncSession, *, study: Study) -> list[Sample]:
    result = await session.scalars(_sample_query(study).order_by(Sample.created_at, Sample.id))
    return list(result.all())


async def sample_ids(session: AsyncSession, *, study: Study) -> list[str]:
    """The sample_ids of the study's samples."""
    result = await session.scalars(select(Sample.sample_id).where(Sample.study_id == study.id))
    return list(result.all())


async def _ensure_free_sample_id(
    session: AsyncSession, *, study: Study, sample_id: str, exclude: uuid.UUID | None = None
) -> None:
    statement = select(Sample.id).where(
        Sample.study_id == study.id, Sample.sample_key == sample_id.casefold()
    )
    if exclude is not None:
        statement = statement.where(Sample.id != exclude)
    if (await session.execute(statement)).first() is not None:
        raise SampleIdTakenError(f"sample_id {sample_id!r} is already used in this study.")


async def create_sample(
    session: AsyncSession, *, study: Study, data: SampleCreate, actor: User
) -> Sample:
    (check,) = check_samples([data])
    await _ensure_free_sample_id(session, study=study, sample_id=str(check.values["sample_id"]))
    sample = _new_sample(study, check)
    sample.files = []
    session.add(sample)
    await session.flush()
    await counters.add(session, study_id=study.id, tally=counters.samples(1), touch=True)
    record_event(
        session,
        study=study,
        actor=actor,
        action=EventAction.SAMPLE_CREATED,
        detail={"sample_id": sample.sample_id},
    )
    await session.flush()
    return sample


async def update_sample(
    session: AsyncSession, *, study: Study, sample: Sample, data: SampleUpdate, actor: User
) -> Sample:
    current: dict[str, Any] = {name: getattr(sample, name) for name in checklist.FIELD_NAMES}
    changes = data.model_dump(exclude_unset=True)
    attributes = changes.pop("attributes", None)
    merged = {**current, **changes}
    if merged.get("sample") == current["sample_id"] and "sample_id" in changes:
        merged["sample"] = None  # the display name followed the old sample_id; follow the new
    check = checklist.validate_sample(
        {**merged, "attributes": attributes if attributes is not None else sample.attributes}
    )
    if check.errors:
        raise InvalidSampleError(errors=[issue.as_dict() for issue in check.errors])
    new_id = str(check.values["sample_id"])
    if new_id.casefold() != sample.sample_key:
        await _ensure_free_sample_id(session, study=study, sample_id=new_id, exclude=sample.id)
    changed = sorted(name for name, value in check.values.items() if getattr(sample, name) != value)
    for name, value in check.values.items():
        setattr(sample, name, value)
    sample.sample_key = new_id.casefold()
    if check.attributes != sample.attributes:
        sample.attributes = check.attributes
        changed.append("attributes")
    if changed:
        sample.updated_at = utcnow()
        await counters.add(session, study_id=study.id, tally=counters.Tally(), touch=True)
        record_event(
            session,
            study=study,
            actor=actor,
            action=EventAction.SAMPLE_UPDATED,
            detail={"sample_id": sample.sample_id, "fields": changed},
        )
    await session.flush()
    return sample


async def delete_samples(
    session: AsyncSession,
    *,
    study: Study,
    samples: Sequence[Sample],
    storage: Storage,
    actor: User | None,
    record: bool = True,
) -> None:
    """Delete samples with their files and unfinished uploads; stored objects go on commit."""
    if not samples:
        return
    ids = [sample.id for sample in samples]
    # Locked first, the study then the samples (the order a file being recorded takes them):
    # a file being added to one of them waits, then finds its sample gone, so every file that
    # goes is one the statement below deletes (and counts).
    await _lock_study(session, study)
    await session.execute(select(Sample.id).where(Sample.id.in_(ids)).with_for_update())
    uploads = (
        await session.execute(
            select(Upload.storage_key, Upload.storage_state).where(
                Upload.sample_pk.in_(ids), Upload.finished_at.is_(None)
            )
        )
    ).all()
    files = (
        await session.execute(
            delete(SampleFile)
            .where(SampleFile.sample_pk.in_(ids))
            .returning(SampleFile.storage_key, *counters.FILE_COLUMNS)
            .execution_options(synchronize_session=False)
        )
    ).all()
    keys = [file[0] for file in files]
    deleted = await session.execute(delete(Sample).where(Sample.id.in_(ids)).returning(Sample.id))
    gone = counters.samples(len(deleted.all())) + counters.files_tally(file[1:] for file in files)
    await counters.add(session, study_id=study.id, tally=-gone, touch=True)
    for sample in samples:
        if record:
            record_event(
                session,
                study=study,
                actor=actor,
                action=EventAction.SAMPLE_DELETED,
                detail={"sample_id": sample.sample_id},
            )
    await session.flush()

    async def remove_objects() -> None:
        for key in keys:
            await storage.delete(key)
        for key, state in uploads:
            await storage.abort_state(key, state)

    after_commit(session, remove_objects)


# ---------------------------------------------------------------------------------------------
# Resumable uploads that may no longer go on.


async def end_uploads(
    session: AsyncSession, *, storage: Storage, where: ColumnElement[bool]
) -> int:
    """End the unfinished resumable uploads matching ``where`` (their uploader lost the right to
    add files, or the study left draft): their rows and ``uploading`` files go now, their stored
    bytes once committed. A request still writing one finds it gone and stops (its own bytes
    go with it). The count ended; finished uploads (their files recorded) are left alone."""
    uploads = (
        await session.execute(
            select(Upload.id, Upload.file_id, Upload.storage_key, Upload.storage_state).where(
                Upload.finished_at.is_(None), where
            )
        )
    ).all()
    if not uploads:
        return 0
    await session.execute(
        delete(Upload)
        .where(Upload.id.in_([upload.id for upload in uploads]))
        .execution_options(synchronize_session=False)
    )
    files = [upload.file_id for upload in uploads if upload.file_id is not None]
    await counters.remove_files(
        session, where=and_(SampleFile.id.in_(files), SampleFile.status == FileStatus.UPLOADING)
    )
    await session.flush()
    for upload in uploads:
        if upload.storage_state:
            after_commit(
                session, partial(storage.abort_state, upload.storage_key, upload.storage_state)
            )
    return len(uploads)
