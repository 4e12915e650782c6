"""Password hashing under a crowd: bounded by a limiter (503 SERVICE_BUSY past its queue), never
run while a database connection or transaction is held, with OWASP's argon2id cost by default and
old hashes upgraded at login. Hashing is held still by a gate (tests/auth/gates.py), not slowed by
sleeps, so every test here is deterministic."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import QueuePool

from src.app import create_app
from src.auth import state as auth_state
from src.auth.config import AuthConfig
from src.auth.models import User
from src.auth.passwords import (
    HashingLimiter,
    PasswordHasher,
    default_concurrency,
    return_large_blocks_to_system,
)
from src.auth.state import AuthState
from src.config import Settings
from src.database import upgrade_database
from src.exceptions import ServiceBusyError
from tests.auth.conftest import make_config
from tests.auth.gates import GatedAlgorithm, gated_hasher, until
from tests.auth.helpers import AUTH, assert_error, bearer, login, register
from tests.auth.test_startup import scratch_settings
from tests.factories import DEFAULT_PASSWORD, auth_headers, create_user, password_hash
from tests.lifespan import running


class Blocker:
    """Functions for the limiter's worker threads that wait until ``release``."""

    def __init__(self) -> None:
        self._released = threading.Event()

    def wait(self) -> str:
        self._released.wait(60)
        return "done"

    def release(self) -> None:
        self._released.set()


def fail() -> str:
    raise ValueError("the hash failed")


class TestHashingLimiter:
    async def test_runs_at_most_its_slots_and_refuses_past_the_queue(self) -> None:
        limiter = HashingLimiter(concurrency=2, queue=1)
        blocker = Blocker()
        try:
            tasks = [asyncio.create_task(limiter.run(blocker.wait)) for _ in range(3)]
            await until(lambda: limiter.running == 2 and limiter.admitted == 3)
            with pytest.raises(ServiceBusyError) as refused:
                await limiter.run(blocker.wait)
            assert refused.value.headers == {"Retry-After": "2"}
            assert limiter.running == 2
        finally:
            blocker.release()
        assert await asyncio.gather(*tasks) == ["done"] * 3
        assert (limiter.admitted, limiter.running) == (0, 0)

    async def test_a_failed_hash_gives_its_slot_back(self) -> None:
        limiter = HashingLimiter(concurrency=1, queue=0)
        with pytest.raises(ValueError, match="the hash failed"):
            await limiter.run(fail)
        assert (limiter.admitted, limiter.running) == (0, 0)
        assert await limiter.run(str, 42) == "42"

    async def test_a_cancelled_waiter_gives_its_place_back(self) -> None:
        limiter = HashingLimiter(concurrency=1, queue=1)
        blocker = Blocker()
        try:
            running = asyncio.create_task(limiter.run(blocker.wait))
            await until(lambda: limiter.running == 1)
            waiting = asyncio.create_task(limiter.run(blocker.wait))
            await until(lambda: limiter.admitted == 2)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert limiter.admitted == 1
            queued = asyncio.create_task(limiter.run(str, "queued"))  # its place is free again
            await until(lambda: limiter.admitted == 2)
        finally:
            blocker.release()
        assert await running == "done"
        assert await queued == "queued"
        assert limiter.admitted == 0

    async def test_a_cancelled_caller_keeps_its_slot_until_its_thread_ends(self) -> None:
        """The CPU bound holds: a hash whose caller went away still runs in its thread, and
        keeps its place until it is done."""
        limiter = HashingLimiter(concurrency=1, queue=0)
        blocker = Blocker()
        try:
            caller = asyncio.create_task(limiter.run(blocker.wait))
            await until(lambda: limiter.running == 1)
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            assert (limiter.admitted, limiter.running) == (1, 1)
            with pytest.raises(ServiceBusyError):
                await limiter.run(str, "too soon")
        finally:
            blocker.release()
        await until(lambda: limiter.admitted == 0)
        assert limiter.running == 0
        assert await limiter.run(str, "now") == "now"

    async def test_hash_verify_and_the_dummy_hash_all_go_through_it(self) -> None:
        hasher, gate = gated_hasher(concurrency=1, queue=0)
        stored = await hasher.hash("a-long-password")
        gate.close()
        try:
            held = asyncio.create_task(hasher.verify("a-long-password", stored))
            await until(lambda: gate.held == 1)
            for refused in (
                hasher.hash("another-password"),
                hasher.verify("a-long-password", stored),
                hasher.dummy_hash(),
            ):
                with pytest.raises(ServiceBusyError):
                    await refused
        finally:
            gate.open()
        assert await held == (True, None)

    def test_needs_a_slot(self) -> None:
        with pytest.raises(ValueError, match="slot"):
            HashingLimiter(concurrency=0, queue=4)


