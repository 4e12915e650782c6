"""A known world for dashboard tests, and the numbers it should produce, computed in Python.

``build_world`` inserts users, studies in every state (drafts, in review, published, embargoed),
samples with varied organism/tissue/sex, and files valid/invalid/uploading, each with a chosen
timestamp, and replaces the audit trail with events of known times. It keeps a plain description
of what it inserted; the ``expected_*`` functions compute every figure from that description alone,
never from the database, so the tests compare two independent computations.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User, UserRole
from src.database import today
from src.study import counters
from src.study.constants import FileStatus, MemberRole, StudyStatus
from src.study.models import Sample, SampleFile, Study, StudyEvent
from tests.factories import create_user
from tests.study.factories import add_file, add_member, create_study

FUTURE = date(2099, 1, 1)


def at(text: str) -> datetime:
    """A UTC timestamp from ``YYYY-MM-DD HH:MM[:SS[.ffffff]]``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class FileSpec:
    status: FileStatus
    size: int
    created_at: datetime
    read_count: int = 0

    @property
    def reads(self) -> int:
        return self.read_count if self.status == FileStatus.VALID else 0

    @property
    def bases(self) -> int:
        # tests/study/factories.add_file records base_count = read_count * 100 for valid files.
        return self.reads * 100


@dataclass
class SampleSpec:
    organism: str
    tissue: str | None = None
    sex: str | None = None
    files: list[FileSpec] = field(default_factory=list)


@dataclass
class StudySpec:
    key: str
    owner: str
    status: StudyStatus
    created_at: datetime
    submitted_at: datetime | None = None
    published_at: datetime | None = None
    release_date: date | None = None
    members: dict[str, MemberRole] = field(default_factory=dict)
    samples: list[SampleSpec] = field(default_factory=list)

    @property
    def public(self) -> bool:
        return self.status == StudyStatus.PUBLISHED and (
            self.release_date is None or self.release_date <= today()
        )


@dataclass
class EventSpec:
    study: str
    actor: str | None
    action: str
    at: datetime


@dataclass
class World:
    users: dict[str, User]
    active: dict[str, bool]
    studies: list[StudySpec]
    events: list[EventSpec]
    ids: dict[str, uuid.UUID]  # study key -> id
    accessions: dict[str, str]

    def spec(self, key: str) -> StudySpec:
        return next(study for study in self.studies if study.key == key)


def _f(status: FileStatus, size: int, when: str, reads: int = 0) -> FileSpec:
    return FileSpec(status=status, size=size, created_at=at(when), read_count=reads)


VALID, INVALID, UPLOADING = FileStatus.VALID, FileStatus.INVALID, FileStatus.UPLOADING

USERS: dict[str, tuple[UserRole, bool]] = {
    "alice": (UserRole.RESEARCHER, True),
    "bob": (UserRole.RESEARCHER, True),
    "carol": (UserRole.RESEARCHER, True),
    "ivan": (UserRole.RESEARCHER, False),
    "rita": (UserRole.REVIEWER, True),
    "adam": (UserRole.ADMIN, True),
}


