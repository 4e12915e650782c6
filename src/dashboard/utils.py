"""Periods of a time series: the SQL bucketing helper and the same arithmetic in Python.

``period_start(column, interval)`` is the first day of the day, week (starting Monday) or month
that contains a timestamp, computed by the database so rows are grouped in SQL: ``date_trunc`` on
PostgreSQL (in UTC, whatever the session's time zone), ``strftime`` on SQLite (where timestamps are
stored as UTC text). ``align``, ``next_start``, ``count_periods`` and ``periods`` do the same for
the requested range, so every period can be listed, empty ones included, without reading rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from src.dashboard.constants import DEFAULT_PERIODS, MAX_PERIODS, Interval
from src.dashboard.exceptions import InvalidDateRangeError, TooManyPeriodsError


class period_start(FunctionElement[date]):  # noqa: N801 (used like a SQL function)
    """``period_start(Study.created_at, Interval.WEEK)``: the period's first day, as a date."""

    type = Date()
    name = "period_start"
    inherit_cache = True
    # The interval changes the SQL, so it is part of the statement's cache key.
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's own declaration style)
        *FunctionElement._traverse_internals,
        ("interval", InternalTraversal.dp_string),
    ]

    def __init__(
        self, column: ColumnElement[Any] | QueryableAttribute[Any], interval: Interval
    ) -> None:
        self.interval = Interval(interval).value
        super().__init__(column)


def _column_sql(element: period_start, compiler: SQLCompiler, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(period_start, "postgresql")
def _period_start_postgresql(element: period_start, compiler: SQLCompiler, **kw: Any) -> str:
    # The interval is one of three fixed words, written into the SQL (not bound) so that the
    # same expression in SELECT and GROUP BY is textually identical.
    column = _column_sql(element, compiler, **kw)
    return f"CAST(date_trunc('{element.interval}', timezone('UTC', {column})) AS DATE)"


@compiles(period_start, "sqlite")
def _period_start_sqlite(element: period_start, compiler: SQLCompiler, **kw: Any) -> str:
    column = _column_sql(element, compiler, **kw)
    day = f"strftime('%Y-%m-%d', {column})"
    if element.interval == Interval.MONTH:
        return f"strftime('%Y-%m-01', {column})"
    if element.interval == Interval.WEEK:
        # 'weekday 0' moves forward to Sunday (staying on a Sunday); six days back is Monday.
        # Applied to the day, not the timestamp: SQLite would round 23:59:59.9999 up a day.
        return f"date({day}, 'weekday 0', '-6 days')"
    return day


def align(interval: Interval, day: date) -> date:
    """The first day of the period containing ``day``."""
    if interval == Interval.WEEK:
        return day - timedelta(days=day.weekday())
    if interval == Interval.MONTH:
        return day.replace(day=1)
    return day


def next_start(interval: Interval, start: date) -> date:
    """The first day of the period after the one starting on ``start``."""
    if interval == Interval.WEEK:
        return start + timedelta(days=7)
    if interval == Interval.MONTH:
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=1)


def shift_back(interval: Interval, start: date, periods: int) -> date:
    """The first day of the period ``periods`` periods before the one starting on ``start``."""
    if interval == Interval.WEEK:
        return start - timedelta(days=7 * periods)
    if interval == Interval.MONTH:
        months = start.year * 12 + start.month - 1 - periods
        return date(months // 12, months % 12 + 1, 1)
    return start - timedelta(days=periods)


def count_periods(interval: Interval, start: date, end: date) -> int:
    """How many periods ``start``..``end`` (both included) touches, without listing them."""
    first, last = align(interval, start), align(interval, end)
    if interval == Interval.WEEK:
        return (last - first).days // 7 + 1
    if interval == Interval.MONTH:
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return (last - first).days + 1


def periods(interval: Interval, start: date, end: date) -> list[date]:
    """The first day of every period ``start``..``end`` touches, in order."""
    starts = []
    current, last = align(interval, start), align(interval, end)
    while current <= last:
        starts.append(current)
        current = next_start(interval, current)
    return starts


@dataclass(frozen=True)
class PeriodWindow:
    """A validated time-series range: ``start``..``end`` (both included) in ``interval`` steps."""

    interval: Interval
    start: date
    end: date


def resolve_window(
    interval: Interval, start: date | None, end: date | None, *, today: date
) -> PeriodWindow:
    """The requested range, defaults filled in: ending today (or at ``end``) and covering
    DEFAULT_PERIODS periods. start after end, or more than MAX_PERIODS periods, is refused."""
    end = end or max(today, start or today)
    start = start or shift_back(interval, align(interval, end), DEFAULT_PERIODS[interval] - 1)
    if start > end:
        raise InvalidDateRangeError(f"start ({start}) is after end ({end}).")
    if count_periods(interval, start, end) > MAX_PERIODS:
        raise TooManyPeriodsError()
    return PeriodWindow(interval=interval, start=start, end=end)
