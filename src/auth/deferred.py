"""Writes that must outlive the request's transaction.

A refused request rolls its transaction back, but some of what it learned must be kept: a reused
refresh token's family stays revoked, a successful login gives back its rate-limit attempt. Services
``add`` such actions; the ``deferred_writes`` dependency runs them, each in its own transaction,
after the request's session has committed or rolled back (it is declared before the session, so it
is torn down after it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

logger = logging.getLogger(__name__)

Action = Callable[[AsyncSession], Awaitable[None]]


class Deferred:
    def __init__(self) -> None:
        self._actions: list[Action] = []

    def add(self, action: Action) -> None:
        self._actions.append(action)

    async def run(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        actions, self._actions = self._actions, []
        for action in actions:
            try:
                async with sessionmaker() as session:
                    await action(session)
                    await session.commit()
            except Exception:
                # The response is already decided; a failure here is logged, not raised over it.
                logger.exception("deferred auth write failed")
