"""Busy is never a 500: a request that cannot get the database in time (SQLite's write lock held
past the busy timeout, an exhausted connection pool) is 503 SERVICE_BUSY with Retry-After in
the envelope, logged as a warning; and on SQLite a request that only reads takes no write lock,
so it is served while a writer holds it.

Each test runs its own app on a database of its own, with real commits and tiny timeouts set
here: no timing is asserted, the lock or the pool is simply held while the requests are made.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from src.app import create_app
from src.auth.models import User
from src.config import Settings
from src.database import is_busy, is_invalid_value, upgrade_database
from tests.factories import auth_headers, create_user
from tests.lifespan import running

API = "/api/v1"
SECRET = "test-secret-key-that-is-long-enough-0123456789"


@asynccontextmanager
async def serving(url: str, data_dir: Path, **settings: Any) -> AsyncIterator[FastAPI]:
    """An app on ``url`` (migrated here), with its own engine and the settings given."""
    await anyio.to_thread.run_sync(upgrade_database, url)
    app = create_app(
        Settings(
            _env_file=None,
            environment="test",
            database_url=url,
            data_dir=data_dir,
            secret_key=SECRET,
            **settings,
        )
    )
    async with running(app):
        yield app


def one_connection(url: str, data_dir: Path) -> AbstractAsyncContextManager[FastAPI]:
    """An app on ``url`` whose pool has one connection and waits for it next to not at all."""
    return serving(
        url, data_dir, database_pool_size=1, database_max_overflow=0, database_pool_timeout=0.01
    )


@asynccontextmanager
async def pool_held(app: FastAPI) -> AsyncIterator[None]:
    """Meanwhile the test holds the app's one connection."""
    engine: AsyncEngine = app.state.engine
    async with engine.connect() as held:
        await held.execute(text("SELECT 1"))
        yield


async def add_user(app: FastAPI) -> User:
    async with app.state.sessionmaker() as session:
        user = await create_user(session)
        await session.commit()
    return user


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def assert_busy(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "2"
    body = response.json()
    assert body["code"] == "SERVICE_BUSY"
    assert body["request_id"] == response.headers["X-Request-ID"]


def assert_logged_as_busy(caplog: pytest.LogCaptureFixture) -> None:
    busy = [r for r in caplog.records if "busy" in r.getMessage()]
    assert busy
    assert all(r.levelno == logging.WARNING for r in busy)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Another connection holds SQLite's write lock (BEGIN IMMEDIATE) meanwhile."""
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


class TestLockedSqlite:
    """The embedded default; its own SQLite file whichever database the suite runs on."""

    async def test_a_writer_is_told_busy_while_readers_are_served(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        database = tmp_path / "busy.db"
        url = f"sqlite+aiosqlite:///{database}"
        async with serving(url, tmp_path / "data", database_busy_timeout=0.01) as app:
            user = await add_user(app)
            headers = auth_headers(app.state.settings, user)
            async with client_of(app) as client:
                with write_lock_held(database), caplog.at_level(logging.WARNING):
                    created = await client.post(
                        f"{API}/studies", json={"title": "Waiting"}, headers=headers
                    )
                    me = await client.get(f"{API}/auth/me", headers=headers)
                    studies = await client.get(f"{API}/studies", headers=headers)
                    public = await client.get(f"{API}/studies")
                assert_busy(created)
                assert me.status_code == 200
                assert studies.status_code == 200
                assert public.status_code == 200
                assert_logged_as_busy(caplog)
                # Once the lock is released, the same write goes through.
                again = await client.post(
                    f"{API}/studies", json={"title": "Waiting"}, headers=headers
                )
                assert again.status_code == 201


class TestExhaustedPool:
    """The suite's database (PostgreSQL or SQLite), with a pool of one connection."""

    async def test_a_request_that_gets_no_connection_is_told_busy(
        self, scratch_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with one_connection(scratch_database_url, tmp_path / "data") as app:
            user = await add_user(app)
            headers = auth_headers(app.state.settings, user)
            async with client_of(app) as client:
                async with pool_held(app):
                    with caplog.at_level(logging.WARNING):
                        read = await client.get(f"{API}/studies")
                        written = await client.post(
                            f"{API}/studies", json={"title": "Crowded"}, headers=headers
                        )
                assert_busy(read)
                assert_busy(written)
                assert_logged_as_busy(caplog)
                assert (await client.get(f"{API}/studies")).status_code == 200


class _DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class TestClassification:
    @pytest.mark.parametrize(
        "error",
        [
            sa_exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached"),
            sa_exc.DBAPIError("SELECT 1", {}, _DriverError("too many clients", "53300")),
            sa_exc.DBAPIError("SELECT 1", {}, _DriverError("deadlock detected", "40P01")),
            sa_exc.OperationalError("BEGIN IMMEDIATE", {}, _DriverError("database is locked")),
        ],
    )
    def test_busy(self, error: Exception) -> None:
        assert is_busy(error)
        assert not is_invalid_value(error)

    @pytest.mark.parametrize(
        "error",
        [
            sa_exc.DBAPIError("SELECT 1", {}, _DriverError("invalid byte sequence", "22021")),
            sa_exc.DataError("SELECT 1", {}, _DriverError("out of range")),
        ],
    )
    def test_invalid_value(self, error: Exception) -> None:
        assert is_invalid_value(error)
        assert not is_busy(error)

    @pytest.mark.parametrize(
        "error",
        [
            sa_exc.IntegrityError("INSERT", {}, _DriverError("duplicate key", "23505")),
            sa_exc.OperationalError("SELECT", {}, _DriverError("no such table: x")),
            ValueError("not a database error"),
        ],
    )
    def test_neither(self, error: Exception) -> None:
        assert not is_busy(error)
        assert not is_invalid_value(error)
