"""study_total: the number of published studies, kept as studies are published.

The public list's ``total`` counted every public study on every call, a cost that grew with the
data (0.94 s at 1M studies on PostgreSQL). Studies are never unpublished nor deleted once
published, so the number of published studies is kept in one row, added to by the publishing
transaction (src/study/counters.py); the public total is that number minus the published studies
whose release date is still to come, found by a partial index on the release date of published
studies. Filled here from a count, the same one ``python main.py recount`` checks against.

Revision ID: 0007_published_total
Revises: 0006_study_counters
Create Date: 2026-11-30 05:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_published_total"
down_revision: str | None = "0006_study_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PUBLISHED_ONLY = "status = 'published'"


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
    op.create_index(
        "ix_study_published_release_date",
        "study",
        ["release_date"],
        postgresql_where=sa.text(PUBLISHED_ONLY),
        sqlite_where=sa.text(PUBLISHED_ONLY),
    )


def downgrade() -> None:
    op.drop_index("ix_study_published_release_date", table_name="study")
    op.drop_table("study_total")
