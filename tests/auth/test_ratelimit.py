"""Rate limits of login and register: 429 TOO_MANY_ATTEMPTS with Retry-After, recovery after the
window, state shared between processes; on the database storage, and on Redis when configured."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import anyio
import httpx
import pytest
from fastapi import FastAPI
from limits import parse
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.auth.ratelimit import DatabaseStorage
from src.auth.state import AuthState
from src.config import Settings
from src.database import create_engine, create_sessionmaker, upgrade_database
from tests.auth.conftest import flush_redis, make_config
from tests.auth.helpers import AUTH, assert_error, login, register
from tests.factories import DEFAULT_PASSWORD, create_user


@pytest.fixture(params=["database", "redis"])
async def backend(
    request: pytest.FixtureRequest, app: FastAPI, settings: Settings
) -> AsyncIterator[Callable[..., None]]:
    """Switch the app's auth state to the given limits, on the database or on Redis."""
    redis_url = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        await flush_redis(redis_url)
    built: list[AuthState] = []

    def configure(**limits: str) -> None:
        state = AuthState.build(settings, make_config(redis_url=redis_url, **limits))
        built.append(state)
        app.state.auth = state

    yield configure
    for state in built[:-1]:  # the last one is closed by the app's lifespan
        await state.close()
    if redis_url:
        await flush_redis(redis_url)


