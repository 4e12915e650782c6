"""POST /auth/login and POST /auth/token (the OAuth2 password form)."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.passwords import PasswordHasher
from src.auth.state import AuthState
from src.config import Settings
from tests.auth.conftest import make_config
from tests.auth.helpers import AUTH, assert_error, bearer, login
from tests.factories import DEFAULT_PASSWORD, create_user


class TestLogin:
    async def test_returns_a_token_pair_that_opens_me(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session, email="ada@example.org")
        response = await login(client, "ada@example.org")
        assert response.status_code == 200, response.text
        pair = response.json()
        assert pair["token_type"] == "bearer"
        assert pair["expires_in"] == 15 * 60
        assert len(pair["refresh_token"]) >= 43  # 256 bits, URL-safe base64
        me = await client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))
        assert me.status_code == 200
        assert me.json()["id"] == str(user.id)

    async def test_email_is_matched_ignoring_case(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        assert (await login(client, "ADA@Example.org")).status_code == 200

    async def test_refresh_token_is_also_a_strict_httponly_cookie(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        response = await login(client, "ada@example.org")
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"refresh_token={response.json()['refresh_token']};")
        attributes = {part.strip().lower() for part in cookie.split(";")}
        assert "httponly" in attributes
        assert "samesite=strict" in attributes
        assert "path=/api/v1/auth" in attributes
        assert f"max-age={30 * 24 * 3600}" in attributes
        assert "secure" not in attributes  # COOKIE_SECURE=false in these tests

    async def test_cookie_is_secure_by_default(
        self, app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        app.state.auth = AuthState.build(settings, make_config(cookie_secure=True))
        await create_user(session, email="ada@example.org")
        response = await login(client, "ada@example.org")
        attributes = {part.strip().lower() for part in response.headers["set-cookie"].split(";")}
        assert "secure" in attributes

    async def test_wrong_password_is_401(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        response = await login(client, "ada@example.org", "wrong-password")
        assert_error(response, 401, "INVALID_CREDENTIALS")
        assert "set-cookie" not in response.headers

    async def test_unknown_email_looks_like_a_wrong_password(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        wrong = (await login(client, "ada@example.org", "wrong-password")).json()
        unknown = (await login(client, "nobody@example.org", "wrong-password")).json()
        assert (unknown["code"], unknown["detail"]) == (wrong["code"], wrong["detail"])

    async def test_unknown_email_still_runs_a_verify_against_the_dummy_hash(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        passwords: PasswordHasher = app.state.auth.passwords
        calls: list[tuple[str, str]] = []
        real_verify = PasswordHasher.verify

        async def spy(self: PasswordHasher, password: str, hash_: str) -> tuple[bool, str | None]:
            calls.append((password, hash_))
            return await real_verify(self, password, hash_)

        with patch.object(PasswordHasher, "verify", spy):
            response = await login(client, "nobody@example.org", "some-password")
        assert_error(response, 401, "INVALID_CREDENTIALS")
        assert calls == [("some-password", await passwords.dummy_hash())]
        assert calls[0][1].startswith("$argon2id$")

    async def test_inactive_user_is_403(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org", is_active=False)
        response = await login(client, "ada@example.org")
        assert_error(response, 403, "USER_INACTIVE")
        assert "set-cookie" not in response.headers

    async def test_inactive_user_with_a_wrong_password_learns_nothing(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org", is_active=False)
        response = await login(client, "ada@example.org", "wrong-password")
        assert_error(response, 401, "INVALID_CREDENTIALS")

    async def test_password_hashed_with_old_parameters_is_upgraded(
        self, app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session, email="ada@example.org")
        old_hash = user.password_hash
        assert "m=8,t=1,p=1" in old_hash
        app.state.auth.passwords = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
        assert (await login(client, "ada@example.org")).status_code == 200
        await session.refresh(user)
        assert user.password_hash != old_hash
        assert "m=16,t=2,p=1" in user.password_hash
        assert (await login(client, "ada@example.org")).status_code == 200

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"email": "ada@example.org"},
            {"password": DEFAULT_PASSWORD},
            {"email": "not-an-email", "password": DEFAULT_PASSWORD},
            {"email": ["ada@example.org"], "password": DEFAULT_PASSWORD},
            {"email": "ada@example.org", "password": 123456789},
            {"email": "ada@example.org", "password": ""},
            {"email": "ada@example.org", "password": "x" * 129},
            {"email": "ada@example.org", "password": "p", "extra": 1},
        ],
    )
    async def test_malformed_input_is_422(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        response = await client.post(f"{AUTH}/login", json=body)
        assert_error(response, 422, "VALIDATION_ERROR")


class TestTokenForm:
    async def test_password_form_returns_a_token_pair(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        user = await create_user(session, email="ada@example.org")
        response = await client.post(
            f"{AUTH}/token", data={"username": "Ada@example.org", "password": DEFAULT_PASSWORD}
        )
        assert response.status_code == 200, response.text
        pair = response.json()
        assert pair["token_type"] == "bearer"
        me = await client.get(f"{AUTH}/me", headers=bearer(pair["access_token"]))
        assert me.json()["id"] == str(user.id)

    async def test_wrong_password_is_401(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org")
        response = await client.post(
            f"{AUTH}/token", data={"username": "ada@example.org", "password": "wrong-password"}
        )
        assert_error(response, 401, "INVALID_CREDENTIALS")

    async def test_inactive_user_is_403(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="ada@example.org", is_active=False)
        response = await client.post(
            f"{AUTH}/token", data={"username": "ada@example.org", "password": DEFAULT_PASSWORD}
        )
        assert_error(response, 403, "USER_INACTIVE")

    @pytest.mark.parametrize(
        "form",
        [
            {},
            {"username": "ada@example.org"},
            {"username": "not-an-email", "password": DEFAULT_PASSWORD},
            {"username": "ada@example.org", "password": "x" * 129},
            {"username": "ada@example.org", "password": "p", "grant_type": "client_credentials"},
        ],
    )
    async def test_malformed_form_is_422(
        self, client: httpx.AsyncClient, form: dict[str, str]
    ) -> None:
        response = await client.post(f"{AUTH}/token", data=form)
        assert_error(response, 422, "VALIDATION_ERROR")

    async def test_openapi_points_the_authorize_button_at_the_token_route(
        self, client: httpx.AsyncClient
    ) -> None:
        schema = (await client.get("/openapi.json")).json()
        schemes = schema["components"]["securitySchemes"]
        flows = [scheme["flows"] for scheme in schemes.values() if scheme["type"] == "oauth2"]
        assert flows == [{"password": {"scopes": {}, "tokenUrl": "/api/v1/auth/token"}}]
        assert schema["paths"]["/api/v1/auth/me"]["get"]["security"]
