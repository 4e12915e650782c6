"""Requests at once through the API, each in its own committed transaction: an app on a migrated
(scratch) database with one user, and many study creations at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
from fastapi import FastAPI

from src.app import create_app
from src.config import Settings
from src.database import upgrade_database
from tests.factories import auth_headers, create_user


@asynccontextmanager
async def committing_app(
    settings: Settings,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, dict[str, str]]]:
    """Migrate the (scratch) database and run the app on it with its own sessions (every request
    commits); yields the app, a client and the headers of a user created for it."""
    await anyio.to_thread.run_sync(upgrade_database, settings.effective_database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker() as session:
            user = await create_user(session)
            await session.commit()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client, auth_headers(settings, user)


async def create_concurrently(settings: Settings, *, count: int) -> list[str]:
    """POST ``count`` studies concurrently."""
    async with committing_app(settings) as (_, client, headers):
        responses = await asyncio.gather(
            *(
                client.post("/api/v1/studies", headers=headers, json={"title": f"s{n}"})
                for n in range(count)
            )
        )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses][:3]
    return [r.json()["accession"] for r in responses]