class TestLoginLimit:
    async def test_sixth_failure_is_429_even_with_the_right_password(
        self, backend: Callable[..., None], client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        backend()  # the defaults: 5 failed logins per 15 minutes per account and client
        await create_user(session, email="ada@example.org")
        for _ in range(5):
            assert_error(
                await login(client, "ada@example.org", "wrong"), 401, "INVALID_CREDENTIALS"
            )
        refused = await login(client, "ada@example.org")
        assert_error(refused, 429, "TOO_MANY_ATTEMPTS")
        retry_after = int(refused.headers["retry-after"])
        assert 14 * 60 < retry_after <= 15 * 60

    async def test_recovers_after_the_window(
        self, backend: Callable[..., None], client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        backend(login_rate_limit="2/2seconds")
        await create_user(session, email="ada@example.org")
        for _ in range(2):
            assert_error(
                await login(client, "ada@example.org", "wrong"), 401, "INVALID_CREDENTIALS"
            )
        refused = await login(client, "ada@example.org")
        assert_error(refused, 429, "TOO_MANY_ATTEMPTS")
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        await anyio.sleep(2.1)
        assert (await login(client, "ada@example.org")).status_code == 200

    async def test_successful_logins_are_not_counted(
        self, backend: Callable[..., None], client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        backend(login_rate_limit="3/minute")
        await create_user(session, email="ada@example.org")
        for _ in range(2):
            assert_error(
                await login(client, "ada@example.org", "wrong"), 401, "INVALID_CREDENTIALS"
            )
        for _ in range(4):
            assert (await login(client, "ada@example.org")).status_code == 200
        assert_error(await login(client, "ada@example.org", "wrong"), 401, "INVALID_CREDENTIALS")
        assert_error(await login(client, "ada@example.org"), 429, "TOO_MANY_ATTEMPTS")

    async def test_limit_is_per_account_and_client(
        self,
        backend: Callable[..., None],
        client_from: Callable[[str], httpx.AsyncClient],
        session: AsyncSession,
    ) -> None:
        backend(login_rate_limit="2/minute")
        await create_user(session, email="ada@example.org")
        await create_user(session, email="grace@example.org")
        async with client_from("10.0.0.1") as attacker, client_from("10.0.0.2") as ada:
            for _ in range(2):
                await login(attacker, "ada@example.org", "wrong")
            assert_error(await login(attacker, "ada@example.org"), 429, "TOO_MANY_ATTEMPTS")
            # The same account from another client, and another account from this client, work.
            assert (await login(ada, "ada@example.org")).status_code == 200
            assert (await login(attacker, "grace@example.org")).status_code == 200

    async def test_failures_per_client_across_accounts_are_limited(
        self,
        backend: Callable[..., None],
        client_from: Callable[[str], httpx.AsyncClient],
        session: AsyncSession,
    ) -> None:
        backend(login_ip_rate_limit="3/minute")
        await create_user(session, email="ada@example.org")
        async with client_from("10.0.0.9") as stuffer, client_from("10.0.0.10") as other:
            for n in range(3):
                await login(stuffer, f"victim{n}@example.org", "wrong")
            assert_error(await login(stuffer, "ada@example.org"), 429, "TOO_MANY_ATTEMPTS")
            assert (await login(other, "ada@example.org")).status_code == 200

    async def test_token_form_shares_the_login_limit(
        self, backend: Callable[..., None], client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        backend(login_rate_limit="1/minute")
        await create_user(session, email="ada@example.org")
        await login(client, "ada@example.org", "wrong")
        response = await client.post(
            f"{AUTH}/token", data={"username": "ada@example.org", "password": DEFAULT_PASSWORD}
        )
        assert_error(response, 429, "TOO_MANY_ATTEMPTS")
        assert "retry-after" in response.headers


class TestRegisterLimit:
    async def test_registrations_per_client_are_limited(
        self,
        backend: Callable[..., None],
        client_from: Callable[[str], httpx.AsyncClient],
    ) -> None:
        backend(register_rate_limit="2/minute")
        async with client_from("10.0.1.1") as bot, client_from("10.0.1.2") as person:
            assert (await register(bot, email="a@example.org")).status_code == 201
            assert (await register(bot, email="b@example.org")).status_code == 201
            refused = await register(bot, email="c@example.org")
            assert_error(refused, 429, "TOO_MANY_ATTEMPTS")
            assert int(refused.headers["retry-after"]) > 0
            assert (await register(person, email="c@example.org")).status_code == 201

    async def test_registrations_per_email_are_limited(
        self,
        backend: Callable[..., None],
        client_from: Callable[[str], httpx.AsyncClient],
    ) -> None:
        backend(register_rate_limit="2/minute")
        for n in range(2):
            async with client_from(f"10.0.2.{n}") as client:
                await register(client, email="same@example.org")
        async with client_from("10.0.2.9") as client:
            assert_error(await register(client, email="same@example.org"), 429, "TOO_MANY_ATTEMPTS")


class TestDatabaseStorage:
    async def test_counts_expires_and_clears(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        storage = DatabaseStorage(sessionmaker)
        assert await storage.get("k") == 0
        assert await storage.incr("k", 1) == 1
        assert await storage.incr("k", 1) == 2
        assert await storage.incr("k", 1, amount=-1) == 1
        assert await storage.get("k") == 1
        expiry = await storage.get_expiry("k")
        assert time.time() < expiry <= time.time() + 1
        await anyio.sleep(1.05)
        assert await storage.get("k") == 0
        assert await storage.incr("k", 60) == 1  # a new window after expiry
        await storage.clear("k")
        assert await storage.get("k") == 0
        await storage.incr("other", 60)
        assert await storage.reset() == 1
        assert await storage.check() is True

    async def test_works_with_the_limits_strategy(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        limiter = FixedWindowRateLimiter(DatabaseStorage(sessionmaker))
        item = parse("2/minute")
        assert await limiter.hit(item, "x")
        assert await limiter.hit(item, "x")
        assert not await limiter.hit(item, "x")
        assert await limiter.hit(item, "y")
        stats = await limiter.get_window_stats(item, "x")
        assert stats.remaining == 0
        assert 55 < stats.reset_time - time.time() <= 60

    async def test_state_is_shared_between_processes(self, scratch_url: str) -> None:
        """Two engines (as two worker processes have) count against the same counter."""
        await anyio.to_thread.run_sync(upgrade_database, scratch_url)
        engines = [create_engine(scratch_url), create_engine(scratch_url)]
        try:
            storages: list[Storage] = [DatabaseStorage(create_sessionmaker(e)) for e in engines]
            limiters = [FixedWindowRateLimiter(storage) for storage in storages]
            item = parse("3/minute")
            results = [await limiters[n % 2].hit(item, "shared") for n in range(4)]
            assert results == [True, True, True, False]
            assert await storages[1].get(item.key_for("shared")) == 4
        finally:
            for engine in engines:
                await engine.dispose()
