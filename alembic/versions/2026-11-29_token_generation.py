"""user: token_generation, the generation of access tokens the account still accepts.

Access tokens carry it in their ``gen`` claim; logout, a password change, deactivation and
log-out-everywhere raise it, which ends every access token issued before at once. Existing
accounts start at 0, the generation tokens minted before this revision are read as.

Revision ID: 0005_token_generation
Revises: 0004_storage_reservation
Create Date: 2026-11-29 21:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_token_generation"
down_revision: str | None = "0004_storage_reservation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_generation", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("token_generation")
