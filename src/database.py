"""The database: async engine and session factory (built in the app's lifespan), the declarative
Base with a constraint naming convention, and the per-request session dependency.

One request is one transaction: the session dependency commits after the route returns and before
the response is sent, so a failed commit is reported as a failure, never as success.
PostgreSQL runs through asyncpg; SQLite through aiosqlite with WAL, foreign keys and a busy
timeout, and with SQLAlchemy driving BEGIN itself so savepoints work: IMMEDIATE, so concurrent
writers queue instead of failing, except for the sessions of requests that only read (GET and
HEAD), which begin DEFERRED and so never wait for a writer (WAL lets them read meanwhile). On
PostgreSQL those read-only sessions run in autocommit (no BEGIN and COMMIT round trips; READ
COMMITTED gives each statement its own snapshot either way). Pooled connections are pinged only
after being idle a while (``_ping_when_idle``), not at every checkout.

Whatever cannot get the database in time (a locked SQLite file, an exhausted connection pool,
PostgreSQL out of connections) is ``is_busy``; the error handlers answer it 503 SERVICE_BUSY.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

from fastapi import Request
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Dialect,
    MetaData,
    SQLColumnExpression,
    String,
    TypeDecorator,
    bindparam,
    event,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

logger = logging.getLogger(__name__)

# Defaults of the settings DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW, DATABASE_POOL_TIMEOUT
# (seconds a request waits for a pooled connection) and DATABASE_BUSY_TIMEOUT (seconds a SQLite
# writer waits for the write lock). Short waits: under a flood a request is told "busy" quickly
# rather than holding its client for half a minute.
# No overflow: SQLAlchemy closes an overflow connection as soon as it is returned while the pool
# is full, so a load just above the pool's size opened and closed connections all the time
# (about 25 a second with 32 clients on a pool of 10 + 10), each new asyncpg connection paying
# for its connect, its codecs and preparing every statement again. Twenty kept connections give
# the same maximum per worker, and none are closed under load.
DEFAULT_POOL_SIZE = 20
DEFAULT_MAX_OVERFLOW = 0
DEFAULT_POOL_TIMEOUT = 5.0
DEFAULT_BUSY_TIMEOUT = 10.0
# A pooled connection idle this long (seconds) is pinged before it is used again.
PING_AFTER_IDLE = 10.0
_IDLE_SINCE = "mosaic_idle_since"

# Methods whose requests only read: their sessions begin DEFERRED on SQLite (see get_session).
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})
# The connection option that marks a read-only request's session.
_READ_ONLY = "mosaic_read_only"


def utcnow() -> datetime:
    return datetime.now(UTC)


def contains(
    expression: SQLColumnExpression[str], text: str, *, planned_for_value: bool = False
) -> ColumnElement[bool]:
    """``expression LIKE '%text%'`` with ``text``'s own ``%``, ``_`` and ``\\`` taken literally
    (casing is the caller's: compare lower-cased text with a lower-cased column).

    ``planned_for_value``: the pattern is written into the statement's text (escaped by the
    dialect, as a literal) rather than sent as a parameter, so PostgreSQL plans the statement
    for this very pattern. A prepared statement run often enough gets a generic plan, which
    guesses the selectivity of LIKE: for a term too short to have a trigram that plan scans the
    whole trigram index (3x a sequential scan). Only the search's statements pay for planning;
    every other statement keeps its prepared plan."""
    pattern = bindparam(None, like_pattern(text), type_=String(), literal_execute=planned_for_value)
    return expression.like(pattern, escape="\\")


def like_pattern(text: str) -> str:
    """The LIKE pattern (escape character ``\\``) matching values that contain ``text``."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def today() -> date:
    """Today's date in UTC: release dates and date ranges are compared with it."""
    return datetime.now(UTC).date()


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on both databases: SQLite keeps no offset, so values read back
    are marked UTC (everything is written in UTC), and the API always answers with ``+00:00``."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC timestamp column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base of every model; constraint names follow NAMING_CONVENTION."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class UUIDPrimaryKey:
    """Mixin: a UUID primary key generated in Python (same on both databases)."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class Timestamps:
    """Mixin: created_at / updated_at in UTC."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# PostgreSQL SQLSTATEs of a database that cannot serve the request now but may soon:
# too_many_connections, cannot_connect_now, lock_not_available, deadlock_detected,
# serialization_failure.
BUSY_SQLSTATES = frozenset({"53300", "57P03", "55P03", "40P01", "40001"})
# SQLite's SQLITE_BUSY and SQLITE_LOCKED, as the driver words them.
SQLITE_BUSY_MESSAGES = ("database is locked", "database table is locked")


def _sqlstate(error: sa_exc.DBAPIError) -> str:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code if isinstance(code, str) else ""


def is_busy(error: BaseException) -> bool:
    """The database could not be had in time: a pool timeout, PostgreSQL out of connections
    or a lock, SQLite's write lock held past the busy timeout."""
    if isinstance(error, sa_exc.TimeoutError):
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if _sqlstate(error) in BUSY_SQLSTATES:
        return True
    message = str(error.orig)
    return isinstance(error, sa_exc.OperationalError) and any(
        busy in message for busy in SQLITE_BUSY_MESSAGES
    )


