"""Small data helpers for tests: make rows directly, without going through HTTP.

``create_user`` hashes with cheap argon2 parameters (verification reads the cost from the hash, so
logging in as such a user is fast too); ``auth_headers`` mints a valid access token directly.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.config import AuthConfig
from src.auth.jwt import encode_access_token
from src.auth.models import User, UserRole
from src.auth.passwords import PasswordHasher
from src.config import Settings

DEFAULT_PASSWORD = "correct-horse-battery"

CHEAP_PASSWORDS = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
_hashes: dict[str, str] = {}


async def password_hash(password: str) -> str:
    """A cheap argon2id hash of ``password``, made once per password per test session."""
    if password not in _hashes:
        _hashes[password] = await CHEAP_PASSWORDS.hash(password)
    return _hashes[password]


async def create_user(
    session: AsyncSession,
    *,
    role: str = "researcher",
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    full_name: str | None = None,
    is_active: bool = True,
) -> User:
    user_role = UserRole(role)
    user = User(
        email=(email or f"{user_role.value}-{uuid.uuid4().hex[:10]}@example.org").lower(),
        full_name=full_name or f"Test {user_role.value.title()}",
        password_hash=await password_hash(password),
        role=user_role,
        is_active=is_active,
    )
    session.add(user)
    await session.flush()
    return user


def auth_headers(settings: Settings, user: User) -> dict[str, str]:
    """``Authorization: Bearer`` with a valid access token for ``user``, minted without HTTP."""
    token = encode_access_token(
        user_id=user.id,
        secret=settings.jwt_secret,
        config=AuthConfig(),
        generation=user.token_generation,
    )
    return {"Authorization": f"Bearer {token}"}
