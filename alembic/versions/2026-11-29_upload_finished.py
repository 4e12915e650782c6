"""upload: keep finished uploads until they expire (finished_at) and the client's Upload-Metadata.

A finished upload used to be deleted at once, so HEAD on it was 404 and a tus client re-running it
created a new upload. Rows of uploads in progress get NULL in both columns, which is what they
mean; the downgrade drops finished rows first (the old schema had none).

Revision ID: 0003_upload_finished
Revises: 0002_study
Create Date: 2026-11-29 19:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_upload_finished"
down_revision: str | None = "0002_study"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upload_metadata", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM upload WHERE finished_at IS NOT NULL"))
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.drop_column("finished_at")
        batch_op.drop_column("upload_metadata")