def study_specs() -> list[StudySpec]:
    return [
        StudySpec(
            "A1",
            "alice",
            StudyStatus.DRAFT,
            at("2025-03-03 10:00"),  # a Monday
            samples=[
                SampleSpec(
                    "Mus musculus",
                    "liver",
                    "female",
                    [
                        _f(VALID, 1_000, "2025-03-03 11:00", 100),
                        _f(INVALID, 500, "2025-03-03 12:00"),
                        _f(UPLOADING, 300, "2025-03-04 09:00"),
                    ],
                ),
                SampleSpec(
                    "Homo sapiens", None, "male", [_f(VALID, 2_000, "2025-03-04 23:59", 200)]
                ),
            ],
        ),
        StudySpec(
            "A2",
            "alice",
            StudyStatus.IN_REVIEW,
            # The last instant of a Sunday: still the week of Monday 2025-03-03.
            at("2025-03-09 23:59:59.999999"),
            submitted_at=at("2025-04-01 08:00"),
            members={"carol": MemberRole.EDITOR},
            samples=[
                SampleSpec(
                    "Mus musculus",
                    "liver",
                    "male",
                    [
                        _f(VALID, 1_500, "2025-03-09 23:59:59.999999", 150),
                        _f(VALID, 1_500, "2025-03-10 00:00", 150),
                    ],
                )
            ],
        ),
        StudySpec(
            "A3",
            "alice",
            StudyStatus.PUBLISHED,
            at("2025-03-10 00:00"),  # the first instant of the next week
            submitted_at=at("2025-04-10 09:00"),
            published_at=at("2025-04-15 10:00"),
            samples=[
                SampleSpec(
                    "Danio rerio", "fin", "mixed", [_f(VALID, 4_000, "2025-03-12 10:00", 400)]
                ),
                SampleSpec("Mus musculus", None, None, [_f(INVALID, 100, "2025-03-12 11:00")]),
            ],
        ),
        StudySpec(
            "A4",
            "alice",
            StudyStatus.PUBLISHED,
            at("2025-03-31 23:00"),  # the last hour of March
            submitted_at=at("2025-04-20 09:00"),
            published_at=at("2025-04-30 23:59"),
            release_date=FUTURE,  # embargoed: published but not public
            samples=[
                SampleSpec(
                    "Mus musculus", "brain", "female", [_f(VALID, 7_000, "2025-04-01 00:00", 700)]
                )
            ],
        ),
        StudySpec(
            "B1",
            "bob",
            StudyStatus.PUBLISHED,
            at("2025-02-28 12:00"),
            submitted_at=at("2025-02-28 13:00"),
            published_at=at("2025-03-01 00:00"),
            release_date=date(2025, 1, 1),  # released: public
            members={"alice": MemberRole.VIEWER},
            samples=[
                SampleSpec(
                    "Homo sapiens", "blood", "female", [_f(VALID, 3_000, "2025-02-28 14:00", 300)]
                ),
                SampleSpec(
                    "Homo sapiens",
                    "blood",
                    "female",
                    [
                        _f(VALID, 3_000, "2025-03-01 14:00", 300),
                        _f(UPLOADING, 10, "2025-03-02 14:00"),
                    ],
                ),
            ],
        ),
        StudySpec(
            "B2",
            "bob",
            StudyStatus.IN_REVIEW,
            at("2025-04-02 08:00"),
            submitted_at=at("2025-04-03 08:00"),
            samples=[
                SampleSpec(
                    "Homo sapiens", "skin", "unknown", [_f(VALID, 600, "2025-04-02 09:00", 60)]
                )
            ],
        ),
        StudySpec(
            "B3",
            "bob",
            StudyStatus.IN_REVIEW,
            at("2025-03-15 08:00"),
            # Submitted before A2 though created after it: the queue orders by submission.
            submitted_at=at("2025-03-20 08:00"),
            samples=[SampleSpec("Mus musculus", "liver", "female")],
        ),
        StudySpec("C1", "carol", StudyStatus.DRAFT, at("2025-04-02 10:00")),
    ]


def event_specs() -> list[EventSpec]:
    return [
        EventSpec("A1", "alice", "study.created", at("2025-03-03 10:00")),
        EventSpec("B1", "bob", "study.published", at("2025-03-01 00:00")),
        EventSpec("A2", "carol", "sample.created", at("2025-03-09 12:00")),
        EventSpec("B3", "bob", "study.submitted", at("2025-03-20 08:00")),
        EventSpec("A2", "alice", "study.submitted", at("2025-04-01 08:00")),
        EventSpec("C1", "carol", "study.created", at("2025-04-02 10:00")),
        EventSpec("B2", "bob", "study.submitted", at("2025-04-03 08:00")),
        EventSpec("A3", None, "study.published", at("2025-04-15 10:00")),
        EventSpec("A4", "rita", "study.approved", at("2025-04-30 23:59")),
    ]


async def build_world(session: AsyncSession) -> World:
    users: dict[str, User] = {}
    for name, (role, active) in USERS.items():
        users[name] = await create_user(
            session, role=role.value, full_name=name.title(), is_active=active
        )
    specs = study_specs()
    ids: dict[str, uuid.UUID] = {}
    accessions: dict[str, str] = {}
    for spec in specs:
        study = await create_study(
            session,
            owner=users[spec.owner],
            title=f"Study {spec.key}",
            status=spec.status,
            release_date=spec.release_date,
        )
        ids[spec.key], accessions[spec.key] = study.id, study.accession
        await session.execute(
            update(Study)
            .where(Study.id == study.id)
            .values(
                created_at=spec.created_at,
                submitted_at=spec.submitted_at,
                published_at=spec.published_at,
            )
        )
        for member, member_role in spec.members.items():
            await add_member(session, study=study, user=users[member], role=member_role)
        for number, sample_spec in enumerate(spec.samples, start=1):
            sample = Sample(
                study_id=study.id,
                sample_id=f"S{number}",
                sample_key=f"s{number}",
                sample=f"S{number}",
                organism=sample_spec.organism,
                tissue=sample_spec.tissue,
                sex=sample_spec.sex,
                attributes={},
            )
            session.add(sample)
            await session.flush()
            await counters.add(session, study_id=study.id, tally=counters.samples(1))
            for file_spec in sample_spec.files:
                file = await add_file(
                    session,
                    sample=sample,
                    status=file_spec.status,
                    size=file_spec.size,
                    read_count=file_spec.read_count,
                )
                await session.execute(
                    update(SampleFile)
                    .where(SampleFile.id == file.id)
                    .values(created_at=file_spec.created_at)
                )
    # The audit trail the factories wrote carries the test's clock; use known times instead.
    await session.execute(delete(StudyEvent))
    events = event_specs()
    for event in events:
        session.add(
            StudyEvent(
                study_id=ids[event.study],
                actor_id=users[event.actor].id if event.actor else None,
                action=event.action,
                detail={"note": event.action},
                at=event.at,
            )
        )
    await session.flush()
    return World(
        users=users,
        active={name: active for name, (_, active) in USERS.items()},
        studies=specs,
        events=events,
        ids=ids,
        accessions=accessions,
    )


