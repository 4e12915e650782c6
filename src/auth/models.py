"""Tables of the auth module: users, their refresh tokens, and the shared rate-limit counters."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from src.auth.constants import EMAIL_MAX_LENGTH, FULL_NAME_MAX_LENGTH
from src.database import Base, Timestamps, UUIDPrimaryKey, utcnow


class UserRole(StrEnum):
    RESEARCHER = "researcher"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class User(UUIDPrimaryKey, Timestamps, Base):
    """An account. ``email`` is stored lower-case, so the unique constraint ignores case.

    ``token_generation`` is copied into every access token; raising it (logout, password change,
    deactivation, log-out-everywhere) ends every access token issued before, at once."""

    __tablename__ = "user"

    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH), unique=True)
    full_name: Mapped[str] = mapped_column(String(FULL_NAME_MAX_LENGTH))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[UserRole] = mapped_column(
        Enum(
            UserRole,
            name="role",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda roles: [role.value for role in roles],
        ),
        default=UserRole.RESEARCHER,
    )
    is_active: Mapped[bool] = mapped_column(default=True)
    token_generation: Mapped[int] = mapped_column(default=0, server_default="0")


class RefreshToken(UUIDPrimaryKey, Base):
    """One refresh token; only its SHA-256 is stored. Tokens rotated from one login share a
    ``family_id``; ``replaced_by_id`` marks a rotated token, so its reuse is detectable."""

    __tablename__ = "refresh_token"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("refresh_token.id", ondelete="SET NULL")
    )


class RateLimitCounter(Base):
    """A fixed-window counter of the rate limiter when no Redis is configured, shared by every
    process through the database."""

    __tablename__ = "rate_limit_counter"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int]
    expires_at: Mapped[datetime] = mapped_column(index=True)
