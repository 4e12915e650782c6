"""study_total, release_total, owner_total: totals over many studies, kept as they change.

Two answers counted every matching study on every call, a cost that grew with the data (at 1M
studies on PostgreSQL): the public list's ``total`` (0.94 s) and a caller's dashboard summary,
which added up the kept counters of every study they own (0.76 s for an owner of 100k).

- ``study_total`` holds the number of studies ever published (none is unpublished or deleted
  once published), added to by the publishing transaction, and ``release_total`` the published
  ones per release date (a published study's release date never changes): the public total is
  the first less the second's sum over the dates still to come.
- ``owner_total`` holds, per owner, their studies by status and the sums of the studies' kept
  counters, changed by the same statements that change a study's status or counters.

Both are filled here from a count, the same one ``python main.py recount`` checks against
(src/study/counters.py).

Revision ID: 0007_study_totals
Revises: 0006_study_counters
Create Date: 2026-11-30 05:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_study_totals"
down_revision: str | None = "0006_study_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PUBLISHED_ONLY = "status = 'published'"
STATUSES = ("draft", "in_review", "published")
COUNTERS = (
    "sample_count",
    "file_count",
    "total_bytes",
    "valid_file_count",
    "invalid_file_count",
    "valid_bytes",
    "valid_read_count",
    "valid_base_count",
)


def upgrade() -> None:
    op.create_table(
        "study_total",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_study_total")),
    )
    op.execute(
        "INSERT INTO study_total (name, value) "
        "SELECT 'published', count(*) FROM study WHERE status = 'published'"
    )
    op.create_table(
        "release_total",
        sa.Column("release_date", sa.Date(), nullable=False),
        sa.Column("published_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("release_date", name=op.f("pk_release_total")),
    )
    op.execute(
        "INSERT INTO release_total (release_date, published_count) "
        "SELECT release_date, count(*) FROM study "
        "WHERE status = 'published' AND release_date IS NOT NULL GROUP BY release_date"
    )
    op.create_index(
        "ix_study_published_owner_id_release_date",
        "study",
        ["owner_id", "release_date"],
        postgresql_where=sa.text(PUBLISHED_ONLY),
        sqlite_where=sa.text(PUBLISHED_ONLY),
    )
    op.create_table(
        "owner_total",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
            for name in (*(f"{status}_count" for status in STATUSES), *COUNTERS)
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["user.id"],
            name=op.f("fk_owner_total_owner_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_owner_total")),
    )
    study = sa.table(
        "study", sa.column("owner_id"), sa.column("status"), *(sa.column(n) for n in COUNTERS)
    )
    totals = [*(f"{status}_count" for status in STATUSES), *COUNTERS]
    owner_total = sa.table("owner_total", sa.column("owner_id"), *(sa.column(n) for n in totals))
    counted = sa.select(
        study.c.owner_id,
        *(
            sa.func.coalesce(sa.func.sum(sa.case((study.c.status == status, 1), else_=0)), 0)
            for status in STATUSES
        ),
        *(sa.func.coalesce(sa.func.sum(study.c[name]), 0) for name in COUNTERS),
    ).group_by(study.c.owner_id)
    op.execute(owner_total.insert().from_select(["owner_id", *totals], counted))


def downgrade() -> None:
    op.drop_table("owner_total")
    op.drop_index("ix_study_published_owner_id_release_date", table_name="study")
    op.drop_table("release_total")
    op.drop_table("study_total")