# ---------------------------------------------------------------------------------------------
# What the dashboard should answer, from the description alone.


def in_scope(world: World, user: str | None) -> list[StudySpec]:
    """The user's studies (owned or member), or every study when ``user`` is None."""
    if user is None:
        return list(world.studies)
    return [s for s in world.studies if s.owner == user or user in s.members]


def _files(studies: list[StudySpec]) -> list[FileSpec]:
    return [file for study in studies for sample in study.samples for file in sample.files]


def expected_summary_numbers(world: World, user: str | None) -> dict[str, Any]:
    studies = in_scope(world, user)
    files = _files(studies)
    valid = [file for file in files if file.status == VALID]
    statuses = Counter(study.status.value for study in studies)
    return {
        "studies": {
            "total": len(studies),
            "by_status": {status.value: statuses[status.value] for status in StudyStatus},
            "embargoed": sum(
                1 for study in studies if study.status == StudyStatus.PUBLISHED and not study.public
            ),
        },
        "samples": sum(len(study.samples) for study in studies),
        "files": {
            "total": len(files),
            "valid": len(valid),
            "invalid": sum(1 for file in files if file.status == INVALID),
            "uploading": sum(1 for file in files if file.status == UPLOADING),
        },
        "bytes": sum(file.size for file in valid),
        "reads": sum(file.reads for file in valid),
        "bases": sum(file.bases for file in valid),
    }


def expected_public_stats(world: World) -> dict[str, int]:
    public = [study for study in world.studies if study.public]
    valid = [file for file in _files(public) if file.status == VALID]
    return {
        "studies": len(public),
        "samples": sum(len(study.samples) for study in public),
        "files": len(valid),
        "bytes": sum(file.size for file in valid),
        "organisms": len({sample.organism for study in public for sample in study.samples}),
    }


def expected_events(world: World, user: str | None, limit: int) -> list[tuple[str, str]]:
    keys = {study.key for study in in_scope(world, user)}
    events = sorted(
        (event for event in world.events if event.study in keys),
        key=lambda event: event.at,
        reverse=True,
    )
    return [(event.study, event.action) for event in events[:limit]]


def expected_queue(world: World) -> list[str]:
    queued = [study for study in world.studies if study.status == StudyStatus.IN_REVIEW]
    return [
        study.key
        for study in sorted(queued, key=lambda study: study.submitted_at or at("1970-01-01 00:00"))
    ]


def expected_users(world: World) -> dict[str, Any]:
    roles = Counter(role.value for role, _ in USERS.values())
    return {
        "total": len(USERS),
        "active": sum(1 for _, active in USERS.values() if active),
        "by_role": {role.value: roles[role.value] for role in UserRole},
    }


def expected_breakdown(world: World, user: str | None, by: str) -> list[dict[str, Any]]:
    samples: Counter[str | None] = Counter()
    studies: dict[str | None, set[str]] = {}
    for study in in_scope(world, user):
        for sample in study.samples:
            value = getattr(sample, by)
            samples[value] += 1
            studies.setdefault(value, set()).add(study.key)
    rows = [
        {"value": value, "samples": count, "studies": len(studies[value])}
        for value, count in samples.items()
    ]
    # Most samples first; ties by value, nulls last.
    return sorted(rows, key=lambda row: (-row["samples"], row["value"] is None, row["value"] or ""))


def _day_start(moment: datetime, interval: str) -> date:
    day = moment.date()
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def expected_series(
    world: World, user: str | None, metric: str, interval: str, first: date, last: date
) -> dict[date, int]:
    """Non-zero values per period start between ``first`` and ``last`` period starts."""
    studies = in_scope(world, user)
    points: list[tuple[datetime, int]]
    if metric == "studies_created":
        points = [(study.created_at, 1) for study in studies]
    elif metric == "studies_published":
        points = [
            (study.published_at, 1)
            for study in studies
            if study.status == StudyStatus.PUBLISHED and study.published_at is not None
        ]
    else:
        points = [(file.created_at, file.size) for file in _files(studies) if file.status == VALID]
    values: Counter[date] = Counter()
    for moment, value in points:
        start = _day_start(moment, interval)
        if first <= start <= last:
            values[start] += value
    return dict(values)
