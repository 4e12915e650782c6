"""Tables of the study module: studies, their members, samples, sequence files, tus uploads,
the audit trail and the accession counter.

``sample_file`` and ``upload`` live here because readiness, deletion and the dashboard read them;
the sampleFileUpload module decides how files arrive. Relationships are ``lazy="raise"``: what a
query needs is loaded explicitly, so an N+1 fails in tests instead of slowing a page.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    cast,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from src.auth.models import User
from src.database import Base, Timestamps, UUIDPrimaryKey, today, utcnow
from src.study.constants import FileStatus, MemberRole, ReadKind, StudyStatus


def _enum(enum_class: type[Any], length: int = 16) -> Enum:
    """Store an enum's values (not names) as plain strings on both databases."""
    return Enum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


class AccessionCounter(Base):
    """One row per sequence; incremented under a row lock so numbers are consecutive and unique."""

    __tablename__ = "accession_counter"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class KeptCounts:
    """The counts kept as samples and files change, in the transaction that changes them
    (study/counters.py, ``COUNTER_COLUMNS``): a study's own, and the sums of an owner's."""

    sample_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    file_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    valid_file_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    invalid_file_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    valid_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    valid_read_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    valid_base_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class StudyTotal(Base):
    """Totals over every study, one row per name, kept by the transactions that change them
    (study/counters.py): what would otherwise be a count over the whole table."""

    __tablename__ = "study_total"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class OwnerTotal(KeptCounts, Base):
    """An owner's studies by status and the sums of their studies' kept counts, kept by the same
    transactions as the studies' own (study/counters.py): a caller's dashboard adds up one row
    instead of every study they own."""

    __tablename__ = "owner_total"

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    draft_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    in_review_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    published_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ReleaseTotal(Base):
    """Published studies per release date (those that have one), kept by the publishing
    transaction (study/counters.py): the public total subtracts the ones whose date is still to
    come, a sum over the coming dates rather than a count of the studies."""

    __tablename__ = "release_total"

    release_date: Mapped[date] = mapped_column(primary_key=True)
    published_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    @classmethod
    def coming(cls, on: ColumnElement[date] | None = None) -> ColumnElement[int]:
        """The number of published studies whose release date is still to come on ``on`` (today
        by default; a bound parameter in a statement built once): a sum over the coming dates,
        an integer on every database (PostgreSQL's sum of bigints is numeric)."""
        day: Any = today() if on is None else on
        coming = select(func.sum(cls.published_count)).where(cls.release_date > day)
        return cast(func.coalesce(coming.scalar_subquery(), 0), BigInteger)


# An owner's published studies by release date: their embargoed ones, for their dashboard.
PUBLISHED_ONLY = "status = 'published'"


