"""Refusals of the dashboard module."""

from __future__ import annotations

from src.dashboard.constants import MAX_PERIODS, DashboardErrorCode
from src.exceptions import AppError


class DashboardForbiddenError(AppError):
    status_code = 403
    code = DashboardErrorCode.FORBIDDEN
    message = "Only reviewers and admins can see every study (scope=all)."
    description = "scope=all without the reviewer or admin role"


class InvalidDateRangeError(AppError):
    status_code = 422
    code = DashboardErrorCode.INVALID_DATE_RANGE
    message = "start must not be after end."
    description = "INVALID_DATE_RANGE"


class TooManyPeriodsError(AppError):
    status_code = 422
    code = DashboardErrorCode.TOO_MANY_PERIODS
    message = (
        f"The range covers more than {MAX_PERIODS} periods; narrow it or choose a longer interval."
    )
    description = "TOO_MANY_PERIODS"
