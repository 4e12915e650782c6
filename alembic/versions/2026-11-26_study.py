"""study: studies, members, samples, sequence files, tus uploads, audit trail, accessions.

On PostgreSQL the search column gets a trigram index (pg_trgm) so ``q`` stays fast at 100k
studies; SQLite has no such index type and scans.

Revision ID: 0002_study
Revises: 0001_auth
Create Date: 2026-11-26 06:26:20.390056+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_study"
down_revision: str | None = "0001_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _create_study()
    _create_sample()
    _create_study_event()
    _create_study_member()
    _create_sample_file()
    _create_upload()


def _create_study() -> None:
    """The study and the counter its accessions come from."""
    op.create_table(
        "accession_counter",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_accession_counter")),
    )
    op.create_table(
        "study",
        sa.Column("accession", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft", "in_review", "published", name="studystatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("review_comment", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["user.id"], name=op.f("fk_study_owner_id_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study")),
        sa.UniqueConstraint("accession", name=op.f("uq_study_accession")),
    )
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_study_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_study_published_at"), ["published_at"], unique=False)
        batch_op.create_index("ix_study_status_created_at", ["status", "created_at"], unique=False)
        batch_op.create_index("ix_study_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_study_status_submitted_at", ["status", "submitted_at"], unique=False
        )

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_study_search_text_trgm",
            "study",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )
    accession_counter = sa.table(
        "accession_counter", sa.column("name", sa.String), sa.column("value", sa.BigInteger)
    )
    op.bulk_insert(accession_counter, [{"name": "study", "value": 0}])


def _create_sample() -> None:
    """Samples of a study."""
    op.create_table(
        "sample",
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("sample_id", sa.String(length=64), nullable=False),
        sa.Column("sample_key", sa.String(length=64), nullable=False),
        sa.Column("sample", sa.String(length=1024), nullable=False),
        sa.Column("sample_group", sa.String(length=1024), nullable=True),
        sa.Column("sample_project", sa.String(length=1024), nullable=True),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("organism", sa.String(length=1024), nullable=False),
        sa.Column("tissue", sa.String(length=1024), nullable=True),
        sa.Column("sex", sa.String(length=32), nullable=True),
        sa.Column("cell_line", sa.String(length=1024), nullable=True),
        sa.Column("mouse_model", sa.String(length=1024), nullable=True),
        sa.Column("biomaterial_provider", sa.String(length=1024), nullable=True),
        sa.Column("date_sample_prep", sa.String(length=10), nullable=True),
        sa.Column("biological_repeat", sa.Integer(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["study.id"], name=op.f("fk_sample_study_id_study"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample")),
        sa.UniqueConstraint("study_id", "sample_key", name="uq_sample_study_id_sample_key"),
    )
    with op.batch_alter_table("sample", schema=None) as batch_op:
        batch_op.create_index("ix_sample_organism", ["organism"], unique=False)
        batch_op.create_index("ix_sample_study_id_organism", ["study_id", "organism"], unique=False)


def _create_study_event() -> None:
    """The audit trail."""
    op.create_table(
        "study_event",
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["user.id"],
            name=op.f("fk_study_event_actor_id_user"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
            name=op.f("fk_study_event_study_id_study"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_event")),
    )
    with op.batch_alter_table("study_event", schema=None) as batch_op:
        batch_op.create_index("ix_study_event_study_id_at", ["study_id", "at"], unique=False)
        batch_op.create_index("ix_study_event_at", ["at"], unique=False)


def _create_study_member() -> None:
    """Members of a study and their roles."""
    op.create_table(
        "study_member",
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "role",
            sa.Enum("editor", "viewer", name="memberrole", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["study.id"],
            name=op.f("fk_study_member_study_id_study"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_study_member_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("study_id", "user_id", name=op.f("pk_study_member")),
    )
    with op.batch_alter_table("study_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_study_member_user_id"), ["user_id"], unique=False)


def _create_sample_file() -> None:
    """Sequence files of a sample."""
    op.create_table(
        "sample_file",
        sa.Column("sample_pk", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column(
            "read",
            sa.Enum("single", "R1", "R2", name="readkind", native_enum=False, length=8),
            nullable=False,
        ),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "uploading", "valid", "invalid", name="filestatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("read_count", sa.BigInteger(), nullable=True),
        sa.Column("base_count", sa.BigInteger(), nullable=True),
        sa.Column("min_length", sa.Integer(), nullable=True),
        sa.Column("max_length", sa.Integer(), nullable=True),
        sa.Column("mean_length", sa.Float(), nullable=True),
        sa.Column("name_digest", sa.String(length=64), nullable=True),
        sa.Column("validation_errors", sa.JSON(), nullable=False),
        sa.Column("uploaded_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_pk"],
            ["sample.id"],
            name=op.f("fk_sample_file_sample_pk_sample"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"],
            ["user.id"],
            name=op.f("fk_sample_file_uploaded_by_id_user"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample_file")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_sample_file_storage_key")),
    )
    with op.batch_alter_table("sample_file", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sample_file_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            "ix_sample_file_sample_pk_status", ["sample_pk", "status"], unique=False
        )
        batch_op.create_index("ix_sample_file_status", ["status"], unique=False)


def _create_upload() -> None:
    """Resumable (tus) uploads."""
    op.create_table(
        "upload",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("study_id", sa.Uuid(), nullable=False),
        sa.Column("sample_pk", sa.Uuid(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column(
            "read",
            sa.Enum("single", "R1", "R2", name="readkind", native_enum=False, length=8),
            nullable=False,
        ),
        sa.Column("declared_md5", sa.String(length=32), nullable=True),
        sa.Column("declared_sha256", sa.String(length=64), nullable=True),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=False),
        sa.Column("storage_state", sa.JSON(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=True),
        sa.Column("lease_token", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["sample_file.id"],
            name=op.f("fk_upload_file_id_sample_file"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["user.id"], name=op.f("fk_upload_owner_id_user"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sample_pk"],
            ["sample.id"],
            name=op.f("fk_upload_sample_pk_sample"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["study.id"], name=op.f("fk_upload_study_id_study"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_upload_storage_key")),
    )
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_upload_study_id"), ["study_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_study_id"))
        batch_op.drop_index(batch_op.f("ix_upload_expires_at"))

    op.drop_table("upload")
    with op.batch_alter_table("sample_file", schema=None) as batch_op:
        batch_op.drop_index("ix_sample_file_status")
        batch_op.drop_index("ix_sample_file_sample_pk_status")
        batch_op.drop_index(batch_op.f("ix_sample_file_created_at"))

    op.drop_table("sample_file")
    with op.batch_alter_table("study_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_member_user_id"))

    op.drop_table("study_member")
    with op.batch_alter_table("study_event", schema=None) as batch_op:
        batch_op.drop_index("ix_study_event_at")
        batch_op.drop_index("ix_study_event_study_id_at")

    op.drop_table("study_event")
    with op.batch_alter_table("sample", schema=None) as batch_op:
        batch_op.drop_index("ix_sample_study_id_organism")
        batch_op.drop_index("ix_sample_organism")

    op.drop_table("sample")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_study_search_text_trgm", table_name="study")
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index("ix_study_status_submitted_at")
        batch_op.drop_index("ix_study_created_at")
        batch_op.drop_index("ix_study_status_created_at")
        batch_op.drop_index(batch_op.f("ix_study_published_at"))
        batch_op.drop_index(batch_op.f("ix_study_owner_id"))

    op.drop_table("study")
    op.drop_table("accession_counter")