class Study(UUIDPrimaryKey, Timestamps, KeptCounts, Base):
    __tablename__ = "study"
    __table_args__ = (
        Index("ix_study_status_created_at", "status", "created_at"),
        Index("ix_study_created_at", "created_at"),
        # A caller's own studies, newest first ("mine"), and their sums (the dashboard).
        Index("ix_study_owner_id_created_at", "owner_id", "created_at"),
        # The review queue: studies in review, oldest submission first.
        Index("ix_study_status_submitted_at", "status", "submitted_at"),
        Index(
            "ix_study_published_owner_id_release_date",
            "owner_id",
            "release_date",
            postgresql_where=text(PUBLISHED_ONLY),
            sqlite_where=text(PUBLISHED_ONLY),
        ),
        # Trigram index behind ``q`` on PostgreSQL (created by the migration with pg_trgm).
        Index(
            "ix_study_search_text_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            info={"dialect": "postgresql"},
        ).ddl_if(dialect="postgresql"),
    )

    accession: Mapped[str] = mapped_column(String(32), unique=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user.id"))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[StudyStatus] = mapped_column(_enum(StudyStatus), default=StudyStatus.DRAFT)
    release_date: Mapped[date | None]
    review_comment: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None] = mapped_column(index=True)
    # Lower-cased accession, title, description and authors: what ``q`` searches.
    search_text: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)

    owner: Mapped[User] = relationship(lazy="raise")
    members: Mapped[list[StudyMember]] = relationship(
        back_populates="study", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    samples: Mapped[list[Sample]] = relationship(
        back_populates="study", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    # Public: published, and its release date (if any) has come. The one rule, in Python for a
    # loaded study and in SQL for a query; study/visibility.py builds the rest of who-sees-what
    # on it, and the dashboard counts public studies with it.
    def is_public(self) -> bool:
        return is_public(self.status, self.release_date)

    @classmethod
    def embargoed_clause(cls, on: ColumnElement[date] | None = None) -> ColumnElement[bool]:
        """Published, with a release date still to come on ``on`` (today by default)."""
        day: Any = today() if on is None else on
        return and_(cls.status == StudyStatus.PUBLISHED, cls.release_date > day)

    @classmethod
    def public_clause(cls, columns: Any = None, *, on: Any = None) -> ColumnElement[bool]:
        """In SQL. ``columns``: the table's columns (``Study.__table__.c``) for a Core
        statement, else the model's; ``on``: the day to compare with (a bound parameter in a
        statement built once), else today."""
        columns = cls if columns is None else columns
        return and_(
            columns.status == StudyStatus.PUBLISHED,
            or_(
                columns.release_date.is_(None),
                columns.release_date <= (today() if on is None else on),
            ),
        )


def is_public(status: StudyStatus, release_date: date | None) -> bool:
    """The rule of ``Study.is_public`` on plain values (a list reads rows, not models)."""
    return status == StudyStatus.PUBLISHED and (release_date is None or release_date <= today())


class StudyMember(Base):
    __tablename__ = "study_member"

    study_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("study.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[MemberRole] = mapped_column(_enum(MemberRole))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    study: Mapped[Study] = relationship(back_populates="members", lazy="raise")
    user: Mapped[User] = relationship(lazy="raise")


class Sample(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "sample"
    __table_args__ = (
        # sample_id is unique in a study ignoring case: the key is its lower-cased form.
        UniqueConstraint("study_id", "sample_key", name="uq_sample_study_id_sample_key"),
        Index("ix_sample_organism", "organism"),
        Index("ix_sample_study_id_organism", "study_id", "organism"),
    )

    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"))
    sample_id: Mapped[str] = mapped_column(String(64))
    sample_key: Mapped[str] = mapped_column(String(64))
    sample: Mapped[str] = mapped_column(String(1024))
    sample_group: Mapped[str | None] = mapped_column(String(1024))
    sample_project: Mapped[str | None] = mapped_column(String(1024))
    description: Mapped[str | None] = mapped_column(String(1024))
    organism: Mapped[str] = mapped_column(String(1024))
    tissue: Mapped[str | None] = mapped_column(String(1024))
    sex: Mapped[str | None] = mapped_column(String(32))
    cell_line: Mapped[str | None] = mapped_column(String(1024))
    mouse_model: Mapped[str | None] = mapped_column(String(1024))
    biomaterial_provider: Mapped[str | None] = mapped_column(String(1024))
    date_sample_prep: Mapped[str | None] = mapped_column(String(10))
    biological_repeat: Mapped[int | None]
    attributes: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)

    study: Mapped[Study] = relationship(back_populates="samples", lazy="raise")
    files: Mapped[list[SampleFile]] = relationship(
        back_populates="sample_record",
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="SampleFile.created_at",
    )


class SampleFile(UUIDPrimaryKey, Base):
    __tablename__ = "sample_file"
    __table_args__ = (
        Index("ix_sample_file_status", "status"),
        # A sample's files by state: readiness, and the dashboard's sums over some studies.
        Index("ix_sample_file_sample_pk_status", "sample_pk", "status"),
    )

    sample_pk: Mapped[uuid.UUID] = mapped_column(ForeignKey("sample.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    read: Mapped[ReadKind] = mapped_column(_enum(ReadKind, 8))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    md5: Mapped[str | None] = mapped_column(String(32))
    sha256: Mapped[str | None] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[FileStatus] = mapped_column(_enum(FileStatus), default=FileStatus.UPLOADING)
    read_count: Mapped[int | None] = mapped_column(BigInteger)
    base_count: Mapped[int | None] = mapped_column(BigInteger)
    min_length: Mapped[int | None]
    max_length: Mapped[int | None]
    mean_length: Mapped[float | None] = mapped_column(Float)
    name_digest: Mapped[str | None] = mapped_column(String(64))
    validation_errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Indexed: a user's quota sums their files' sizes.
    uploaded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    # raise_on_sql: the parent sample is usually in the session already (the files were loaded
    # through it), and reading it from the identity map costs no query.
    sample_record: Mapped[Sample] = relationship(back_populates="files", lazy="raise_on_sql")

    @property
    def sample_id(self) -> str:
        """The owning sample's sample_id (what the API calls a file's sample)."""
        return self.sample_record.sample_id


class Upload(UUIDPrimaryKey, Base):
    """A tus upload: everything a process needs to continue it after a restart. A finished
    upload (``finished_at`` set) is kept until it expires, so a client re-running it sees it
    done; it then reserves no quota and holds no stored bytes of its own (its file does)."""

    __tablename__ = "upload"

    # Indexed: a user's quota sums their unfinished uploads' lengths.
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    study_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("study.id", ondelete="CASCADE"), index=True
    )
    sample_pk: Mapped[uuid.UUID] = mapped_column(ForeignKey("sample.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(255))
    read: Mapped[ReadKind] = mapped_column(_enum(ReadKind, 8))
    declared_md5: Mapped[str | None] = mapped_column(String(32))
    declared_sha256: Mapped[str | None] = mapped_column(String(64))
    # Upload-Metadata as the client sent it at creation, answered again on HEAD.
    upload_metadata: Mapped[str | None] = mapped_column(Text)
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    storage_key: Mapped[str] = mapped_column(String(255), unique=True)
    storage_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The file record (status uploading) that this upload completes.
    file_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sample_file.id", ondelete="CASCADE")
    )
    # A short lease taken by the process writing a chunk, so two PATCHes never write at once and
    # a process killed mid-PATCH blocks the upload only until the lease runs out.
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    # When the last byte was recorded and the file finished; None while the upload is going on.
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StorageReservation(UUIDPrimaryKey, Base):
    """Bytes a whole-file upload (PUT or multipart) may store, taken against its user's quota
    before the body streams, in a transaction that serialises that user's quota decisions. The
    upload turns it into its file's size when it records the file (same transaction) or drops
    it when it fails; it is renewed while the body streams, so one left by a killed process
    stops counting once ``expires_at`` passes. tus uploads reserve through their ``upload`` row."""

    __tablename__ = "storage_reservation"
    __table_args__ = (Index("ix_storage_reservation_user_id_expires_at", "user_id", "expires_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    bytes: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StudyEvent(UUIDPrimaryKey, Base):
    """The audit trail: who did what to a study, and when."""

    __tablename__ = "study_event"
    __table_args__ = (
        Index("ix_study_event_study_id_at", "study_id", "at"),
        Index("ix_study_event_at", "at"),
    )

    study_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    actor: Mapped[User | None] = relationship(lazy="raise")