def is_invalid_value(error: BaseException) -> bool:
    """The database refused a value as data (SQLSTATE class 22: a NUL or a byte sequence that
    is not UTF-8 in text, a number out of range); asyncpg reports these as plain DBAPIError."""
    if isinstance(error, sa_exc.DataError):
        return True
    return isinstance(error, sa_exc.DBAPIError) and _sqlstate(error).startswith("22")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout: float) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy emit BEGIN itself: pysqlite's implicit transactions break savepoints.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads first and
        # writes later fails at once (SQLITE_BUSY_SNAPSHOT) when another connection wrote in
        # between, instead of waiting. SQLite thus serialises transactions, which suits the
        # embedded default; routes that stream large bodies do not hold a transaction meanwhile.
        # A read-only request's session begins DEFERRED: it takes no write lock, so reads never
        # queue behind writers (under WAL a reader sees the last commit and blocks nobody).
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> AsyncEngine:
    """Build the async engine for DATABASE_URL; for SQLite, create the file's folder first.

    ``pool_timeout``: seconds a request waits for a pooled connection before it is told busy;
    ``busy_timeout`` (SQLite): seconds a writer waits for the write lock."""
    pool = {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(url, echo=echo, **pool)
        else:
            engine = create_async_engine(url, echo=echo)
        _configure_sqlite(engine, busy_timeout=busy_timeout)
        return engine
    engine = create_async_engine(url, echo=echo, **pool)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine, *, after: float = PING_AFTER_IDLE) -> None:
    """Check a pooled connection before use only when it has been idle for ``after`` seconds.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: with asyncpg that is three round
    trips (BEGIN, an empty query, ROLLBACK) before each request's first statement. A connection
    in steady use has just proved itself; one idle long enough to have been cut (a server
    restart, an idle timeout on the way) is pinged, and replaced if the ping fails. A connection
    that breaks while in use fails its statement, and SQLAlchemy then discards the pool's
    other connections of that generation."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise sa_exc.DisconnectionError(f"stale pooled connection: {error}") from error


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT = "after_commit"


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once this request's transaction has committed, never if it rolls back.

    For effects outside the database that must not happen unless the rows are gone too, such as
    removing a deleted study's stored objects.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


async def run_after_commit(session: AsyncSession) -> None:
    callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT, [])
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            # The transaction is committed; a failed clean-up is logged, not reported as failure.
            logger.exception("after-commit callback failed")


async def writes_on_read(request: Request) -> None:
    """Declared as ``dependencies=[Depends(writes_on_read)]`` on a GET or HEAD route that may
    write (route dependencies run before the session is opened): its session then takes the
    write lock up front like any other request's."""
    request.state.writes_on_read = True


def read_only(request: Request) -> bool:
    """Whether the request's session only reads: a GET or HEAD not marked writes_on_read."""
    return request.method in READ_ONLY_METHODS and not getattr(
        request.state, "writes_on_read", False
    )


def autocommit_options(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Connection options for a session whose statements may each commit on their own: on
    PostgreSQL, autocommit (no BEGIN and COMMIT round trips). Nothing elsewhere, nor for a
    session bound to a connection, which joins that connection's transaction."""
    bind = sessionmaker.kw.get("bind")
    if isinstance(bind, AsyncEngine) and bind.dialect.name == "postgresql":
        return {"isolation_level": "AUTOCOMMIT"}
    return {}


def read_only_options(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """The connection options of a read-only request's session. On PostgreSQL it runs in
    autocommit: each statement reads the last committed state, as it would in a READ COMMITTED
    transaction, without the BEGIN and COMMIT round trips. SQLite begins it DEFERRED."""
    return {_READ_ONLY: True, **autocommit_options(sessionmaker)}


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request, committed when the route has returned.
    A read-only request's session begins DEFERRED on SQLite (no write lock) and runs in
    autocommit on PostgreSQL (read_only_options)."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    options = read_only_options(sessionmaker) if read_only(request) else {}
    async with sessionmaker(execution_options=options) as session:
        try:
            yield session
        except BaseException:
            session.info.pop(_AFTER_COMMIT, None)
            await session.rollback()
            raise
        await session.commit()
        await run_after_commit(session)


def include_in_schema_comparison(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any, *, dialect: str
) -> bool:
    """Alembic's ``include_object``: leave out objects that exist on another database only
    (marked ``info={"dialect": ...}``, like the PostgreSQL trigram index)."""
    wanted = getattr(obj, "info", {}).get("dialect") if obj is not None else None
    if wanted is None and compare_to is not None:
        wanted = getattr(compare_to, "info", {}).get("dialect")
    return wanted is None or wanted == dialect


def upgrade_database(url: str, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision``. Blocking: call it from a thread or a CLI."""
    from alembic import command
    from alembic.config import Config

    root = Path(__file__).resolve().parent.parent
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "alembic"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    command.upgrade(config, revision)
