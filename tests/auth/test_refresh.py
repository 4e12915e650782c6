"""POST /auth/refresh and POST /auth/logout: rotation, reuse detection, revocation."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import RefreshToken
from src.auth.service import hash_refresh_token
from src.database import utcnow
from tests.auth.helpers import AUTH, assert_error, bearer, tokens
from tests.factories import create_user


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{AUTH}/refresh", json={"refresh_token": token})


async def stored(session: AsyncSession, token: str) -> RefreshToken:
    row = await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == hash_refresh_token(token))
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


class TestRefresh:
    async def test_rotates_and_the_old_token_stops_working(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        first = await tokens(client, "ada@example.org")
        response = await refresh(client, first["refresh_token"])
        assert response.status_code == 200, response.text
        second = response.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]
        me = await client.get(f"{AUTH}/me", headers=bearer(second["access_token"]))
        assert me.status_code == 200
        old, new = (
            await stored(session, first["refresh_token"]),
            await stored(session, second["refresh_token"]),
        )
        assert old.revoked_at is not None
        assert old.replaced_by_id == new.id
        assert old.family_id == new.family_id
        assert response.headers["set-cookie"].startswith(f"refresh_token={second['refresh_token']}")

    async def test_only_a_hash_of_the_token_is_stored(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        pair = await tokens(client, "ada@example.org")
        row = await stored(session, pair["refresh_token"])
        assert row.token_hash != pair["refresh_token"]
        assert len(row.token_hash) == 64
        assert (row.expires_at - row.created_at) == timedelta(days=30)

    async def test_reuse_revokes_the_whole_family_including_the_newest(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        first = await tokens(client, "ada@example.org")
        second = (await refresh(client, first["refresh_token"])).json()
        third = (await refresh(client, second["refresh_token"])).json()
        other_session = await tokens(client, "ada@example.org")

        reused = await refresh(client, first["refresh_token"])
        assert_error(reused, 401, "REFRESH_TOKEN_REUSED")

        newest = await refresh(client, third["refresh_token"])
        assert_error(newest, 401, "INVALID_REFRESH_TOKEN")
        assert (await stored(session, third["refresh_token"])).revoked_at is not None
        # Another login is another family: untouched.
        assert (await refresh(client, other_session["refresh_token"])).status_code == 200

    async def test_refresh_from_the_cookie(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        first = await tokens(client, "ada@example.org")  # the client keeps the cookie
        response = await client.post(f"{AUTH}/refresh")
        assert response.status_code == 200, response.text
        assert response.json()["refresh_token"] != first["refresh_token"]
        assert client.cookies["refresh_token"] == response.json()["refresh_token"]
        assert (await client.post(f"{AUTH}/refresh")).status_code == 200

    async def test_body_token_wins_over_the_cookie(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        await tokens(client, "ada@example.org")
        response = await refresh(client, "not-a-token")
        assert_error(response, 401, "INVALID_REFRESH_TOKEN")

    async def test_missing_token_is_401(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.post(f"{AUTH}/refresh"), 401, "INVALID_REFRESH_TOKEN")
        assert_error(await client.post(f"{AUTH}/refresh", json={}), 401, "INVALID_REFRESH_TOKEN")

    async def test_unknown_token_is_401(self, client: httpx.AsyncClient) -> None:
        assert_error(await refresh(client, "x" * 43), 401, "INVALID_REFRESH_TOKEN")

    async def test_expired_token_is_401(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        pair = await tokens(client, "ada@example.org")
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hash_refresh_token(pair["refresh_token"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        assert_error(await refresh(client, pair["refresh_token"]), 401, "INVALID_REFRESH_TOKEN")

    async def test_deactivated_user_is_403(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session, email="ada@example.org")
        pair = await tokens(client, "ada@example.org")
        user.is_active = False
        await session.flush()
        assert_error(await refresh(client, pair["refresh_token"]), 403, "USER_INACTIVE")

    async def test_malformed_body_is_422(self, client: httpx.AsyncClient) -> None:
        for body in ({"refresh_token": 5}, {"refresh_token": "x" * 300}, {"token": "x"}):
            response = await client.post(f"{AUTH}/refresh", json=body)
            assert_error(response, 422, "VALIDATION_ERROR")


class TestLogout:
    async def test_revokes_that_session_only(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        laptop = await tokens(client, "ada@example.org")
        phone = await tokens(client, "ada@example.org")
        response = await client.post(
            f"{AUTH}/logout",
            json={"refresh_token": laptop["refresh_token"]},
            headers=bearer(laptop["access_token"]),
        )
        assert response.status_code == 204
        assert response.content == b""
        assert_error(await refresh(client, laptop["refresh_token"]), 401, "INVALID_REFRESH_TOKEN")
        assert (await refresh(client, phone["refresh_token"])).status_code == 200

    async def test_revokes_the_cookie_token_and_clears_the_cookie(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        pair = await tokens(client, "ada@example.org")
        response = await client.post(f"{AUTH}/logout", headers=bearer(pair["access_token"]))
        assert response.status_code == 204
        cookie = response.headers["set-cookie"].lower()
        assert cookie.startswith("refresh_token=")
        assert "max-age=0" in cookie
        assert "path=/api/v1/auth" in cookie
        assert (await stored(session, pair["refresh_token"])).revoked_at is not None

    async def test_requires_a_bearer_token(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        pair = await tokens(client, "ada@example.org")
        response = await client.post(
            f"{AUTH}/logout", json={"refresh_token": pair["refresh_token"]}
        )
        assert_error(response, 401, "INVALID_TOKEN")
        assert response.headers["www-authenticate"] == "Bearer"
        assert (await refresh(client, pair["refresh_token"])).status_code == 200

    async def test_cannot_revoke_another_users_session(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        await create_user(session, email="eve@example.org")
        victim = await tokens(client, "ada@example.org")
        attacker = await tokens(client, "eve@example.org")
        response = await client.post(
            f"{AUTH}/logout",
            json={"refresh_token": victim["refresh_token"]},
            headers=bearer(attacker["access_token"]),
        )
        assert response.status_code == 204
        assert (await refresh(client, victim["refresh_token"])).status_code == 200

    async def test_without_a_refresh_token_is_still_204(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        pair = await tokens(client, "ada@example.org")
        client.cookies.clear()
        response = await client.post(f"{AUTH}/logout", headers=bearer(pair["access_token"]))
        assert response.status_code == 204
        assert (await refresh(client, pair["refresh_token"])).status_code == 200