class TestHashingSettings:
    async def test_argon2id_defaults_are_owasps_first_recommendation(
        self, settings: Settings
    ) -> None:
        config = AuthConfig(_env_file=None)
        assert (config.argon2_memory_cost, config.argon2_time_cost) == (19456, 2)
        assert config.argon2_parallelism == 1
        state = AuthState.build(settings, config)
        stored = await state.passwords.hash("a-long-password")
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert await state.passwords.verify("a-long-password", stored) == (True, None)

    def test_limiter_is_sized_to_the_cpus_by_default(self, settings: Settings) -> None:
        config = AuthConfig(_env_file=None)
        assert config.password_hash_concurrency is None
        limiter = AuthState.build(settings, config).passwords.limiter
        assert limiter.concurrency == default_concurrency() >= 1
        assert limiter.queue == config.password_hash_queue == 32

    def test_limiter_is_configurable(
        self, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PASSWORD_HASH_CONCURRENCY", "3")
        monkeypatch.setenv("PASSWORD_HASH_QUEUE", "0")
        limiter = AuthState.build(settings, AuthConfig(_env_file=None)).passwords.limiter
        assert (limiter.concurrency, limiter.queue) == (3, 0)

    def test_an_empty_concurrency_means_the_cpus(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PASSWORD_HASH_CONCURRENCY", "")  # as .env.sample leaves it
        assert AuthConfig(_env_file=None).password_hash_concurrency is None

    @pytest.mark.parametrize(
        "values",
        [
            {"password_hash_concurrency": 0},
            {"password_hash_queue": -1},
            {"password_hash_concurrency": "many"},
        ],
    )
    def test_bad_limiter_settings_refuse_to_start(self, values: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match="password_hash"):
            AuthConfig(_env_file=None, **values)


# Hashes run in a fresh interpreter with the default cost; its resident memory is read before and
# after. Without a fixed mmap threshold each hashing thread kept its 19 MiB buffer (RSS +38 MiB).
HASHING_MEMORY_SCRIPT = """
import asyncio
from src.auth.passwords import PasswordHasher

def resident_kib():
    with open("/proc/self/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0])

async def main():
    hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, concurrency=2, queue=4)
    await hasher.hash("warm-up-password")
    before = resident_kib()
    for _ in range(4):
        await asyncio.gather(*(hasher.hash("a-long-password") for _ in range(2)))
    print(resident_kib() - before)

asyncio.run(main())
"""


@pytest.mark.skipif(not return_large_blocks_to_system(), reason="glibc only")
def test_hash_buffers_go_back_to_the_system_after_each_hash() -> None:
    result = subprocess.run(
        [sys.executable, "-c", HASHING_MEMORY_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    grown_kib = int(result.stdout.strip().splitlines()[-1])
    assert grown_kib < 8 * 1024, f"resident memory grew by {grown_kib} KiB over eight hashes"


class TestUpgradeAtLogin:
    async def test_a_hash_with_the_old_default_cost_is_replaced_at_login(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
    ) -> None:
        old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)  # the old defaults
        user = await create_user(session, email="ada@example.org")
        user.password_hash = await old.hash(DEFAULT_PASSWORD)
        await session.flush()
        app.state.auth = AuthState.build(settings, AuthConfig(_env_file=None, cookie_secure=False))
        assert (await login(client, "ada@example.org")).status_code == 200
        await session.refresh(user)
        upgraded = user.password_hash
        assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert await app.state.auth.passwords.verify(DEFAULT_PASSWORD, upgraded) == (True, None)
        assert (await login(client, "ada@example.org")).status_code == 200
        await session.refresh(user)
        assert user.password_hash == upgraded  # current already: left alone

    async def test_a_wrong_password_upgrades_nothing(
        self, app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session, email="ada@example.org")
        old_hash = user.password_hash
        app.state.auth.passwords = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
        assert_error(
            await login(client, "ada@example.org", "wrong-password"), 401, "INVALID_CREDENTIALS"
        )
        await session.refresh(user)
        assert user.password_hash == old_hash

    async def test_a_password_changed_during_the_check_is_not_overwritten(
        self, app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        """The login verified the old password; the account's password changed meanwhile: the
        login fails and the upgrade of the old hash does not replace the new one."""
        user = await create_user(session, email="ada@example.org")
        # Another cost than the user's hash: a successful check would upgrade it.
        app.state.auth.passwords, gate = gated_hasher(concurrency=1, queue=0, memory_cost=16)
        changed = await password_hash("a-new-long-password")
        gate.close()
        try:
            attempt = asyncio.create_task(login(client, "ada@example.org"))
            await until(lambda: gate.held == 1)
            await session.execute(
                update(User).where(User.id == user.id).values(password_hash=changed)
            )
        finally:
            gate.open()
        assert_error(await attempt, 401, "INVALID_CREDENTIALS")
        await session.refresh(user)
        assert user.password_hash == changed


@dataclass
class Deployed:
    """An app on a database of its own, as a deployed process runs: every session has its own
    connection (no shared test connection), so holding one shows."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    gate: GatedAlgorithm

    @property
    def engine(self) -> AsyncEngine:
        engine: AsyncEngine = self.app.state.engine
        return engine

    @property
    def passwords(self) -> PasswordHasher:
        passwords: PasswordHasher = self.app.state.auth.passwords
        return passwords

    async def add_user(self, email: str) -> User:
        async with self.app.state.sessionmaker() as session:
            user = await create_user(session, email=email)
            await session.commit()
        return user

    async def stored(self, email: str) -> User | None:
        async with self.app.state.sessionmaker() as session:
            found: User | None = await session.scalar(select(User).where(User.email == email))
        return found

    def headers(self, user: User) -> dict[str, str]:
        return auth_headers(self.settings, user)


@pytest.fixture
def hasher_size() -> tuple[int, int]:
    """(slots, queue) of the deployed app's hasher; a test overrides it by parametrising."""
    return 2, 3


@pytest.fixture
async def deployed(
    scratch_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hasher_size: tuple[int, int],
) -> AsyncIterator[Deployed]:
    # No background sweeps: the tests count the connections checked out.
    monkeypatch.setenv("TUS_CLEANUP_INTERVAL_SECONDS", "0")
    await anyio.to_thread.run_sync(upgrade_database, scratch_url)
    settings = scratch_settings(scratch_url, tmp_path)
    app = create_app(settings)
    async with running(app):
        await app.state.auth.close()
        app.state.auth = AuthState.build(settings, make_config())
        hasher, gate = gated_hasher(concurrency=hasher_size[0], queue=hasher_size[1])
        app.state.auth.passwords = hasher
        await hasher.dummy_hash()  # made before a test closes the gate
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield Deployed(app=app, client=client, settings=settings, gate=gate)
        finally:
            gate.open()


async def post_token(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(f"{AUTH}/token", data={"username": email, "password": password})


async def writes_go_on(deployed: Deployed, user: User) -> None:
    """No connection is checked out, and another request writes (on SQLite: takes the lock)."""
    assert cast(QueuePool, deployed.engine.pool).checkedout() == 0
    renamed = await deployed.client.patch(
        f"{AUTH}/me", json={"full_name": "Still Writing"}, headers=deployed.headers(user)
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["full_name"] == "Still Writing"


class TestNoConnectionWhileHashing:
    """While a hash is held in the hasher, no connection is checked out, and on SQLite another
    request can write (the write lock is not held)."""

    @pytest.mark.parametrize("route", ["login", "token"])
    async def test_login(self, deployed: Deployed, route: str) -> None:
        await deployed.add_user("ada@example.org")
        grace = await deployed.add_user("grace@example.org")
        send = login if route == "login" else post_token
        deployed.gate.close()
        attempt = asyncio.create_task(send(deployed.client, "ada@example.org", DEFAULT_PASSWORD))
        await until(lambda: deployed.gate.held == 1)
        await writes_go_on(deployed, grace)
        deployed.gate.open()
        response = await attempt
        assert response.status_code == 200, response.text
        me = await deployed.client.get(
            f"{AUTH}/me", headers=bearer(response.json()["access_token"])
        )
        assert me.json()["email"] == "ada@example.org"

    async def test_failed_login(self, deployed: Deployed) -> None:
        grace = await deployed.add_user("grace@example.org")
        deployed.gate.close()
        attempts = [
            asyncio.create_task(login(deployed.client, "grace@example.org", "wrong-password")),
            asyncio.create_task(login(deployed.client, "nobody@example.org", "wrong-password")),
        ]
        await until(lambda: deployed.gate.held == 2)
        await writes_go_on(deployed, grace)
        deployed.gate.open()
        for attempt in attempts:
            assert_error(await attempt, 401, "INVALID_CREDENTIALS")

    async def test_register(self, deployed: Deployed) -> None:
        grace = await deployed.add_user("grace@example.org")
        deployed.gate.close()
        created = asyncio.create_task(register(deployed.client, email="ada@example.org"))
        await until(lambda: deployed.gate.held == 1)
        await writes_go_on(deployed, grace)
        assert await deployed.stored("ada@example.org") is None
        deployed.gate.open()
        assert (await created).status_code == 201
        assert await deployed.stored("ada@example.org") is not None

    async def test_change_password(self, deployed: Deployed) -> None:
        ada = await deployed.add_user("ada@example.org")
        grace = await deployed.add_user("grace@example.org")
        deployed.gate.close()
        changed = asyncio.create_task(
            deployed.client.post(
                f"{AUTH}/me/password",
                json={"current_password": DEFAULT_PASSWORD, "new_password": "a-new-long-password"},
                headers=deployed.headers(ada),
            )
        )
        await until(lambda: deployed.gate.held == 1)  # verifying the current password
        await writes_go_on(deployed, grace)
        await writes_go_on(deployed, ada)
        deployed.gate.open()
        assert (await changed).status_code == 204
        assert (await login(deployed.client, "ada@example.org", "a-new-long-password")).is_success

    async def test_first_admin(self, deployed: Deployed) -> None:
        grace = await deployed.add_user("grace@example.org")
        deployed.gate.close()
        created = asyncio.create_task(
            auth_state.ensure_first_admin(
                deployed.app.state.sessionmaker,
                email="root@example.org",
                password="first-admin-password",
                passwords=deployed.passwords,
            )
        )
        await until(lambda: deployed.gate.held == 1)
        await writes_go_on(deployed, grace)
        deployed.gate.open()
        assert await created is True
        admin = await deployed.stored("root@example.org")
        assert admin is not None
        assert admin.role == "admin"


class TestLoginFlood:
    async def test_past_the_queue_is_503_while_other_requests_answer(
        self, deployed: Deployed
    ) -> None:
        """2 slots and 3 waiting places: of 12 bad logins held in the hasher, 5 are admitted
        and 7 refused at once with 503 + Retry-After; meanwhile /healthz, GET and PATCH /me
        answer; then the admitted ones finish with 401. Never a 500."""
        grace = await deployed.add_user("grace@example.org")
        deployed.gate.close()
        emails = [f"nobody-{n}@example.org" for n in range(9)] + ["grace@example.org"] * 3
        attempts = [
            asyncio.create_task(login(deployed.client, email, "wrong-password")) for email in emails
        ]
        await until(lambda: deployed.gate.held == 2 and sum(task.done() for task in attempts) == 7)
        assert deployed.passwords.limiter.admitted == 5
        refused = [task.result() for task in attempts if task.done()]
        for response in refused:
            assert_error(response, 503, "SERVICE_BUSY")
            assert response.headers["Retry-After"] == "2"
        assert (await deployed.client.get("/healthz")).status_code == 200
        me = await deployed.client.get(f"{AUTH}/me", headers=deployed.headers(grace))
        assert me.status_code == 200
        await writes_go_on(deployed, grace)
        deployed.gate.open()
        statuses = Counter(response.status_code for response in await asyncio.gather(*attempts))
        assert statuses == {503: 7, 401: 5}

    @pytest.mark.parametrize("hasher_size", [(1, 2)])
    async def test_forty_parallel_bad_logins_are_never_a_500(self, deployed: Deployed) -> None:
        """The reported flood, hashing freely: every login is 401 or 503, and the account's
        own requests all answer 200 meanwhile."""
        grace = await deployed.add_user("grace@example.org")
        attempts = [
            asyncio.create_task(login(deployed.client, f"x{n}@example.org", "wrong-password"))
            for n in range(40)
        ]
        reads = [
            asyncio.create_task(deployed.client.get(f"{AUTH}/me", headers=deployed.headers(grace)))
            for _ in range(10)
        ]
        statuses = Counter(response.status_code for response in await asyncio.gather(*attempts))
        assert set(statuses) <= {401, 503}, statuses
        assert [response.status_code for response in await asyncio.gather(*reads)] == [200] * 10

    @pytest.mark.parametrize("hasher_size", [(1, 0)])
    async def test_a_busy_refusal_costs_no_login_attempt(self, deployed: Deployed) -> None:
        """Turned away before the password was checked, a caller is not counted a failed
        attempt: a flood cannot lock a user out of their own account."""
        deployed.app.state.auth.config = make_config(login_rate_limit="2/minute")
        await deployed.add_user("ada@example.org")
        deployed.gate.close()
        held = asyncio.create_task(login(deployed.client, "ada@example.org", "wrong-password"))
        await until(lambda: deployed.gate.held == 1)
        for _ in range(3):
            assert_error(await login(deployed.client, "ada@example.org"), 503, "SERVICE_BUSY")
        deployed.gate.open()
        assert_error(await held, 401, "INVALID_CREDENTIALS")
        assert (await login(deployed.client, "ada@example.org")).status_code == 200

    @pytest.mark.parametrize("hasher_size", [(1, 0)])
    async def test_a_busy_registration_creates_nothing_and_costs_no_attempt(
        self, deployed: Deployed
    ) -> None:
        deployed.app.state.auth.config = make_config(register_rate_limit="1/hour")
        deployed.gate.close()
        held = asyncio.create_task(login(deployed.client, "nobody@example.org", "password-1"))
        await until(lambda: deployed.gate.held == 1)
        assert_error(await register(deployed.client), 503, "SERVICE_BUSY")
        assert await deployed.stored("ada@example.org") is None
        deployed.gate.open()
        await held
        assert (await register(deployed.client)).status_code == 201
