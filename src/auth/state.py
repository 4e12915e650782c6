"""The auth module's per-application state, built in the app's lifespan: its settings, the JWT
secret, the password hasher (and its limiter) and (with REDIS_URL) the Redis rate-limit storage.
At start-up it also loads the common-password list and creates the first admin from
FIRST_ADMIN_EMAIL / FIRST_ADMIN_PASSWORD."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from limits.aio.storage import RedisStorage, Storage
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from src.auth import service as auth_service
from src.auth.config import AuthConfig
from src.auth.exceptions import EmailTakenError
from src.auth.jwt import AccessClaims, VerifiedTokens
from src.auth.models import UserRole
from src.auth.password_policy import load_common_passwords
from src.auth.passwords import PasswordHasher
from src.auth.ratelimit import DatabaseStorage
from src.config import Settings

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool

logger = logging.getLogger(__name__)


@dataclass
class AuthState:
    config: AuthConfig
    secret: str
    passwords: PasswordHasher
    _tokens: VerifiedTokens = field(default_factory=VerifiedTokens, repr=False)
    _redis_pool: ConnectionPool | None = field(default=None, repr=False)
    _redis_storage: Storage | None = field(default=None, repr=False)

    def access_claims(self, token: str) -> AccessClaims:
        """What a valid access token says (verified once per token: VerifiedTokens);
        ``InvalidTokenError`` for any other token."""
        return self._tokens.claims(token, secret=self.secret, config=self.config)

    @classmethod
    def build(cls, settings: Settings, config: AuthConfig | None = None) -> AuthState:
        config = config or AuthConfig()
        state = cls(
            config=config,
            secret=settings.jwt_secret,
            passwords=PasswordHasher(
                time_cost=config.argon2_time_cost,
                memory_cost=config.argon2_memory_cost,
                parallelism=config.argon2_parallelism,
                concurrency=config.password_hash_concurrency,
                queue=config.password_hash_queue,
            ),
        )
        if config.async_redis_url and config.redis_url:
            # Imported only when used: the client costs every process ~6 MiB.
            from redis.asyncio import ConnectionPool

            state._redis_pool = ConnectionPool.from_url(config.redis_url.get_secret_value())
            # Our own pool, so close() can release its connections at shutdown.
            options: dict[str, Any] = {"connection_pool": state._redis_pool}
            state._redis_storage = RedisStorage(
                config.async_redis_url, implementation="redispy", key_prefix="mosaic", **options
            )
        return state

    def rate_limit_storage(self, sessionmaker: async_sessionmaker[AsyncSession]) -> Storage:
        """Redis when configured, else the database the request's sessions come from."""
        return self._redis_storage or DatabaseStorage(sessionmaker)

    async def close(self) -> None:
        self.passwords.close()
        if self._redis_pool is not None:
            await self._redis_pool.aclose()


async def ensure_first_admin(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    email: str,
    password: str,
    passwords: PasswordHasher,
) -> bool:
    """Create the configured first admin unless that account exists (it is never overwritten).

    A start-up job, so it owns its transactions: one to look, none while hashing, one to insert.
    """
    async with sessionmaker() as session:
        exists = await auth_service.get_by_email(session, email=email) is not None
    if exists:
        return False
    password_hash = await passwords.hash(password)
    async with sessionmaker.begin() as session:
        await auth_service.create_user(
            session,
            email=email,
            password_hash=password_hash,
            full_name="Administrator",
            role=UserRole.ADMIN,
        )
    return True


async def start_auth(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    config: AuthConfig | None = None,
) -> AuthState:
    """Build the state, load the common-password list and make sure the configured first admin
    exists (never overwritten)."""
    state = AuthState.build(settings, config)
    await anyio.to_thread.run_sync(load_common_passwords)
    email, password = state.config.first_admin_email, state.config.first_admin_password
    if email is not None and password is not None:
        try:
            created = await ensure_first_admin(
                sessionmaker,
                email=email,
                password=password.get_secret_value(),
                passwords=state.passwords,
            )
        except (IntegrityError, EmailTakenError):  # another worker created it at the same moment
            created = False
        if created:
            logger.info("first admin %s created", email.lower())
    return state


async def auth_state(connection: HTTPConnection) -> AuthState:
    """Dependency: the application's auth state."""
    state: AuthState = connection.app.state.auth
    return state
