"""GET /api/v1/dashboard/timeseries: buckets by day, week (from Monday) and month on both
databases, empty periods as 0, scope rules, and the validated range."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from src.dashboard.constants import MAX_PERIODS
from src.database import today
from tests.dashboard.world import World, expected_series

SERIES = "/api/v1/dashboard/timeseries"

Headers = Callable[[str], dict[str, str]]


def as_dict(body: list[dict[str, object]]) -> dict[date, int]:
    return {date.fromisoformat(str(p["period_start"])): int(str(p["value"])) for p in body}


CASES = [
    # metric, interval, start, end, first period start, last period start
    ("studies_created", "day", "2025-02-27", "2025-04-03", date(2025, 2, 27), date(2025, 4, 3)),
    ("studies_created", "week", "2025-02-26", "2025-04-06", date(2025, 2, 24), date(2025, 3, 31)),
    ("studies_created", "month", "2025-01-15", "2025-05-02", date(2025, 1, 1), date(2025, 5, 1)),
    ("studies_published", "day", "2025-02-28", "2025-05-01", date(2025, 2, 28), date(2025, 5, 1)),
    ("studies_published", "month", "2025-02-01", "2025-05-31", date(2025, 2, 1), date(2025, 5, 1)),
    ("bytes_uploaded", "day", "2025-02-28", "2025-04-02", date(2025, 2, 28), date(2025, 4, 2)),
    ("bytes_uploaded", "week", "2025-02-24", "2025-04-06", date(2025, 2, 24), date(2025, 3, 31)),
    ("bytes_uploaded", "month", "2025-02-01", "2025-04-30", date(2025, 2, 1), date(2025, 4, 1)),
]


class TestTimeseriesValues:
    @pytest.mark.parametrize(("metric", "interval", "start", "end", "first", "last"), CASES)
    @pytest.mark.parametrize(("user", "scope"), [("rita", "all"), ("alice", "mine")])
    async def test_every_period_matches_the_world(
        self,
        client: httpx.AsyncClient,
        world: World,
        headers_for: Headers,
        metric: str,
        interval: str,
        start: str,
        end: str,
        first: date,
        last: date,
        user: str,
        scope: str,
    ) -> None:
        response = await client.get(
            SERIES,
            params={
                "metric": metric,
                "interval": interval,
                "start": start,
                "end": end,
                "scope": scope,
            },
            headers=headers_for(user),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body[0]["period_start"] == first.isoformat()
        assert body[-1]["period_start"] == last.isoformat()
        expected = expected_series(
            world, None if scope == "all" else user, metric, interval, first, last
        )
        got = as_dict(body)
        assert {day: value for day, value in got.items() if value} == expected
        # Every period is listed once, in order, the empty ones as 0.
        assert list(got) == sorted(got)
        assert len(got) == len(body)

    async def test_week_boundary_is_monday_midnight_utc(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        """A2 was created on Sunday 23:59:59.999999, A3 on the next Monday at 00:00."""
        body = (
            await client.get(
                SERIES,
                params={"interval": "week", "start": "2025-03-03", "end": "2025-03-10"},
                headers=headers_for("alice"),
            )
        ).json()
        assert body == [
            {"period_start": "2025-03-03", "value": 2},  # A1 (Monday) and A2 (Sunday night)
            {"period_start": "2025-03-10", "value": 1},  # A3
        ]

    async def test_month_boundary(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        """A4 was created at 23:00 on 31 March; its file arrived at 00:00 on 1 April."""
        params = {"interval": "month", "start": "2025-03-01", "end": "2025-04-30"}
        created = (await client.get(SERIES, params=params, headers=headers_for("alice"))).json()
        assert created == [
            {"period_start": "2025-03-01", "value": 4},
            {"period_start": "2025-04-01", "value": 0},
        ]
        uploaded = (
            await client.get(
                SERIES, params={**params, "metric": "bytes_uploaded"}, headers=headers_for("alice")
            )
        ).json()
        assert uploaded == [
            # A1 1000 + 2000, A2 1500 + 1500, A3 4000, B1 (member) 3000: valid files only.
            {"period_start": "2025-03-01", "value": 13_000},
            {"period_start": "2025-04-01", "value": 7_000},
        ]

    async def test_buckets_ignore_the_session_time_zone(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        world: World,
        headers_for: Headers,
    ) -> None:
        # SQLite has no session time zone; there the same days must come out as stored (UTC).
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SET TIME ZONE 'Pacific/Auckland'"))
        body = (
            await client.get(
                SERIES,
                params={"interval": "day", "start": "2025-03-09", "end": "2025-03-10"},
                headers=headers_for("alice"),
            )
        ).json()
        assert body == [
            {"period_start": "2025-03-09", "value": 1},
            {"period_start": "2025-03-10", "value": 1},
        ]

    async def test_researcher_sees_only_their_studies(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        """Bob's B2 and B3 were created in the range; carol sees neither."""
        params = {"interval": "month", "start": "2025-03-01", "end": "2025-04-30"}
        carol = as_dict(
            (await client.get(SERIES, params=params, headers=headers_for("carol"))).json()
        )
        everyone = as_dict(
            (
                await client.get(
                    SERIES, params={**params, "scope": "all"}, headers=headers_for("adam")
                )
            ).json()
        )
        assert carol == {date(2025, 3, 1): 1, date(2025, 4, 1): 1}  # A2 (editor), C1
        assert everyone == {date(2025, 3, 1): 5, date(2025, 4, 1): 2}


