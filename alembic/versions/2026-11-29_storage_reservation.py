"""storage_reservation: quota reserved by whole-file uploads before their body streams.

A whole-file upload (PUT or multipart) reserves the bytes it may store in a short transaction
that serialises its user's quota decisions, and turns the reservation into its file's size when
it records the file. ``expires_at`` (renewed while the body streams) lets a reservation left by
a killed process stop counting. The quota sums also get the indexes they need: a user's files
(``sample_file.uploaded_by_id``) and a user's tus uploads (``upload.owner_id``).

Revision ID: 0004_storage_reservation
Revises: 0003_upload_finished
Create Date: 2026-11-29 21:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_storage_reservation"
down_revision: str | None = "0003_upload_finished"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "storage_reservation",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_storage_reservation_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_reservation")),
    )
    with op.batch_alter_table("storage_reservation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_storage_reservation_user_id_expires_at", ["user_id", "expires_at"], unique=False
        )
    with op.batch_alter_table("sample_file", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sample_file_uploaded_by_id"), ["uploaded_by_id"], unique=False
        )
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_owner_id"), ["owner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_owner_id"))
    with op.batch_alter_table("sample_file", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sample_file_uploaded_by_id"))
    with op.batch_alter_table("storage_reservation", schema=None) as batch_op:
        batch_op.drop_index("ix_storage_reservation_user_id_expires_at")
    op.drop_table("storage_reservation")
