"""Access tokens end at once on logout, password change, deactivation and POST /auth/logout-all:
the old token gets 401 INVALID_TOKEN on GET /auth/me and on a study route, a fresh login works,
and concurrent logouts and refreshes never leave a live token of an ended session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import RefreshToken, User
from src.config import Settings
from src.database import create_engine, create_sessionmaker
from tests.auth.conftest import make_config
from tests.auth.helpers import (
    AUTH,
    assert_error,
    bearer,
    deployed_client,
    login,
    register,
    tokens,
)
from tests.factories import DEFAULT_PASSWORD, auth_headers, create_user
from tests.study.factories import create_study

STUDIES = "/api/v1/studies"
NEW_PASSWORD = "a-new-long-password"


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{AUTH}/refresh", json={"refresh_token": token})


async def assert_ended(client: httpx.AsyncClient, access_token: str, accession: str) -> None:
    """The token is refused at once, on auth's routes and on another module's."""
    for url in (f"{AUTH}/me", f"{STUDIES}/{accession}"):
        response = await client.get(url, headers=bearer(access_token))
        assert_error(response, 401, "INVALID_TOKEN")
        assert response.headers["www-authenticate"] == "Bearer"


async def assert_works(client: httpx.AsyncClient, access_token: str, accession: str) -> None:
    for url in (f"{AUTH}/me", f"{STUDIES}/{accession}"):
        response = await client.get(url, headers=bearer(access_token))
        assert response.status_code == 200, response.text


async def logout(
    client: httpx.AsyncClient, pair: dict[str, str], *, everywhere: bool = False
) -> httpx.Response:
    """Log out the session of ``pair`` (its access and refresh tokens), or with ``everywhere``
    all the user's sessions."""
    return await client.post(
        f"{AUTH}/logout-all" if everywhere else f"{AUTH}/logout",
        json={"refresh_token": pair["refresh_token"]},
        headers=bearer(pair["access_token"]),
    )


@pytest.fixture
async def ada(session: AsyncSession) -> User:
    return await create_user(session, email="ada@example.org")


@pytest.fixture
async def accession(session: AsyncSession, ada: User) -> str:
    return (await create_study(session, owner=ada)).accession


