"""What each request costs the database: read-only requests without a transaction on PostgreSQL,
pooled connections pinged only after being idle, the study search planned for its term, and a
login attempt's rate-limit counters counted in one statement.

These run against an app on a real engine (``scratch_database_url``), not the suite's shared
connection, since they are about the engine's connections and transactions themselves.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from src import database
from src.app import create_app
from src.auth.exceptions import TooManyAttemptsError
from src.auth.models import User
from src.auth.ratelimit import DatabaseStorage, attempts
from src.config import Settings
from src.database import (
    create_engine,
    create_sessionmaker,
    get_session,
    is_sqlite,
    upgrade_database,
)
from tests.factories import auth_headers, create_user
from tests.lifespan import running

API = "/api/v1/studies"


@pytest.fixture
async def migrated_url(scratch_database_url: str) -> str:
    import anyio

    await anyio.to_thread.run_sync(upgrade_database, scratch_database_url)
    return scratch_database_url


@pytest.fixture
async def real_app(migrated_url: str, tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=migrated_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )
    app = create_app(settings)
    async with running(app):
        yield app


async def _user(app: FastAPI) -> tuple[User, dict[str, str]]:
    sessionmaker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    async with sessionmaker() as session:
        user = await create_user(session)
        await session.commit()
    return user, auth_headers(app.state.settings, user)


def _request(app: FastAPI, method: str) -> Request:
    return Request({"type": "http", "method": method, "app": app, "headers": [], "state": {}})


async def _transaction_ids(app: FastAPI, method: str) -> tuple[Any, Any]:
    """``txid_current()`` twice in the session a request with ``method`` gets."""
    sessions = get_session(_request(app, method))
    session = await anext(sessions)
    first = await session.scalar(text("SELECT txid_current()"))
    second = await session.scalar(text("SELECT txid_current()"))
    with pytest.raises(StopAsyncIteration):
        await anext(sessions)
    return first, second


class TestReadOnlySessions:
    async def test_reads_run_without_a_transaction_on_postgresql(self, real_app: FastAPI) -> None:
        if is_sqlite(real_app.state.settings.database_url):
            # SQLite: a read-only session still begins (DEFERRED, see database.py).
            assert database.read_only_options(real_app.state.sessionmaker) == {
                "mosaic_read_only": True
            }
            return
        # Autocommit: each statement is a transaction of its own.
        first, second = await _transaction_ids(real_app, "GET")
        assert first != second
        # Any other request: one transaction for the whole request.
        first, second = await _transaction_ids(real_app, "POST")
        assert first == second

    async def test_a_list_reads_with_two_statements_and_no_transaction(
        self, real_app: FastAPI
    ) -> None:
        _, headers = await _user(real_app)
        transport = httpx.ASGITransport(app=real_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            created = await client.post(API, headers=headers, json={"title": "One"})
            assert created.status_code == 201, created.text
            statements, page = await _statements_of(real_app, client, headers, {})
            # The caller, then the page with its total: nothing else (no ping, no BEGIN on
            # PostgreSQL, no statement of its own for the total).
            assert (page["total"], len(page["items"])) == (1, 1)
            assert len(statements) == 2, statements
            # A page past the end has no row to carry the total: it is asked for on its own.
            statements, page = await _statements_of(real_app, client, headers, {"page": 2})
            assert (page["total"], page["items"]) == (1, [])
            assert len(statements) == 3, statements


async def _statements_of(
    app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str], params: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    """The statements a study list ran (BEGIN and PRAGMA aside), and the page it answered."""
    statements: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = await client.get(API, headers=headers, params=params)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200, response.text
    data = [s for s in statements if not s.lstrip().upper().startswith(("BEGIN", "PRAGMA"))]
    page: dict[str, Any] = response.json()
    return data, page


class TestIdleConnectionsArePinged:
    async def test_a_connection_cut_while_idle_is_replaced_before_use(
        self, migrated_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine = create_engine(migrated_url)
        admin = create_engine(migrated_url)
        try:
            if is_sqlite(migrated_url):
                # No server to lose the connection: the file is opened at each connect.
                async with engine.connect() as connection:
                    assert await connection.scalar(text("SELECT 1")) == 1
                return
            async with engine.connect() as connection:
                pid = await connection.scalar(text("SELECT pg_backend_pid()"))
            async with admin.connect() as other:
                await other.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            # Idle for longer than PING_AFTER_IDLE: the checkout pings, fails, and reconnects.
            later = time.monotonic() + database.PING_AFTER_IDLE + 1
            monkeypatch.setattr("src.database.time.monotonic", lambda: later)
            async with engine.connect() as connection:
                assert await connection.scalar(text("SELECT pg_backend_pid()")) != pid
        finally:
            await engine.dispose()
            await admin.dispose()

    async def test_a_connection_in_steady_use_is_not_pinged(self, migrated_url: str) -> None:
        engine = create_engine(migrated_url)
        statements: list[str] = []

        def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
            statements.append(statement)

        try:
            async with engine.connect() as connection:
                await connection.scalar(text("SELECT 1"))
            event.listen(engine.sync_engine, "before_cursor_execute", record)
            async with engine.connect() as connection:
                await connection.scalar(text("SELECT 2"))
        finally:
            await engine.dispose()
        assert [s for s in statements if not s.startswith(("BEGIN", "PRAGMA"))] == ["SELECT 2"]


class TestSearchPlans:
    async def test_the_search_term_is_written_into_the_statement(self, real_app: FastAPI) -> None:
        _, headers = await _user(real_app)
        statements: list[tuple[str, Any]] = []
        engine = real_app.state.engine.sync_engine

        def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
            statements.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", record)
        try:
            transport = httpx.ASGITransport(app=real_app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                searched = await client.get(API, headers=headers, params={"q": "Ch'_x"})
                searches = list(statements)
                statements.clear()
                listed = await client.get(API, headers=headers)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert searched.status_code == 200
        assert listed.status_code == 200
        like = [(s, p) for s, p in searches if "LIKE" in s]
        # The count and the page: both planned for the term, which no parameter carries; the
        # quote is doubled and LIKE's own characters escaped.
        assert len(like) == 2
        for statement, parameters in like:
            assert "'%ch''\\_x%'" in statement
            assert not any("ch'" in str(value) for value in _values(parameters))
        assert not [s for s, _ in statements if "LIKE" in s]

    async def test_no_connection_forces_custom_plans(self, real_app: FastAPI) -> None:
        if is_sqlite(real_app.state.settings.database_url):
            return  # SQLite has no plan cache setting
        async with real_app.state.sessionmaker() as session:
            assert await session.scalar(text("SHOW plan_cache_mode")) == "auto"

    async def test_searches_find_what_they_did(self, real_app: FastAPI) -> None:
        _, headers = await _user(real_app)
        transport = httpx.ASGITransport(app=real_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for title in ("Chromatin 50% of cells", "Liver_atlas", "O'Brien study"):
                created = await client.post(API, headers=headers, json={"title": title})
                assert created.status_code == 201, created.text
            for term, titles in (
                ("ch", ["Chromatin 50% of cells"]),
                ("50%", ["Chromatin 50% of cells"]),
                ("r_a", ["Liver_atlas"]),
                ("o'b", ["O'Brien study"]),
                ("%", ["Chromatin 50% of cells"]),
            ):
                for _ in range(7):  # past the runs after which a prepared plan goes generic
                    found = await client.get(API, headers=headers, params={"q": term})
                    assert [s["title"] for s in found.json()["items"]] == titles, term


def _values(parameters: Any) -> list[Any]:
    if isinstance(parameters, dict):
        return list(parameters.values())
    if isinstance(parameters, list | tuple):
        return list(parameters)
    return [parameters]


class TestRateLimitCounting:
    @pytest.fixture
    def storage(
        self, sessionmaker: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
    ) -> DatabaseStorage:
        # No expired-counter clean-up in these counts.
        monkeypatch.setattr("src.auth.ratelimit.CLEANUP_ONE_IN", 10**9)
        return DatabaseStorage(sessionmaker)

    async def test_an_attempt_is_one_statement_for_both_counters(
        self, storage: DatabaseStorage, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        statements: list[str] = []
        bind = sessionmaker.kw["bind"].sync_engine

        def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
            if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "BEGIN")):
                statements.append(statement)

        login = attempts(
            storage, namespace="login", client="10.0.0.1", per_account="5/minute",
            per_client="100/minute",
        )  # fmt: skip
        event.listen(bind, "before_cursor_execute", record)
        try:
            await login.consume("a@example.org")
            consumed = list(statements)
            statements.clear()
            await login.refund()
        finally:
            event.remove(bind, "before_cursor_execute", record)
        assert len(consumed) == 1
        assert consumed[0].lstrip().upper().startswith("INSERT")
        assert len(statements) == 1
        assert statements[0].lstrip().upper().startswith("INSERT")

    async def test_counts_per_account_and_per_client(self, storage: DatabaseStorage) -> None:
        def login(client: str) -> Any:
            return attempts(
                storage, namespace="login", client=client, per_account="2/minute",
                per_client="3/minute",
            )  # fmt: skip

        await login("10.0.0.1").consume("a@example.org")
        await login("10.0.0.1").consume("A@example.org")  # the same account, any casing
        with pytest.raises(TooManyAttemptsError) as refused:
            await login("10.0.0.1").consume("a@example.org")
        assert 0 < refused.value.retry_after <= 60
        # Another client may still try that account (the account limit is per client).
        await login("10.0.0.2").consume("a@example.org")
        # The first client's own limit: its fourth attempt, whatever the account.
        with pytest.raises(TooManyAttemptsError):
            await login("10.0.0.1").consume("b@example.org")

    async def test_a_refund_gives_back_both_counters(self, storage: DatabaseStorage) -> None:
        for _ in range(5):
            login = attempts(
                storage, namespace="login", client="10.0.0.3", per_account="1/minute",
                per_client="1/minute",
            )  # fmt: skip
            await login.consume("c@example.org")  # refused at the second if not given back
            await login.refund()

    async def test_login_is_refused_with_retry_after_at_the_limit(
        self, app: FastAPI, client: httpx.AsyncClient, owner: User
    ) -> None:
        limit = app.state.auth.config.login_rate_limit  # "5/15minutes"
        allowed = int(limit.split("/")[0])
        for _ in range(allowed):
            wrong = await client.post(
                "/api/v1/auth/token", data={"username": owner.email, "password": "wrong-pass-1"}
            )
            assert wrong.status_code == 401, wrong.text
        refused = await client.post(
            "/api/v1/auth/token", data={"username": owner.email, "password": "wrong-pass-1"}
        )
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "TOO_MANY_ATTEMPTS"
        assert 0 < int(refused.headers["retry-after"]) <= 15 * 60


async def test_create_sessionmaker_binds_an_engine(migrated_url: str) -> None:
    """The read-only and rate-limit sessions rely on the app's sessions being bound to an
    engine (autocommit applies to an engine's connections only)."""
    engine = create_engine(migrated_url)
    try:
        assert create_sessionmaker(engine).kw["bind"] is engine
    finally:
        await engine.dispose()
