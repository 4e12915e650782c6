"""Fixtures of the dashboard tests: the known world, and headers to ask as any of its users."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from src.config import Settings
from tests.dashboard.world import World, build_world
from tests.factories import auth_headers


@pytest.fixture
async def world(session: AsyncSession) -> World:
    return await build_world(session)


@pytest.fixture
def headers_for(settings: Settings, world: World) -> Callable[[str], dict[str, str]]:
    def headers(name: str) -> dict[str, str]:
        return auth_headers(settings, world.users[name])

    return headers


@pytest.fixture
def statements(connection: AsyncConnection) -> Iterator[list[str]]:
    """Every SQL statement the test's connection runs from now on, savepoints aside (they are
    the test harness's, not the code's)."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO")):
            seen.append(statement)

    target = connection.sync_connection
    assert target is not None
    event.listen(target, "before_cursor_execute", record)
    yield seen
    event.remove(target, "before_cursor_execute", record)
