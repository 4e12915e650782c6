"""Routes of the public statistics: totals over public studies, open to anyone."""

from __future__ import annotations

from fastapi import APIRouter

from src.dashboard import service
from src.dashboard.schemas import PublicStats
from src.dependencies import SessionDep

stats_router = APIRouter(tags=["statistics"])


@stats_router.get("/stats", response_model=PublicStats)
async def public_stats(session: SessionDep) -> PublicStats:
    """Totals over public studies (published and released); anyone may read them."""
    return await service.public_stats(session)
