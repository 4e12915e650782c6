"""The public totals (GET /stats) kept for a stated number of seconds in each process.

Anyone may call /stats, and it sums over every public study: counting on every call would let
its cost grow with the data and with the callers. Each process keeps the last totals for
``max_age`` seconds (STATS_MAX_AGE_SECONDS), so a publication shows there within that time. One
caller recounts when they are older; callers arriving meanwhile get the previous totals rather
than queueing behind it (only the very first callers wait, as there is nothing to give yet).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

from src.dashboard.schemas import PublicStats


class PublicStatsCache:
    def __init__(self, *, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._value: PublicStats | None = None
        self._counted_at = 0.0
        self._lock = anyio.Lock()

    def _fresh(self) -> PublicStats | None:
        if self._value is not None and self.clock() - self._counted_at < self.max_age:
            return self._value
        return None

    async def get(self, count: Callable[[], Awaitable[PublicStats]]) -> PublicStats:
        """The kept totals while fresh; otherwise ``count()`` them (one caller at a time)."""
        if (value := self._fresh()) is not None:
            return value
        if self._lock.locked() and self._value is not None:
            return self._value  # being recounted: the previous totals, at most a recount older
        async with self._lock:
            if (value := self._fresh()) is not None:
                return value
            started = self.clock()
            value = await count()
            self._value, self._counted_at = value, started
            return value
