"""The first admin (start-up and CLI), settings validation, and the whole flow on a real database
outside the per-test transaction, as a deployed process runs it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.app import create_app
from src.auth import state as auth_state
from src.auth.cli import create_admin
from src.auth.config import AuthConfig
from src.auth.exceptions import EmailTakenError
from src.auth.models import User, UserRole
from src.auth.state import start_auth
from src.config import Settings
from src.database import create_engine, create_sessionmaker, upgrade_database
from tests.auth.conftest import CHEAP_ARGON2, make_config
from tests.auth.helpers import AUTH, assert_error, bearer, login, register
from tests.lifespan import running


def scratch_settings(url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=url,
        data_dir=tmp_path / "data",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )


async def users(url: str) -> list[User]:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            return list(await session.scalars(select(User).order_by(User.email)))
    finally:
        await engine.dispose()


class TestFirstAdmin:
    async def test_created_once_and_never_overwritten(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        session: AsyncSession,
    ) -> None:
        config = make_config(
            first_admin_email="Root@Example.org", first_admin_password="first-admin-password"
        )
        state = await start_auth(settings, sessionmaker, config)
        admin = await session.scalar(select(User).where(User.email == "root@example.org"))
        assert admin is not None
        assert admin.role is UserRole.ADMIN
        first_hash = admin.password_hash
        assert (await state.passwords.verify("first-admin-password", first_hash))[0]

        changed = make_config(
            first_admin_email="root@example.org", first_admin_password="another-password"
        )
        await start_auth(settings, sessionmaker, changed)
        admins = list(await session.scalars(select(User).where(User.role == UserRole.ADMIN)))
        assert len(admins) == 1
        await session.refresh(admins[0])
        assert admins[0].password_hash == first_hash

    async def test_losing_the_race_to_another_worker_is_not_an_error(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Several workers start at once: the one whose insert loses still starts."""

        async def created_meanwhile(*args: object, **kwargs: object) -> bool:
            raise EmailTakenError

        monkeypatch.setattr(auth_state, "ensure_first_admin", created_meanwhile)
        config = make_config(
            first_admin_email="root@example.org", first_admin_password="first-admin-password"
        )
        state = await start_auth(settings, sessionmaker, config)
        assert state.config.first_admin_email == "root@example.org"

    async def test_nothing_happens_without_the_settings(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        session: AsyncSession,
    ) -> None:
        await start_auth(settings, sessionmaker, make_config())
        assert list(await session.scalars(select(User))) == []

    async def test_created_by_the_app_at_start_up(
        self, scratch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await anyio.to_thread.run_sync(upgrade_database, scratch_url)
        monkeypatch.setenv("FIRST_ADMIN_EMAIL", "root@example.org")
        monkeypatch.setenv("FIRST_ADMIN_PASSWORD", "first-admin-password")
        for name, value in CHEAP_ARGON2.items():
            monkeypatch.setenv(name.upper(), str(value))
        app = create_app(scratch_settings(scratch_url, tmp_path))
        async with running(app):
            pass
        assert [(u.email, u.role) for u in await users(scratch_url)] == [
            ("root@example.org", UserRole.ADMIN)
        ]

    @pytest.mark.parametrize(
        "values",
        [
            {"first_admin_email": "root@example.org"},
            {"first_admin_password": "first-admin-password"},
            {"first_admin_email": "root@example.org", "first_admin_password": "short"},
            {"first_admin_email": "root@example.org", "first_admin_password": "ROOT@example.org"},
            {"first_admin_email": "root@example.org", "first_admin_password": "12345678"},
            {"first_admin_email": "root@example.org", "first_admin_password": "Password123"},
            {"first_admin_email": "root@example.org", "first_admin_password": "x" * 129},
            {"first_admin_email": "root@example.org", "first_admin_password": "!" * 10},
            {"first_admin_email": "root@example.org", "first_admin_password": " " * 10},
            {"first_admin_email": "not-an-email", "first_admin_password": "first-admin-password"},
            {"login_rate_limit": "five per fortnight"},
            {"jwt_algorithm": "none"},
            {"jwt_algorithm": "RS256"},
            {"argon2_memory_cost": 8, "argon2_parallelism": 4},
        ],
    )
    def test_bad_settings_refuse_to_start(self, values: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            AuthConfig(_env_file=None, **values)

    def test_a_weak_first_admin_password_names_the_reason(self) -> None:
        with pytest.raises(ValidationError, match="too_common"):
            AuthConfig(
                _env_file=None,
                first_admin_email="root@example.org",
                first_admin_password="qwerty123",
            )

    def test_defaults_are_the_documented_ones(self, monkeypatch: pytest.MonkeyPatch) -> None:
        config = AuthConfig(_env_file=None)
        assert config.access_token_minutes == 15
        assert config.refresh_token_days == 30
        assert config.jwt_algorithm == "HS256"
        assert config.cookie_secure is True
        assert config.login_rate_limit == "5/15minutes"
        assert config.redis_url is None
        monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
        redis_config = AuthConfig(_env_file=None)
        assert redis_config.async_redis_url == "async+redis://cache:6379/0"


class TestCreateAdminCommand:
    def run(
        self, monkeypatch: pytest.MonkeyPatch, settings: Settings, email: str, stdin: str
    ) -> int:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        for name, value in CHEAP_ARGON2.items():
            monkeypatch.setenv(name.upper(), str(value))
        return create_admin(settings, email=email)

    async def test_creates_an_admin_from_stdin(
        self, scratch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = scratch_settings(scratch_url, tmp_path)
        code = await anyio.to_thread.run_sync(
            self.run, monkeypatch, settings, "Root@Example.org", "a-long-password\n"
        )
        assert code == 0
        [admin] = await users(scratch_url)
        assert (admin.email, admin.role, admin.is_active) == ("root@example.org", "admin", True)
        assert admin.password_hash.startswith("$argon2id$")

    async def test_refuses_an_existing_email_and_bad_input(
        self, scratch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = scratch_settings(scratch_url, tmp_path)
        run = self.run
        assert (
            await anyio.to_thread.run_sync(
                run, monkeypatch, settings, "root@example.org", "a-long-password\n"
            )
            == 0
        )
        assert (
            await anyio.to_thread.run_sync(
                run, monkeypatch, settings, "ROOT@example.org", "another-password\n"
            )
            == 1
        )
        assert (
            await anyio.to_thread.run_sync(run, monkeypatch, settings, "new@example.org", "short\n")
            == 1
        )
        assert (
            await anyio.to_thread.run_sync(
                run, monkeypatch, settings, "not-an-email", "a-long-password\n"
            )
            == 1
        )
        assert [u.email for u in await users(scratch_url)] == ["root@example.org"]

    @pytest.mark.parametrize(
        ("password", "reason"),
        [
            ("12345678", "too_common"),
            ("Superman1", "too_common"),
            (" " * 8, "blank"),
            ("new@example.org", "same_as_email"),
        ],
    )
    async def test_refuses_a_weak_password_naming_the_reason(
        self,
        scratch_url: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        password: str,
        reason: str,
    ) -> None:
        settings = scratch_settings(scratch_url, tmp_path)
        code = await anyio.to_thread.run_sync(
            self.run, monkeypatch, settings, "new@example.org", f"{password}\n"
        )
        assert code == 1
        assert f"password refused ({reason})" in caplog.text
        await anyio.to_thread.run_sync(upgrade_database, scratch_url)
        assert await users(scratch_url) == []

    def test_prompts_twice_on_a_terminal(
        self, monkeypatch: pytest.MonkeyPatch, settings: Settings
    ) -> None:
        answers = iter(["a-long-password", "a-different-password"])
        monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
        monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
        assert create_admin(settings, email="root@example.org") == 1


class TestDeployedProcess:
    """No shared test connection here: each request's session, each rate-limit count and each
    deferred write uses its own connection and transaction, as in production (on SQLite too)."""

    async def test_full_flow(self, scratch_url: str, tmp_path: Path) -> None:
        await anyio.to_thread.run_sync(upgrade_database, scratch_url)
        app = create_app(scratch_settings(scratch_url, tmp_path))
        async with running(app):
            from src.auth.state import AuthState

            await app.state.auth.close()
            app.state.auth = AuthState.build(
                app.state.settings, make_config(login_rate_limit="3/minute")
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                assert (await register(client, email="ada@example.org")).status_code == 201
                wrong = await login(client, "ada@example.org", "wrong")
                assert_error(wrong, 401, "INVALID_CREDENTIALS")
                pair = (await login(client, "ada@example.org")).json()
                me = await client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))
                assert me.status_code == 200
                second = await client.post(
                    f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]}
                )
                assert second.status_code == 200
                reused = await client.post(
                    f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]}
                )
                assert_error(reused, 401, "REFRESH_TOKEN_REUSED")
                newest = await client.post(
                    f"{AUTH}/refresh", json={"refresh_token": second.json()["refresh_token"]}
                )
                assert_error(newest, 401, "INVALID_REFRESH_TOKEN")
                for _ in range(2):
                    wrong = await login(client, "ada@example.org", "wrong")
                    assert_error(wrong, 401, "INVALID_CREDENTIALS")
                assert_error(await login(client, "ada@example.org"), 429, "TOO_MANY_ATTEMPTS")
