"""GET /auth/me, PATCH /auth/me, POST /auth/me/password."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from src.config import Settings
from tests.auth.helpers import AUTH, assert_error, bearer, login, tokens
from tests.factories import DEFAULT_PASSWORD, auth_headers, create_user


class TestReadMe:
    async def test_returns_the_caller(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        user = await create_user(session, role="reviewer", full_name="Rosalind Franklin")
        response = await client.get(f"{AUTH}/me", headers=auth_headers(settings, user))
        assert response.status_code == 200
        assert response.json() == {
            "id": str(user.id),
            "email": user.email,
            "full_name": "Rosalind Franklin",
            "role": "reviewer",
            "is_active": True,
            "created_at": response.json()["created_at"],
        }

    async def test_without_a_token_is_401_with_www_authenticate(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get(f"{AUTH}/me")
        assert_error(response, 401, "INVALID_TOKEN")
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_access_log_carries_the_user_id(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        user = await create_user(session)
        with caplog.at_level(logging.INFO, logger="mosaic.access"):
            await client.get(f"{AUTH}/me", headers=auth_headers(settings, user))
        records = [r for r in caplog.records if r.name == "mosaic.access"]
        assert records
        assert records[-1].user_id == str(user.id)  # type: ignore[attr-defined]


class TestUpdateMe:
    async def test_changes_the_name(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        user = await create_user(session)
        headers = auth_headers(settings, user)
        response = await client.patch(
            f"{AUTH}/me", json={"full_name": " Barbara McClintock "}, headers=headers
        )
        assert response.status_code == 200
        assert response.json()["full_name"] == "Barbara McClintock"
        again = await client.get(f"{AUTH}/me", headers=headers)
        assert again.json()["full_name"] == "Barbara McClintock"

    async def test_requires_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.patch(f"{AUTH}/me", json={"full_name": "X"})
        assert_error(response, 401, "INVALID_TOKEN")

    @pytest.mark.parametrize(
        "body",
        [{}, {"full_name": ""}, {"full_name": 1}, {"full_name": "x" * 201}, {"email": "a@b.c"}],
    )
    async def test_bad_input_is_422(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        body: dict[str, object],
    ) -> None:
        user = await create_user(session)
        response = await client.patch(f"{AUTH}/me", json=body, headers=auth_headers(settings, user))
        assert_error(response, 422, "VALIDATION_ERROR")


class TestChangePassword:
    async def test_changes_the_password_and_revokes_every_refresh_token(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        laptop = await tokens(client, "ada@example.org")
        phone = await tokens(client, "ada@example.org")
        response = await client.post(
            f"{AUTH}/me/password",
            json={"current_password": DEFAULT_PASSWORD, "new_password": "a-new-long-password"},
            headers=bearer(laptop["access_token"]),
        )
        assert response.status_code == 204
        for pair in (laptop, phone):
            refreshed = await client.post(
                f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]}
            )
            assert_error(refreshed, 401, "INVALID_REFRESH_TOKEN")
        assert_error(await login(client, "ada@example.org"), 401, "INVALID_CREDENTIALS")
        assert (await login(client, "ada@example.org", "a-new-long-password")).status_code == 200

    async def test_wrong_current_password_is_refused(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        pair = await tokens(client, "ada@example.org")
        response = await client.post(
            f"{AUTH}/me/password",
            json={"current_password": "not-my-password", "new_password": "a-new-long-password"},
            headers=bearer(pair["access_token"]),
        )
        assert_error(response, 400, "WRONG_PASSWORD")
        assert (await login(client, "ada@example.org")).status_code == 200
        refreshed = await client.post(
            f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 200

    @pytest.mark.parametrize(
        ("new_password", "reason"),
        [
            ("Ada.Lovelace@example.org", "same_as_email"),
            ("short", "too_short"),
            ("x" * 129, "too_long"),
            (" " * 8, "blank"),
            ("7" * 12, "repeated"),
            ("12345678", "too_common"),
            ("Football1", "too_common"),
        ],
    )
    async def test_weak_new_password_is_422_naming_the_reason(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        new_password: str,
        reason: str,
    ) -> None:
        user = await create_user(session, email="ada.lovelace@example.org")
        response = await client.post(
            f"{AUTH}/me/password",
            json={"current_password": DEFAULT_PASSWORD, "new_password": new_password},
            headers=auth_headers(settings, user),
        )
        body = assert_error(response, 422, "WEAK_PASSWORD")
        assert body["errors"] == [
            {"loc": ["body", "new_password"], "code": reason, "message": body["detail"]}
        ]
        assert (await login(client, "ada.lovelace@example.org")).status_code == 200

    @pytest.mark.parametrize(
        "body",
        [
            {"current_password": DEFAULT_PASSWORD},
            {"new_password": "a-new-long-password"},
            {"current_password": DEFAULT_PASSWORD, "new_password": 123456789},
        ],
    )
    async def test_bad_input_is_422(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        body: dict[str, object],
    ) -> None:
        user = await create_user(session)
        response = await client.post(
            f"{AUTH}/me/password", json=body, headers=auth_headers(settings, user)
        )
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_requires_a_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            f"{AUTH}/me/password",
            json={"current_password": DEFAULT_PASSWORD, "new_password": "a-new-long-password"},
        )
        assert_error(response, 401, "INVALID_TOKEN")
