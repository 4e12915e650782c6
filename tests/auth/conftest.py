"""Fixtures of the auth tests: an app whose auth state uses cheap argon2 parameters, short
rate-limit windows where a test asks for them, Redis when TEST_REDIS_URL is set, and scratch
databases for what must run outside the per-test transaction (start-up, CLI, several processes)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.app import create_app
from src.auth.config import AuthConfig
from src.auth.state import AuthState
from src.config import Settings
from src.database import create_engine, is_sqlite
from tests.conftest import require
from tests.lifespan import running

CHEAP_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_cost": 8,
    "argon2_parallelism": 1,
}


def make_config(**values: Any) -> AuthConfig:
    """AuthConfig for tests: cheap hashing, plain-http cookies, no .env file."""
    return AuthConfig(
        _env_file=None,  # type: ignore[call-arg]
        **{"cookie_secure": False, **CHEAP_ARGON2, **values},
    )


@pytest.fixture
def auth_overrides() -> dict[str, Any]:
    """AuthConfig values a test module or test overrides (by redefining this fixture)."""
    return {}


@pytest.fixture
def auth_config(auth_overrides: dict[str, Any]) -> AuthConfig:
    return make_config(**auth_overrides)


@pytest.fixture
async def app(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    auth_config: AuthConfig,
) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with running(app):
        app.state.sessionmaker = sessionmaker
        await app.state.auth.close()
        app.state.auth = AuthState.build(settings, auth_config)
        yield app


@pytest.fixture
def client_from(app: FastAPI) -> Callable[[str], httpx.AsyncClient]:
    """A client whose requests come from the given IP address."""

    def make(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://test")

    return make


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", "")
    require(bool(url), "TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/15)")
    return url


async def flush_redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture
async def scratch_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the suite's kind, outside the per-test transaction; dropped after."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base or is_sqlite(base):
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"mosaic_auth_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    await admin.dispose()
