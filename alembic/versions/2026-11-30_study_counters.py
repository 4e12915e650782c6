"""study: counts kept on the row (samples, files, bytes, valid files' reads and bases).

Lists and the dashboard used to count each study's samples and files with correlated
sub-queries, a cost that grew with the data; the columns are now kept by the transactions that
change samples and files (src/study/counters.py) and filled here from a full recount, the same
one ``python main.py recount`` checks against. Also an index for a caller's own studies, newest
first ("mine"), which replaces the one on owner_id alone.

Revision ID: 0006_study_counters
Revises: 0005_token_generation
Create Date: 2026-11-30 00:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_study_counters"
down_revision: str | None = "0005_token_generation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
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
    with op.batch_alter_table("study", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
            )
        batch_op.drop_index(batch_op.f("ix_study_owner_id"))
        batch_op.create_index(
            "ix_study_owner_id_created_at", ["owner_id", "created_at"], unique=False
        )
    from src.study.counters import repair_statement  # the recount the operator check uses

    op.get_bind().execute(repair_statement())


def downgrade() -> None:
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index("ix_study_owner_id_created_at")
        batch_op.create_index(batch_op.f("ix_study_owner_id"), ["owner_id"], unique=False)
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
