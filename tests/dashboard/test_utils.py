"""The period helpers: the SQL bucketing on this database agrees with the Python arithmetic,
the range rules, and the OpenAPI contract of the dashboard routes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.dashboard.constants import MAX_PERIODS, Interval
from src.dashboard.exceptions import InvalidDateRangeError, TooManyPeriodsError
from src.dashboard.utils import (
    align,
    count_periods,
    next_start,
    period_start,
    periods,
    resolve_window,
    shift_back,
)
from src.study.models import Study

MOMENTS = [
    datetime(2024, 2, 29, 12, 0, tzinfo=UTC),  # leap day, a Thursday
    datetime(2024, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # a Tuesday, last instant of a year
    datetime(2025, 1, 1, 0, 0, tzinfo=UTC),
    datetime(2025, 3, 9, 23, 59, 59, 999_999, tzinfo=UTC),  # Sunday night
    datetime(2025, 3, 10, 0, 0, tzinfo=UTC),  # Monday midnight
    datetime(2025, 3, 16, 0, 0, 0, 1, tzinfo=UTC),  # Sunday just after midnight
    datetime(2026, 11, 30, 8, 30, tzinfo=UTC),
]


class TestSqlBucketing:
    @pytest.mark.parametrize("interval", list(Interval))
    @pytest.mark.parametrize("moment", MOMENTS, ids=str)
    async def test_database_agrees_with_python(
        self, session: AsyncSession, interval: Interval, moment: datetime
    ) -> None:
        value = literal(moment, DateTime(timezone=True))
        result = (await session.execute(select(period_start(value, interval)))).scalar_one()
        assert result == align(interval, moment.date())

    def test_interval_is_part_of_the_cache_key(self) -> None:
        keys = []
        for interval in Interval:
            cache_key = select(period_start(Study.created_at, interval))._generate_cache_key()
            assert cache_key is not None
            keys.append(cache_key.key)
        # A cached statement for one interval must never be reused for another.
        assert keys[0] != keys[1]
        assert keys[1] != keys[2]
        assert keys[0] != keys[2]


class TestPeriodArithmetic:
    def test_weeks_start_on_monday(self) -> None:
        assert align(Interval.WEEK, date(2025, 3, 16)) == date(2025, 3, 10)  # Sunday
        assert align(Interval.WEEK, date(2025, 3, 10)) == date(2025, 3, 10)  # Monday

    def test_month_arithmetic_wraps_years(self) -> None:
        assert next_start(Interval.MONTH, date(2024, 12, 1)) == date(2025, 1, 1)
        assert shift_back(Interval.MONTH, date(2025, 1, 1), 1) == date(2024, 12, 1)
        assert shift_back(Interval.MONTH, date(2025, 3, 1), 14) == date(2024, 1, 1)

    def test_periods_list_every_start(self) -> None:
        assert periods(Interval.MONTH, date(2024, 11, 30), date(2025, 2, 1)) == [
            date(2024, 11, 1),
            date(2024, 12, 1),
            date(2025, 1, 1),
            date(2025, 2, 1),
        ]
        assert periods(Interval.DAY, date(2025, 1, 1), date(2025, 1, 1)) == [date(2025, 1, 1)]

    @given(
        interval=st.sampled_from(list(Interval)),
        start=st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1)),
        days=st.integers(min_value=0, max_value=2000),
    )
    def test_count_matches_the_list(self, interval: Interval, start: date, days: int) -> None:
        end = start + timedelta(days=days)
        listed = periods(interval, start, end)
        assert count_periods(interval, start, end) == len(listed)
        assert listed[0] <= start
        assert end < next_start(interval, listed[-1])
        assert all(align(interval, day) == day for day in listed)

    @given(
        interval=st.sampled_from(list(Interval)),
        day=st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1)),
        back=st.integers(min_value=0, max_value=500),
    )
    def test_shift_back_is_counted_periods(self, interval: Interval, day: date, back: int) -> None:
        first = align(interval, day)
        assert count_periods(interval, shift_back(interval, first, back), first) == back + 1


class TestResolveWindow:
    TODAY = date(2026, 11, 26)  # a Thursday

    def test_defaults(self) -> None:
        window = resolve_window(Interval.DAY, None, None, today=self.TODAY)
        assert (window.start, window.end) == (date(2026, 10, 28), self.TODAY)
        weekly = resolve_window(Interval.WEEK, None, None, today=self.TODAY)
        assert count_periods(Interval.WEEK, weekly.start, weekly.end) == 26
        monthly = resolve_window(Interval.MONTH, None, None, today=self.TODAY)
        assert (monthly.start, monthly.end) == (date(2025, 12, 1), self.TODAY)

    def test_only_start_ends_today(self) -> None:
        window = resolve_window(Interval.DAY, date(2026, 11, 1), None, today=self.TODAY)
        assert (window.start, window.end) == (date(2026, 11, 1), self.TODAY)

    def test_only_end_covers_the_default_count_before_it(self) -> None:
        window = resolve_window(Interval.MONTH, None, date(2025, 6, 15), today=self.TODAY)
        assert (window.start, window.end) == (date(2024, 7, 1), date(2025, 6, 15))

    def test_start_after_end(self) -> None:
        with pytest.raises(InvalidDateRangeError):
            resolve_window(Interval.DAY, date(2025, 1, 2), date(2025, 1, 1), today=self.TODAY)

    def test_too_many_periods(self) -> None:
        start = date(2000, 1, 1)
        resolve_window(
            Interval.WEEK, start, start + timedelta(weeks=MAX_PERIODS - 1), today=self.TODAY
        )
        with pytest.raises(TooManyPeriodsError):
            resolve_window(
                Interval.WEEK, start, start + timedelta(weeks=MAX_PERIODS), today=self.TODAY
            )


class TestOpenApi:
    async def test_dashboard_contract_is_documented(self, client: httpx.AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        paths = spec["paths"]
        for path, tag in (
            ("/api/v1/stats", "statistics"),
            ("/api/v1/dashboard/summary", "dashboard"),
            ("/api/v1/dashboard/timeseries", "dashboard"),
            ("/api/v1/dashboard/breakdown", "dashboard"),
        ):
            operation = paths[path]["get"]
            assert operation["tags"] == [tag]
            assert operation["description"]
        schemas = spec["components"]["schemas"]
        assert set(schemas["PublicStats"]["properties"]) == {
            "studies",
            "samples",
            "files",
            "bytes",
            "organisms",
        }
        assert schemas["Summary"]["examples"][0]["review_queue"][0]["waiting_seconds"] == 86400
        assert {"total", "by_status", "embargoed"} <= set(schemas["StudyCounts"]["properties"])
        series = paths["/api/v1/dashboard/timeseries"]["get"]
        assert series["responses"]["200"]["content"]["application/json"]["example"][0] == {
            "period_start": "2026-09-01",
            "value": 4,
        }
        assert {"401", "403", "422"} <= set(series["responses"])
        names = {p["name"] for p in series["parameters"]}
        assert {"metric", "interval", "start", "end", "scope"} <= names
        breakdown = paths["/api/v1/dashboard/breakdown"]["get"]
        assert breakdown["responses"]["200"]["content"]["application/json"]["example"]
