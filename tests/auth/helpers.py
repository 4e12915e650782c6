"""Shared steps of the auth tests, done through HTTP like a real client."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import DEFAULT_PASSWORD

AUTH = "/api/v1/auth"


async def register(
    client: httpx.AsyncClient,
    email: str = "ada@example.org",
    password: str = DEFAULT_PASSWORD,
    full_name: str = "Ada Lovelace",
) -> httpx.Response:
    return await client.post(
        f"{AUTH}/register", json={"email": email, "password": password, "full_name": full_name}
    )


async def login(
    client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD
) -> httpx.Response:
    return await client.post(f"{AUTH}/login", json={"email": email, "password": password})


async def tokens(
    client: httpx.AsyncClient, email: str, password: str = DEFAULT_PASSWORD
) -> dict[str, Any]:
    response = await login(client, email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert "request_id" in body
    return body
