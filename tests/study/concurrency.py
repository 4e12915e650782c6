"""Many study creations at once, through the API, each in its own committed transaction."""

from __future__ import annotations

import asyncio

import anyio
import httpx

from src.app import create_app
from src.config import Settings
from src.database import upgrade_database
from tests.factories import auth_headers, create_user


async def create_concurrently(settings: Settings, *, count: int) -> list[str]:
    """Migrate the (scratch) database, then POST ``count`` studies concurrently."""
    await anyio.to_thread.run_sync(upgrade_database, settings.effective_database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker() as session:
            user = await create_user(session)
            await session.commit()
        headers = auth_headers(settings, user)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = await asyncio.gather(
                *(
                    client.post("/api/v1/studies", headers=headers, json={"title": f"s{n}"})
                    for n in range(count)
                )
            )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses][:3]
    return [r.json()["accession"] for r in responses]
