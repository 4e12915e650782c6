"""POST /auth/register."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.auth.state import AuthState
from src.config import Settings
from tests.auth.conftest import make_config
from tests.auth.helpers import AUTH, assert_error, register
from tests.factories import create_user


class TestRegister:
    async def test_creates_a_researcher_and_never_returns_the_hash(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        response = await register(client, email="Ada.Lovelace@Example.ORG")
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"id", "email", "full_name", "role", "is_active", "created_at"}
        assert body["email"] == "ada.lovelace@example.org"
        assert body["role"] == "researcher"
        assert body["is_active"] is True
        assert body["created_at"].endswith(("Z", "+00:00"))
        stored = await session.scalar(select(User).where(User.email == body["email"]))
        assert stored is not None
        assert stored.password_hash.startswith("$argon2id$")
        assert "correct-horse" not in stored.password_hash

    async def test_email_taken_ignoring_case(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await create_user(session, email="grace@example.org")
        response = await register(client, email="GRACE@example.org")
        assert_error(response, 409, "EMAIL_TAKEN")

    async def test_unicode_name_is_kept_as_written(self, client: httpx.AsyncClient) -> None:
        response = await register(client, full_name="  Zoë Ñúñez 张伟  ")
        assert response.status_code == 201
        assert response.json()["full_name"] == "Zoë Ñúñez 张伟"

    async def test_role_cannot_be_chosen(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            f"{AUTH}/register",
            json={
                "email": "eve@example.org",
                "password": "correct-horse-battery",
                "full_name": "Eve",
                "role": "admin",
            },
        )
        assert_error(response, 422, "VALIDATION_ERROR")

    @pytest.mark.parametrize(
        ("password", "reason"),
        [
            ("short", "too_short"),
            ("x" * 129, "too_long"),
            (" " * 8, "blank"),
            ("\t \t \t \t ", "blank"),
            ("z" * 20, "repeated"),
            ("ada@example.org", "same_as_email"),
            ("ADA@EXAMPLE.ORG", "same_as_email"),
            ("12345678", "too_common"),
            ("password1", "too_common"),
            ("PassWord1", "too_common"),
            ("Qwertyuiop", "too_common"),
            (" iloveyou ", "too_common"),
        ],
    )
    async def test_weak_password_is_422_naming_the_reason(
        self, client: httpx.AsyncClient, session: AsyncSession, password: str, reason: str
    ) -> None:
        response = await register(client, email="ada@example.org", password=password)
        body = assert_error(response, 422, "WEAK_PASSWORD")
        assert body["errors"] == [
            {"loc": ["body", "password"], "code": reason, "message": body["detail"]}
        ]
        assert await session.scalar(select(User).where(User.email == "ada@example.org")) is None

    async def test_a_weak_password_costs_no_registration_attempt(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings
    ) -> None:
        app.state.auth = AuthState.build(settings, make_config(register_rate_limit="1/hour"))
        assert_error(await register(client, password="12345678"), 422, "WEAK_PASSWORD")
        assert (await register(client)).status_code == 201

    async def test_password_limits_are_inclusive(self, client: httpx.AsyncClient) -> None:
        response = await register(client, email="a@example.org", password="kx7#qp2z")
        assert response.status_code == 201
        response = await register(client, email="b@example.org", password="éa" * 64)
        assert response.status_code == 201

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "not-an-email", "password": "correct-horse-battery", "full_name": "A"},
            {"email": "a@", "password": "correct-horse-battery", "full_name": "A"},
            {"email": "x" * 300 + "@example.org", "password": "correct-horse", "full_name": "A"},
            {"password": "correct-horse-battery", "full_name": "A"},
            {"email": "a@example.org", "full_name": "A"},
            {"email": "a@example.org", "password": "correct-horse-battery"},
            {"email": 42, "password": "correct-horse-battery", "full_name": "A"},
            {"email": "a@example.org", "password": 12345678, "full_name": "A"},
            {"email": "a@example.org", "password": "correct-horse-battery", "full_name": ["A"]},
            {"email": "a@example.org", "password": "correct-horse-battery", "full_name": ""},
            {"email": "a@example.org", "password": "correct-horse-battery", "full_name": "   "},
            {"email": "a@example.org", "password": "correct-horse-battery", "full_name": "x" * 201},
            {"email": "a@example.org", "password": "correct-horse-battery", "full_name": "a\x00b"},
            {"email": "a@example.org", "password": None, "full_name": "A"},
        ],
    )
    async def test_malformed_input_is_422_envelope(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        response = await client.post(f"{AUTH}/register", json=body)
        body_out = assert_error(response, 422, "VALIDATION_ERROR")
        assert body_out["errors"]

    @pytest.mark.parametrize("content", [b"", b"[]", b'"text"'])
    async def test_not_an_object_is_422(self, client: httpx.AsyncClient, content: bytes) -> None:
        response = await client.post(
            f"{AUTH}/register", content=content, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, "VALIDATION_ERROR")

    @pytest.mark.parametrize("content", [b"not json", b"\xff\xfe", b"\xff\xfe{"])
    async def test_not_json_is_422_malformed_json(
        self, client: httpx.AsyncClient, content: bytes
    ) -> None:
        response = await client.post(
            f"{AUTH}/register", content=content, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, "MALFORMED_JSON")