class TestTimeseriesRange:
    @pytest.mark.parametrize(("interval", "periods"), [("day", 30), ("week", 26), ("month", 12)])
    async def test_default_window_ends_today(
        self,
        client: httpx.AsyncClient,
        world: World,
        headers_for: Headers,
        interval: str,
        periods: int,
    ) -> None:
        body = (
            await client.get(SERIES, params={"interval": interval}, headers=headers_for("alice"))
        ).json()
        assert len(body) == periods
        last = date.fromisoformat(body[-1]["period_start"])
        assert last <= today() < last + timedelta(days=32)
        if interval == "week":
            assert all(date.fromisoformat(p["period_start"]).weekday() == 0 for p in body)
        if interval == "month":
            assert all(p["period_start"].endswith("-01") for p in body)
        # The world is from 2025; nothing of it falls in a window ending today.
        assert all(p["value"] == 0 for p in body)

    async def test_defaults_are_studies_created_by_day(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        body = (
            await client.get(
                SERIES,
                params={"start": "2025-03-03", "end": "2025-03-03"},
                headers=headers_for("alice"),
            )
        ).json()
        assert body == [{"period_start": "2025-03-03", "value": 1}]

    async def test_start_after_end_is_refused(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        response = await client.get(
            SERIES,
            params={"start": "2025-03-02", "end": "2025-03-01"},
            headers=headers_for("alice"),
        )
        assert response.status_code == 422
        assert response.json()["code"] == "INVALID_DATE_RANGE"

    async def test_more_than_the_maximum_of_periods_is_refused(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        start = date(2020, 1, 1)
        fits = await client.get(
            SERIES,
            params={
                "start": start.isoformat(),
                "end": (start + timedelta(days=MAX_PERIODS - 1)).isoformat(),
            },
            headers=headers_for("alice"),
        )
        assert fits.status_code == 200
        assert len(fits.json()) == MAX_PERIODS
        response = await client.get(
            SERIES,
            params={
                "start": start.isoformat(),
                "end": (start + timedelta(days=MAX_PERIODS)).isoformat(),
            },
            headers=headers_for("alice"),
        )
        assert response.status_code == 422
        assert response.json()["code"] == "TOO_MANY_PERIODS"
        # The same range is fine by month.
        monthly = await client.get(
            SERIES,
            params={
                "start": start.isoformat(),
                "end": (start + timedelta(days=MAX_PERIODS)).isoformat(),
                "interval": "month",
            },
            headers=headers_for("alice"),
        )
        assert monthly.status_code == 200

    @pytest.mark.parametrize(
        "params",
        [
            {"metric": "studies_deleted"},
            {"interval": "year"},
            {"start": "2025-02-30"},
            {"end": "yesterday"},
        ],
    )
    async def test_malformed_parameters(
        self,
        client: httpx.AsyncClient,
        world: World,
        headers_for: Headers,
        params: dict[str, str],
    ) -> None:
        response = await client.get(SERIES, params=params, headers=headers_for("alice"))
        assert response.status_code == 422
        assert response.json()["code"] == "VALIDATION_ERROR"


class TestTimeseriesAccess:
    async def test_researcher_asking_for_all_is_forbidden(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        response = await client.get(SERIES, params={"scope": "all"}, headers=headers_for("bob"))
        assert response.status_code == 403
        assert response.json()["code"] == "FORBIDDEN"

    async def test_anonymous_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.get(SERIES)
        assert (response.status_code, response.json()["code"]) == (401, "INVALID_TOKEN")
