"""Routes of the public statistics: totals over public studies, open to anyone."""

from __future__ import annotations

from fastapi import APIRouter

from src.dashboard import service
from src.dashboard.dependencies import StatsCacheDep
from src.dashboard.schemas import PublicStats
from src.dependencies import SessionDep

stats_router = APIRouter(tags=["statistics"])


@stats_router.get("/stats", response_model=PublicStats)
async def public_stats(session: SessionDep, cache: StatsCacheDep) -> PublicStats:
    """Totals over public studies (published and released); anyone may read them. They are
    recounted at most every STATS_MAX_AGE_SECONDS (default 5): a study published or released
    shows here within that many seconds."""
    return await cache.get(lambda: service.public_stats(session))
