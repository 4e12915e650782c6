"""Fixtures of the auth tests: an app whose auth state uses cheap argon2 parameters, short
rate-limit windows where a test asks for them, Redis when TEST_REDIS_URL is set, and scratch
databases for what must run outside the per-test transaction (start-up, CLI, several processes)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.auth.config import AuthConfig
from src.auth.state import AuthState
from src.config import Settings
from tests.apps import app_for
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
        _env_file=None,
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
    app = app_for(settings)
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
def scratch_url(scratch_database_url: str) -> str:
    """An empty database of the suite's kind, outside the per-test transaction; dropped after."""
    return scratch_database_url
