"""Stable codes and fixed values of the dashboard module."""

from enum import StrEnum


class DashboardErrorCode(StrEnum):
    FORBIDDEN = "FORBIDDEN"
    INVALID_DATE_RANGE = "INVALID_DATE_RANGE"
    TOO_MANY_PERIODS = "TOO_MANY_PERIODS"


class DashboardScope(StrEnum):
    """Which studies an aggregate covers: the caller's (owned or member) or every study."""

    MINE = "mine"
    ALL = "all"


class Metric(StrEnum):
    STUDIES_CREATED = "studies_created"
    STUDIES_PUBLISHED = "studies_published"
    BYTES_UPLOADED = "bytes_uploaded"


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class BreakdownField(StrEnum):
    ORGANISM = "organism"
    TISSUE = "tissue"
    SEX = "sex"


# A time series has at most this many periods; more is refused with TOO_MANY_PERIODS.
MAX_PERIODS = 1000
# Without start/end, a time series ends today and covers this many periods.
DEFAULT_PERIODS: dict[Interval, int] = {Interval.DAY: 30, Interval.WEEK: 26, Interval.MONTH: 12}

RECENT_EVENTS_LIMIT = 20
REVIEW_QUEUE_LIMIT = 50
BREAKDOWN_DEFAULT_LIMIT = 100
BREAKDOWN_MAX_LIMIT = 1000
