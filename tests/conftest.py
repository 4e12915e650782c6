"""Test fixtures: the schema built once from the migrations, one rolled-back transaction per test.

The database is SQLite in a temporary folder, or a fresh PostgreSQL database next to
TEST_DATABASE_URL's when that is set (the test command runs the suite once each way). Each test's
app shares the test's connection through a session joined into an outer transaction with
savepoints, so a route's commit stays inside the test and everything is rolled back afterwards.
Tests that need real commits or real processes use ``scratch_database_url``.

The suite controls every setting: no settings class reads a ``.env`` file during the tests, and
the variables those classes read are removed from the environment for the session, so neither a
developer's ``.env`` nor their shell changes what the tests see. A test sets what it needs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI
from pydantic_settings import BaseSettings
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from src.auth.models import User
from src.config import Settings
from src.database import create_engine, is_sqlite, upgrade_database
from src.study.models import Study
from tests.apps import app_for
from tests.databases import create_database, drop_database
from tests.factories import auth_headers, create_user
from tests.lifespan import NO_PERIODIC_JOBS, running
from tests.s3server import MotoServer
from tests.study.factories import create_study

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when a tool or service is missing locally; under CI=true fail instead (no skips)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class of the app (each module's config.py), found as subclasses so a new
    one is covered without being listed here."""
    found: list[type[BaseSettings]] = []
    pending = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] == "src":
            found.append(cls)
    return found


def environment_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables ``cls`` reads (upper-cased: the classes are case-insensitive)."""
    prefix = cls.model_config.get("env_prefix") or ""
    names = set()
    for name, field in cls.model_fields.items():
        names.add(f"{prefix}{name}".upper())
        if isinstance(field.validation_alias, str):
            names.add(field.validation_alias.upper())
    return names


@pytest.fixture(scope="session", autouse=True)
def controlled_configuration() -> Iterator[None]:
    """No ``.env`` file and none of the app's variables from the developer's environment (see
    the module docstring); subprocesses started with ``os.environ`` inherit the same."""
    with pytest.MonkeyPatch.context() as patch:
        for cls in settings_classes():
            patch.setitem(cls.model_config, "env_file", None)
            for name in environment_names(cls):
                for present in [key for key in os.environ if key.upper() == name]:
                    patch.delenv(present)
        yield


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto S3 server on a free loopback port, one per test session."""
    server = MotoServer()
    try:
        server.start()
    except RuntimeError as exc:
        require(False, f"moto server unavailable: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mosaic-data")


@pytest.fixture(scope="session")
async def database_url(data_root: Path) -> AsyncIterator[str]:
    """SQLite in the session's temporary folder, or a fresh PostgreSQL database created next to
    TEST_DATABASE_URL's (so parallel runs never share, and that database is left untouched)."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base or is_sqlite(base):
        yield base or f"sqlite+aiosqlite:///{data_root / 'test.db'}"
        return
    name, url = await create_database(base, "mosaic_test")
    yield url
    await drop_database(base, name)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await anyio.to_thread.run_sync(upgrade_database, database_url)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
async def session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


@pytest.fixture
async def scratch_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the kind the suite runs on, for tests that need real commits;
    dropped afterwards."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base or is_sqlite(base):
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"
        return
    name, url = await create_database(base, "mosaic_scratch")
    yield url
    await drop_database(base, name)


@pytest.fixture
def settings(data_root: Path, database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )


@pytest.fixture
async def app(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[FastAPI]:
    app = app_for(settings)
    # Every session here shares the test's one connection, so the lifespan's periodic jobs (tus
    # clean-up every TUS_LEASE_SECONDS, the orphan sweep) would run statements on it in the middle
    # of a request's once a test outlasts their period, as it can on a loaded machine, and break
    # that request's savepoint. The tests of those jobs enter their context themselves.
    app.state.files_config = app.state.files_config.model_copy(update=NO_PERIODIC_JOBS)
    async with running(app):
        app.state.sessionmaker = sessionmaker
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


# The everyday cast: a researcher, their token, and a draft study they own.
@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session)


@pytest.fixture
def headers(settings: Settings, owner: User) -> dict[str, str]:
    return auth_headers(settings, owner)


@pytest.fixture
async def study(session: AsyncSession, owner: User) -> Study:
    return await create_study(session, owner=owner)
