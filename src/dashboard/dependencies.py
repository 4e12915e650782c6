"""Who may see which aggregates, and the validated time-series range, written once."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Depends, Query, Request

from src.auth.dependencies import CurrentUser
from src.auth.models import UserRole
from src.dashboard.cache import PublicStatsCache
from src.dashboard.constants import MAX_PERIODS, DashboardScope, Interval
from src.dashboard.exceptions import DashboardForbiddenError
from src.dashboard.service import Viewer
from src.dashboard.utils import PeriodWindow, resolve_window
from src.database import today

STAFF = frozenset({UserRole.REVIEWER, UserRole.ADMIN})


async def dashboard_viewer(
    user: CurrentUser,
    scope: Annotated[
        DashboardScope,
        Query(description="`mine`: studies you own or are a member of; `all`: reviewers, admins"),
    ] = DashboardScope.MINE,
) -> Viewer:
    """The caller and the studies they asked about; scope=all is for reviewers and admins."""
    if scope == DashboardScope.ALL and user.role not in STAFF:
        raise DashboardForbiddenError
    return Viewer(user=user, scope=scope)


async def period_window(
    interval: Annotated[
        Interval,
        Query(
            description=f"Length of a period; start to end spans at most {MAX_PERIODS:,} "
            "of them (else 422 TOO_MANY_PERIODS)"
        ),
    ] = Interval.DAY,
    start: Annotated[
        date | None,
        Query(
            description="First day (UTC), aligned to its period, not after end (else 422 "
            "INVALID_DATE_RANGE); default: see end"
        ),
    ] = None,
    end: Annotated[
        date | None,
        Query(
            description="Last day (UTC), aligned to its period; default: today, 30 days, "
            "26 weeks or 12 months after a missing start"
        ),
    ] = None,
) -> PeriodWindow:
    """The range of a time series: start ≤ end and at most MAX_PERIODS periods, else 422."""
    return resolve_window(interval, start, end, today=today())


ViewerDep = Annotated[Viewer, Depends(dashboard_viewer)]
PeriodWindowDep = Annotated[PeriodWindow, Depends(period_window)]


async def public_stats_cache(request: Request) -> PublicStatsCache:
    """The process's kept public totals (built with the app); async: no worker thread for a
    lookup."""
    cache: PublicStatsCache = request.app.state.public_stats
    return cache


StatsCacheDep = Annotated[PublicStatsCache, Depends(public_stats_cache)]
