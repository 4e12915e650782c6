"""Routes of the dashboard: read-only aggregates.

``/dashboard/*`` needs a signed-in caller and covers their own studies (owned or member), or every
study with ``scope=all`` for reviewers and admins. The public statistics are ``stats_router.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from src.auth.exceptions import InvalidTokenError
from src.dashboard import service
from src.dashboard.constants import (
    BREAKDOWN_DEFAULT_LIMIT,
    BREAKDOWN_MAX_LIMIT,
    BreakdownField,
    Metric,
)
from src.dashboard.dependencies import PeriodWindowDep, ViewerDep
from src.dashboard.exceptions import (
    DashboardForbiddenError,
    InvalidDateRangeError,
    TooManyPeriodsError,
)
from src.dashboard.schemas import (
    BREAKDOWN_EXAMPLE,
    TIMESERIES_EXAMPLE,
    BreakdownRow,
    Summary,
    TimeseriesPoint,
)
from src.dependencies import SessionDep
from src.exceptions import Responses, error_responses

router = APIRouter(tags=["dashboard"])

# Signed in, and scope=all only for reviewers and admins.
SCOPED = (InvalidTokenError, DashboardForbiddenError)


def _example(example: Any) -> Responses:
    return {200: {"content": {"application/json": {"example": example}}}}


@router.get("/dashboard/summary", response_model=Summary, responses=error_responses(*SCOPED))
async def dashboard_summary(viewer: ViewerDep, session: SessionDep) -> Summary:
    """Where the scoped studies stand; scope=all adds accounts and the review queue."""
    return await service.summary(session, viewer=viewer)


@router.get(
    "/dashboard/timeseries",
    response_model=list[TimeseriesPoint],
    responses={
        **error_responses(*SCOPED, InvalidDateRangeError, TooManyPeriodsError),
        **_example(TIMESERIES_EXAMPLE),
    },
)
async def dashboard_timeseries(
    viewer: ViewerDep,
    window: PeriodWindowDep,
    session: SessionDep,
    metric: Annotated[Metric, Query(description="What is counted")] = Metric.STUDIES_CREATED,
) -> list[TimeseriesPoint]:
    """One value per day, week (from Monday) or month of the range, empty periods as 0."""
    return await service.timeseries(session, viewer=viewer, metric=metric, window=window)


@router.get(
    "/dashboard/breakdown",
    response_model=list[BreakdownRow],
    responses={**error_responses(*SCOPED), **_example(BREAKDOWN_EXAMPLE)},
)
async def dashboard_breakdown(
    viewer: ViewerDep,
    session: SessionDep,
    by: Annotated[BreakdownField, Query(description="The sample field to group by")],
    limit: Annotated[
        int, Query(ge=1, le=BREAKDOWN_MAX_LIMIT, description="At most this many values")
    ] = BREAKDOWN_DEFAULT_LIMIT,
) -> list[BreakdownRow]:
    """Samples and studies per organism, tissue or sex, most samples first (null: not given)."""
    return await service.breakdown(session, viewer=viewer, by=by, limit=limit)
