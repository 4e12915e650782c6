"""Rate limiting of logins, registrations and account look-ups with `limits`' fixed-window
strategy.

The counters are shared by every process: in Redis when REDIS_URL is set (limits' own async Redis
storage), else in the ``rate_limit_counter`` table through ``DatabaseStorage``, a `limits` storage
whose increment is one atomic upsert (the counters of one attempt, per account and per client,
in one statement). Each call runs in its own short transaction, so a counted attempt is kept
whatever happens to the request's transaction.

An attempt is counted before it is checked (``consume``), so parallel guesses cannot slip through
between a check and a count; a login that succeeds gives its attempt back (``refund``).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter
from sqlalchemy import Table, case, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.auth.exceptions import TooManyAttemptsError
from src.auth.models import RateLimitCounter
from src.database import autocommit_options, utcnow

# One increment in this many also deletes expired counters, so the table stays small.
CLEANUP_ONE_IN = 100


class DatabaseStorage(Storage):
    """A `limits` storage in the ``rate_limit_counter`` table (fixed windows only)."""

    STORAGE_SCHEME = None

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        super().__init__()
        self._sessionmaker = sessionmaker

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return SQLAlchemyError

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        (count, _expires_at), *_ = (await self.incr_many([(key, expiry)], amount)).values()
        return count

    async def incr_many(
        self, counters: Sequence[tuple[str, int]], amount: int = 1
    ) -> dict[str, tuple[int, datetime]]:
        """Add ``amount`` to each counter ``(key, expiry in seconds)`` (distinct keys) in one
        atomic upsert; a counter whose window has ended starts a new one. Returns each key's
        count and the end of its window."""
        now = utcnow()
        table = cast(Table, RateLimitCounter.__table__)
        # One statement, its own transaction: on PostgreSQL in autocommit, without the round
        # trips of BEGIN and COMMIT.
        options = autocommit_options(self._sessionmaker)
        async with self._sessionmaker(execution_options=options) as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            expired = table.c.expires_at <= now
            values = insert(table).values(
                [
                    {"key": key, "count": amount, "expires_at": now + timedelta(seconds=expiry)}
                    for key, expiry in counters
                ]
            )
            statement = values.on_conflict_do_update(
                index_elements=[table.c.key],
                set_={
                    "count": case((expired, amount), else_=table.c.count + amount),
                    "expires_at": case(
                        (expired, values.excluded.expires_at), else_=table.c.expires_at
                    ),
                },
            ).returning(table.c.key, table.c.count, table.c.expires_at)
            rows = (await session.execute(statement)).all()
            if secrets.randbelow(CLEANUP_ONE_IN) == 0:
                await session.execute(delete(table).where(expired))
            await session.commit()
        return {key: (int(count), expires_at) for key, count, expires_at in rows}

    async def _live(self, key: str) -> RateLimitCounter | None:
        async with self._sessionmaker() as session:
            counter = await session.scalar(
                select(RateLimitCounter).where(
                    RateLimitCounter.key == key, RateLimitCounter.expires_at > utcnow()
                )
            )
            await session.commit()
        return counter

    async def get(self, key: str) -> int:
        counter = await self._live(key)
        return counter.count if counter else 0

    async def get_expiry(self, key: str) -> float:
        counter = await self._live(key)
        return counter.expires_at.timestamp() if counter else time.time()

    async def check(self) -> bool:
        try:
            await self.get("check")
        except SQLAlchemyError:
            return False
        return True

    async def reset(self) -> int | None:
        async with self._sessionmaker() as session:
            result = await session.execute(delete(RateLimitCounter))
            await session.commit()
        return int(getattr(result, "rowcount", 0) or 0)

    async def clear(self, key: str) -> None:
        async with self._sessionmaker() as session:
            await session.execute(delete(RateLimitCounter).where(RateLimitCounter.key == key))
            await session.commit()


def account_key(email: str) -> str:
    """Counters are keyed by a digest of the email, so no address is written to the store."""
    return hashlib.sha256(email.lower().encode()).hexdigest()[:32]


@dataclass
class Attempts:
    """The limits one request's attempt counts against: one per account (and client), one per
    client. Built per request by a dependency; services call ``consume`` and ``refund``."""

    limiter: FixedWindowRateLimiter
    namespace: str
    client: str
    per_account: RateLimitItem
    per_client: RateLimitItem
    per_account_includes_client: bool = True
    _consumed: list[tuple[RateLimitItem, tuple[str, ...]]] = field(default_factory=list)

    def _counters(self, account: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
        account_ids: tuple[str, ...] = (self.namespace, "account", account_key(account))
        if self.per_account_includes_client:
            account_ids = (*account_ids, self.client)
        return [
            (self.per_account, account_ids),
            (self.per_client, (self.namespace, "client", self.client)),
        ]

    async def consume(self, account: str) -> None:
        """Count one attempt for ``account`` from this client; refuse past a limit. In the
        database, both counters are counted by one statement."""
        counters = self._counters(account)
        retry_after: float | None = None
        storage = self.limiter.storage
        if isinstance(storage, DatabaseStorage):
            keys = [item.key_for(*identifiers) for item, identifiers in counters]
            counts = await storage.incr_many(
                [(key, item.get_expiry()) for key, (item, _) in zip(keys, counters, strict=True)]
            )
            for key, (item, identifiers) in zip(keys, counters, strict=True):
                count, expires_at = counts[key]
                if count <= item.amount:
                    self._consumed.append((item, identifiers))
                else:
                    retry_after = max(retry_after or 0.0, expires_at.timestamp() - time.time())
        else:
            for item, identifiers in counters:
                if await self.limiter.hit(item, *identifiers):
                    self._consumed.append((item, identifiers))
                    continue
                stats = await self.limiter.get_window_stats(item, *identifiers)
                retry_after = max(retry_after or 0.0, stats.reset_time - time.time())
        if retry_after is not None:
            raise TooManyAttemptsError(retry_after=retry_after)

    async def refund(self) -> None:
        """Give back what ``consume`` counted (a successful login is not a failed attempt); in
        the database, in one statement."""
        consumed, self._consumed = self._consumed, []
        if not consumed:
            return
        storage = self.limiter.storage
        if isinstance(storage, DatabaseStorage):
            await storage.incr_many(
                [(item.key_for(*identifiers), item.get_expiry()) for item, identifiers in consumed],
                amount=-1,
            )
            return
        for item, identifiers in consumed:
            await storage.incr(item.key_for(*identifiers), item.get_expiry(), amount=-1)


@dataclass
class Throttle:
    """A per-caller limit on one kind of request, every request counted (look-ups of accounts by
    email or text, which would otherwise tell a caller who has an account, at any speed)."""

    limiter: FixedWindowRateLimiter
    namespace: str
    limit: RateLimitItem

    async def consume(self, caller: str) -> None:
        """Count one request of ``caller``; refuse past the limit."""
        identifiers = (self.namespace, "caller", caller)
        if await self.limiter.hit(self.limit, *identifiers):
            return
        stats = await self.limiter.get_window_stats(self.limit, *identifiers)
        raise TooManyAttemptsError(retry_after=stats.reset_time - time.time())


def throttle(storage: Storage, *, namespace: str, limit: str) -> Throttle:
    return Throttle(
        limiter=FixedWindowRateLimiter(storage), namespace=namespace, limit=parse(limit)
    )


def attempts(
    storage: Storage,
    *,
    namespace: str,
    client: str,
    per_account: str,
    per_client: str,
    per_account_includes_client: bool = True,
) -> Attempts:
    return Attempts(
        limiter=FixedWindowRateLimiter(storage),
        namespace=namespace,
        client=client,
        per_account=parse(per_account),
        per_client=parse(per_client),
        per_account_includes_client=per_account_includes_client,
    )
