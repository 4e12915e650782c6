"""Shared steps of the auth tests, done through HTTP like a real client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx

from src.app import create_app
from src.auth.config import AuthConfig
from src.auth.state import AuthState
from src.config import Settings
from src.database import upgrade_database
from tests.factories import DEFAULT_PASSWORD
from tests.lifespan import running

AUTH = "/api/v1/auth"


@asynccontextmanager
async def deployed_client(
    url: str, data_dir: Path, config: AuthConfig
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app on its own database ``url`` (migrated here) with the auth ``config``,
    with no shared test connection: each request has its own connection and transaction, as in
    production."""
    await anyio.to_thread.run_sync(upgrade_database, url)
    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=url,
        data_dir=data_dir,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )
    app = create_app(settings)
    async with running(app):
        await app.state.auth.close()
        app.state.auth = AuthState.build(settings, config)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


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