class TestLogout:
    async def test_ends_the_access_token_at_once(
        self, client: httpx.AsyncClient, ada: User, accession: str
    ) -> None:
        pair = await tokens(client, "ada@example.org")
        await assert_works(client, pair["access_token"], accession)
        assert (await logout(client, pair)).status_code == 204
        await assert_ended(client, pair["access_token"], accession)
        assert_error(await refresh(client, pair["refresh_token"]), 401, "INVALID_REFRESH_TOKEN")
        again = await tokens(client, "ada@example.org")
        await assert_works(client, again["access_token"], accession)

    async def test_without_a_refresh_token_still_ends_the_access_token(
        self, client: httpx.AsyncClient, ada: User, accession: str
    ) -> None:
        pair = await tokens(client, "ada@example.org")
        client.cookies.clear()
        response = await client.post(f"{AUTH}/logout", headers=bearer(pair["access_token"]))
        assert response.status_code == 204
        await assert_ended(client, pair["access_token"], accession)

    async def test_other_sessions_refresh_into_a_working_access_token(
        self, client: httpx.AsyncClient, ada: User, accession: str
    ) -> None:
        laptop = await tokens(client, "ada@example.org")
        phone = await tokens(client, "ada@example.org")
        assert (await logout(client, laptop)).status_code == 204
        # Access tokens are per user, so the phone's ends too; its refresh token does not.
        await assert_ended(client, phone["access_token"], accession)
        refreshed = await refresh(client, phone["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        await assert_works(client, refreshed.json()["access_token"], accession)

    async def test_a_token_ended_by_one_logout_cannot_log_out_again(
        self, client: httpx.AsyncClient, session: AsyncSession, ada: User
    ) -> None:
        first = await tokens(client, "ada@example.org")
        second = await tokens(client, "ada@example.org")
        for pair in (first, second):
            await client.post(f"{AUTH}/logout", headers=bearer(pair["access_token"]))
        # The second was already ended by the first: refused, and nothing else changes.
        await session.refresh(ada, ["token_generation"])
        assert ada.token_generation == 1


class TestChangePassword:
    async def test_ends_every_access_token_at_once(
        self, client: httpx.AsyncClient, ada: User, accession: str
    ) -> None:
        laptop = await tokens(client, "ada@example.org")
        phone = await tokens(client, "ada@example.org")
        response = await client.post(
            f"{AUTH}/me/password",
            json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(laptop["access_token"]),
        )
        assert response.status_code == 204, response.text
        for pair in (laptop, phone):
            await assert_ended(client, pair["access_token"], accession)
            assert_error(await refresh(client, pair["refresh_token"]), 401, "INVALID_REFRESH_TOKEN")
        again = await tokens(client, "ada@example.org", NEW_PASSWORD)
        await assert_works(client, again["access_token"], accession)

    async def test_a_refused_change_ends_nothing(
        self, client: httpx.AsyncClient, ada: User, accession: str
    ) -> None:
        pair = await tokens(client, "ada@example.org")
        response = await client.post(
            f"{AUTH}/me/password",
            json={"current_password": "not-the-password", "new_password": NEW_PASSWORD},
            headers=bearer(pair["access_token"]),
        )
        assert_error(response, 400, "WRONG_PASSWORD")
        await assert_works(client, pair["access_token"], accession)


class TestDeactivation:
    @pytest.fixture
    async def admin(self, session: AsyncSession, settings: Settings) -> dict[str, str]:
        return auth_headers(settings, await create_user(session, role="admin"))

    @pytest.fixture
    def ada_url(self, ada: User) -> str:
        return f"{AUTH}/users/{ada.id}"

    async def test_ends_access_tokens_for_good(
        self, client: httpx.AsyncClient, admin: dict[str, str], ada_url: str, accession: str
    ) -> None:
        pair = await tokens(client, "ada@example.org")
        assert (await client.patch(ada_url, json={"is_active": False}, headers=admin)).is_success
        await assert_ended(client, pair["access_token"], accession)
        assert (await client.patch(ada_url, json={"is_active": True}, headers=admin)).is_success
        await assert_ended(client, pair["access_token"], accession)
        assert_error(await refresh(client, pair["refresh_token"]), 401, "INVALID_REFRESH_TOKEN")
        again = await tokens(client, "ada@example.org")
        await assert_works(client, again["access_token"], accession)

    async def test_a_role_change_ends_nothing(
        self, client: httpx.AsyncClient, admin: dict[str, str], ada_url: str, accession: str
    ) -> None:
        pair = await tokens(client, "ada@example.org")
        assert (await client.patch(ada_url, json={"role": "reviewer"}, headers=admin)).is_success
        await assert_works(client, pair["access_token"], accession)


class TestLogoutAll:
    async def test_ends_every_session(
        self, client: httpx.AsyncClient, ada: User, accession: str
    ) -> None:
        laptop = await tokens(client, "ada@example.org")
        phone = await tokens(client, "ada@example.org")
        response = await client.post(f"{AUTH}/logout-all", headers=bearer(phone["access_token"]))
        assert response.status_code == 204
        assert response.content == b""
        cookie = response.headers["set-cookie"].lower()
        assert cookie.startswith("refresh_token=")
        assert "max-age=0" in cookie
        for pair in (laptop, phone):
            await assert_ended(client, pair["access_token"], accession)
            assert_error(await refresh(client, pair["refresh_token"]), 401, "INVALID_REFRESH_TOKEN")
        again = await tokens(client, "ada@example.org")
        await assert_works(client, again["access_token"], accession)
        assert (await refresh(client, again["refresh_token"])).status_code == 200

    async def test_leaves_other_users_alone(
        self, client: httpx.AsyncClient, session: AsyncSession, ada: User
    ) -> None:
        await create_user(session, email="grace@example.org")
        grace = await tokens(client, "grace@example.org")
        pair = await tokens(client, "ada@example.org")
        assert (
            await client.post(f"{AUTH}/logout-all", headers=bearer(pair["access_token"]))
        ).status_code == 204
        me = await client.get(f"{AUTH}/me", headers=bearer(grace["access_token"]))
        assert me.json()["email"] == "grace@example.org"
        assert (await refresh(client, grace["refresh_token"])).status_code == 200

    async def test_requires_a_bearer_token(
        self, client: httpx.AsyncClient, session: AsyncSession, ada: User
    ) -> None:
        pair = await tokens(client, "ada@example.org")
        response = await client.post(f"{AUTH}/logout-all")
        assert_error(response, 401, "INVALID_TOKEN")
        assert response.headers["www-authenticate"] == "Bearer"
        stale = await client.post(f"{AUTH}/logout-all", headers=bearer("not.a.jwt"))
        assert_error(stale, 401, "INVALID_TOKEN")
        assert (await refresh(client, pair["refresh_token"])).status_code == 200


@pytest.fixture
async def deployed(scratch_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app on its own database with no shared test connection: each request has its own
    connection and transaction, so concurrent requests really run concurrently (PostgreSQL) or
    queue on the write lock (SQLite), as in production."""
    async with deployed_client(scratch_url, tmp_path / "data", make_config()) as client:
        assert (await register(client, email="ada@example.org")).status_code == 201
        yield client


async def live_refresh_tokens(url: str) -> int:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.scalars(
                select(RefreshToken).where(RefreshToken.revoked_at.is_(None))
            )
            return len(rows.all())
    finally:
        await engine.dispose()


async def generation(url: str) -> int:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            return int(await session.scalar(select(User.token_generation)) or 0)
    finally:
        await engine.dispose()


class TestConcurrency:
    async def test_concurrent_logouts_each_raise_the_generation(
        self, deployed: httpx.AsyncClient, scratch_url: str
    ) -> None:
        """UPDATE ... SET token_generation = token_generation + 1: no increment is lost."""
        access = (await tokens(deployed, "ada@example.org"))["access_token"]
        pairs = [await tokens(deployed, "ada@example.org") for _ in range(4)]
        # Each logout is authorised by a token issued at the same generation, so all may pass.
        results = await asyncio.gather(
            *(logout(deployed, pair, everywhere=bool(n % 2)) for n, pair in enumerate(pairs))
        )
        passed = [r.status_code for r in results if r.status_code == 204]
        assert all(r.status_code in (204, 401) for r in results), [r.text for r in results]
        assert await generation(scratch_url) == len(passed) >= 1
        assert_error(await deployed.get(f"{AUTH}/me", headers=bearer(access)), 401, "INVALID_TOKEN")

    async def test_logout_during_refresh_leaves_no_live_token(
        self, deployed: httpx.AsyncClient, scratch_url: str
    ) -> None:
        """Whichever commits first, the session ends: the refresh either fails or its new
        refresh token is revoked by the logout and its new access token is already ended."""
        for n in range(6):
            pair = await tokens(deployed, "ada@example.org")
            ended, refreshed = await asyncio.gather(
                logout(deployed, pair, everywhere=bool(n % 2)),
                refresh(deployed, pair["refresh_token"]),
            )
            assert ended.status_code == 204, ended.text
            assert await live_refresh_tokens(scratch_url) == 0
            if refreshed.status_code == 200:
                new: dict[str, Any] = refreshed.json()
                me = await deployed.get(f"{AUTH}/me", headers=bearer(new["access_token"]))
                assert_error(me, 401, "INVALID_TOKEN")
                assert_error(
                    await refresh(deployed, new["refresh_token"]), 401, "INVALID_REFRESH_TOKEN"
                )
            else:
                assert refreshed.status_code == 401, refreshed.text

    async def test_a_fresh_login_after_logout_all_works(self, deployed: httpx.AsyncClient) -> None:
        pair = await tokens(deployed, "ada@example.org")
        await deployed.post(f"{AUTH}/logout-all", headers=bearer(pair["access_token"]))
        again = await login(deployed, "ada@example.org")
        me = await deployed.get(f"{AUTH}/me", headers=bearer(again.json()["access_token"]))
        assert me.status_code == 200
