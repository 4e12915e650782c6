"""GET /api/v1/dashboard/summary and GET /api/v1/stats against a known world: every number is
compared with the same figure computed in Python from the world's description."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from src.config import Settings
from src.dashboard.cache import PublicStatsCache
from src.dashboard.constants import RECENT_EVENTS_LIMIT
from src.dashboard.schemas import PublicStats
from src.database import today
from src.study.constants import MemberRole, StudyStatus
from src.study.models import Study, StudyEvent
from tests.dashboard.world import (
    World,
    at,
    expected_events,
    expected_public_stats,
    expected_queue,
    expected_summary_numbers,
    expected_users,
)
from tests.factories import auth_headers, create_user
from tests.study.factories import add_member, create_study

SUMMARY = "/api/v1/dashboard/summary"
STATS = "/api/v1/stats"
NUMBERS = ("studies", "samples", "files", "bytes", "reads", "bases")

Headers = Callable[[str], dict[str, str]]


def numbers(body: dict[str, object]) -> dict[str, object]:
    return {key: body[key] for key in NUMBERS}


class TestPublicStats:
    async def test_counts_public_studies_only(
        self, client: httpx.AsyncClient, world: World
    ) -> None:
        response = await client.get(STATS)
        assert response.status_code == 200, response.text
        expected = expected_public_stats(world)
        assert response.json() == expected
        # The world's public studies are A3 and B1: drafts, studies in review and the embargoed
        # A4 (published, release date in 2099) are not counted.
        assert expected == {
            "studies": 2,
            "samples": 4,
            "files": 3,
            "bytes": 10_000,
            "organisms": 3,
        }

    async def test_a_signed_in_reviewer_gets_the_same_public_totals(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        response = await client.get(STATS, headers=headers_for("rita"))
        assert response.json() == expected_public_stats(world)

    async def test_an_embargo_ending_today_makes_a_study_public(
        self, client: httpx.AsyncClient, session: AsyncSession, world: World
    ) -> None:
        await session.execute(
            update(Study).where(Study.id == world.ids["A4"]).values(release_date=today())
        )
        world.spec("A4").release_date = today()
        body = (await client.get(STATS)).json()
        assert body == expected_public_stats(world)
        assert body["studies"] == 3

    async def test_a_publication_shows_within_the_stated_age(
        self, app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, world: World
    ) -> None:
        now = [1000.0]
        app.state.public_stats = PublicStatsCache(max_age=5, clock=lambda: now[0])
        before = (await client.get(STATS)).json()
        assert before == expected_public_stats(world)
        await session.execute(
            update(Study).where(Study.id == world.ids["A4"]).values(release_date=today())
        )
        world.spec("A4").release_date = today()
        now[0] += 4.9
        assert (await client.get(STATS)).json() == before  # kept: younger than 5 s
        now[0] += 0.2
        after = (await client.get(STATS)).json()
        assert after == expected_public_stats(world)
        assert after["studies"] == before["studies"] + 1

    async def test_the_age_is_stated_in_the_api_description(
        self, client: httpx.AsyncClient
    ) -> None:
        document = (await client.get("/openapi.json")).json()
        description = document["paths"]["/api/v1/stats"]["get"]["description"]
        assert "STATS_MAX_AGE_SECONDS" in description
        assert "default 5" in description

    async def test_callers_during_a_recount_get_the_previous_totals(self) -> None:
        now = [0.0]
        cache = PublicStatsCache(max_age=5, clock=lambda: now[0])
        counted = [PublicStats(studies=n, samples=0, files=0, bytes=0, organisms=0) for n in (1, 2)]
        release = anyio.Event()

        async def slow() -> PublicStats:
            await release.wait()
            return counted.pop(0)

        async def fast() -> PublicStats:
            return counted.pop(0)

        assert (await cache.get(fast)).studies == 1
        now[0] = 10.0
        results: list[int] = []
        async with anyio.create_task_group() as group:

            async def recount() -> None:
                results.append((await cache.get(slow)).studies)

            group.start_soon(recount)
            await anyio.lowlevel.checkpoint()
            results.append((await cache.get(slow)).studies)  # does not wait for the recount
            release.set()
        assert results == [1, 2]
        assert (await cache.get(fast)).studies == 2  # fresh again: not recounted

    async def test_empty_database_gives_zeros(self, client: httpx.AsyncClient) -> None:
        response = await client.get(STATS)
        assert response.json() == {
            "studies": 0,
            "samples": 0,
            "files": 0,
            "bytes": 0,
            "organisms": 0,
        }


class TestSummaryOfMyStudies:
    @pytest.mark.parametrize("user", ["alice", "bob", "carol", "rita"])
    async def test_numbers_cover_owned_and_member_studies(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers, user: str
    ) -> None:
        response = await client.get(SUMMARY, headers=headers_for(user))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["scope"] == "mine"
        assert numbers(body) == expected_summary_numbers(world, user)
        assert body["users"] is None
        assert body["review_queue"] is None

    async def test_alice_numbers_by_hand(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        """The same figures worked out by hand, in case the Python model shares a mistake."""
        body = (await client.get(SUMMARY, headers=headers_for("alice"))).json()
        # A1-A4 owned, B1 as a viewer.
        assert body["studies"] == {
            "total": 5,
            "by_status": {"draft": 1, "in_review": 1, "published": 3},
            "embargoed": 1,
        }
        assert body["samples"] == 8
        assert body["files"] == {"total": 12, "valid": 8, "invalid": 2, "uploading": 2}
        assert body["bytes"] == 1_000 + 2_000 + 1_500 + 1_500 + 4_000 + 7_000 + 3_000 + 3_000
        assert body["reads"] == 2_300
        assert body["bases"] == 230_000

    async def test_recent_events_are_the_scoped_ones_newest_first(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        body = (await client.get(SUMMARY, headers=headers_for("carol"))).json()
        events = body["recent_events"]
        assert [(e["study"]["accession"], e["action"]) for e in events] == [
            (world.accessions[key], action)
            for key, action in expected_events(world, "carol", RECENT_EVENTS_LIMIT)
        ]
        # Carol sees A2 (editor) and C1 (owner), never bob's or alice's other studies.
        assert {e["study"]["id"] for e in events} == {
            str(world.ids["A2"]),
            str(world.ids["C1"]),
        }
        latest = events[0]
        assert latest["at"] == "2025-04-02T10:00:00Z"
        assert latest["actor"] == {"id": str(world.users["carol"].id), "full_name": "Carol"}
        assert latest["detail"] == {"note": "study.created"}
        assert latest["study"]["title"] == "Study C1"

    async def test_event_without_actor_has_actor_null(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        events = (await client.get(SUMMARY, headers=headers_for("alice"))).json()["recent_events"]
        published = next(e for e in events if e["study"]["id"] == str(world.ids["A3"]))
        assert published["action"] == "study.published"
        assert published["actor"] is None

    async def test_recent_events_are_capped(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        world: World,
        headers_for: Headers,
    ) -> None:
        start = at("2025-06-01 00:00")
        for minute in range(RECENT_EVENTS_LIMIT + 5):
            session.add(
                StudyEvent(
                    study_id=world.ids["C1"],
                    actor_id=world.users["carol"].id,
                    action="study.updated",
                    detail={"minute": minute},
                    at=start + timedelta(minutes=minute),
                )
            )
        await session.flush()
        events = (await client.get(SUMMARY, headers=headers_for("carol"))).json()["recent_events"]
        assert len(events) == RECENT_EVENTS_LIMIT
        assert [e["detail"]["minute"] for e in events] == list(
            range(RECENT_EVENTS_LIMIT + 4, 4, -1)
        )

    async def test_a_new_user_sees_zeros(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        user = await create_user(session)
        body = (await client.get(SUMMARY, headers=auth_headers(settings, user))).json()
        assert numbers(body) == {
            "studies": {
                "total": 0,
                "by_status": {"draft": 0, "in_review": 0, "published": 0},
                "embargoed": 0,
            },
            "samples": 0,
            "files": {"total": 0, "valid": 0, "invalid": 0, "uploading": 0},
            "bytes": 0,
            "reads": 0,
            "bases": 0,
        }
        assert body["recent_events"] == []

    async def test_a_member_counts_the_embargoed_studies_they_are_a_member_of(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        owner, member = await create_user(session), await create_user(session)
        embargoed = await create_study(
            session,
            owner=owner,
            status=StudyStatus.PUBLISHED,
            release_date=today() + timedelta(days=30),
        )
        await create_study(session, owner=member, status=StudyStatus.PUBLISHED)
        await add_member(session, study=embargoed, user=member, role=MemberRole.VIEWER)
        body = (await client.get(SUMMARY, headers=auth_headers(settings, member))).json()
        assert body["studies"] == {
            "total": 2,
            "by_status": {"draft": 0, "in_review": 0, "published": 2},
            "embargoed": 1,
        }
        body = (await client.get(SUMMARY, headers=auth_headers(settings, owner))).json()
        assert (body["studies"]["total"], body["studies"]["embargoed"]) == (1, 1)


class TestSummaryOfAllStudies:
    @pytest.mark.parametrize("user", ["rita", "adam"])
    async def test_staff_see_every_study_accounts_and_the_queue(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers, user: str
    ) -> None:
        response = await client.get(SUMMARY, params={"scope": "all"}, headers=headers_for(user))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["scope"] == "all"
        assert numbers(body) == expected_summary_numbers(world, None)
        assert body["users"] == expected_users(world)
        assert [item["accession"] for item in body["review_queue"]] == [
            world.accessions[key] for key in expected_queue(world)
        ]
        assert [e["study"]["accession"] for e in body["recent_events"]] == [
            world.accessions[key] for key, _ in expected_events(world, None, RECENT_EVENTS_LIMIT)
        ]

    async def test_queue_is_oldest_submission_first_with_waiting_time(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        before = datetime.now(UTC)
        body = (
            await client.get(SUMMARY, params={"scope": "all"}, headers=headers_for("rita"))
        ).json()
        after = datetime.now(UTC)
        queue = body["review_queue"]
        # B3 was created after A2 but submitted before it.
        assert [item["accession"] for item in queue] == [
            world.accessions["B3"],
            world.accessions["A2"],
            world.accessions["B2"],
        ]
        first = queue[0]
        assert first["id"] == str(world.ids["B3"])
        assert first["title"] == "Study B3"
        assert first["owner"] == {"id": str(world.users["bob"].id), "full_name": "Bob"}
        assert first["submitted_at"] == "2025-03-20T08:00:00Z"
        submitted = at("2025-03-20 08:00")
        low = int((before - submitted).total_seconds()) - 1
        high = int((after - submitted).total_seconds()) + 1
        assert low <= first["waiting_seconds"] <= high

    async def test_users_are_counted_by_role_and_activity(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        body = (
            await client.get(SUMMARY, params={"scope": "all"}, headers=headers_for("adam"))
        ).json()
        assert body["users"] == {
            "total": 6,
            "active": 5,
            "by_role": {"researcher": 4, "reviewer": 1, "admin": 1},
        }

    async def test_reviewer_default_scope_is_their_own_studies(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        body = (await client.get(SUMMARY, headers=headers_for("rita"))).json()
        assert body["scope"] == "mine"
        assert body["studies"]["total"] == 0
        assert body["users"] is None


class TestSummaryAccess:
    async def test_researcher_asking_for_all_is_forbidden(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        response = await client.get(SUMMARY, params={"scope": "all"}, headers=headers_for("alice"))
        assert response.status_code == 403
        assert response.json()["code"] == "FORBIDDEN"

    async def test_anonymous_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.get(SUMMARY)
        assert response.status_code == 401
        assert response.json()["code"] == "INVALID_TOKEN"

    async def test_unknown_scope_is_malformed(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        response = await client.get(
            SUMMARY, params={"scope": "public"}, headers=headers_for("rita")
        )
        assert response.status_code == 422
        assert response.json()["code"] == "VALIDATION_ERROR"


class TestQueryCount:
    """A fixed number of statements per request, whatever the amount of data."""

    @pytest.fixture(autouse=True)
    def recount_public_stats_every_time(self, app: FastAPI) -> None:
        """The public totals are kept for a while (tested below); here every call counts."""
        app.state.public_stats = PublicStatsCache(max_age=0)

    async def _count(
        self, client: httpx.AsyncClient, statements: list[str], url: str, **kwargs: object
    ) -> int:
        statements.clear()
        response = await client.get(url, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        return len(statements)

    async def test_statements_do_not_grow_with_rows(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        world: World,
        headers_for: Headers,
        statements: list[str],
    ) -> None:
        urls = [
            (SUMMARY, {"scope": "all"}),
            (SUMMARY, {}),
            ("/api/v1/dashboard/timeseries", {"scope": "all", "metric": "bytes_uploaded"}),
            ("/api/v1/dashboard/breakdown", {"scope": "all", "by": "organism"}),
            (STATS, {}),
        ]
        reviewer = headers_for("rita")
        before = [
            await self._count(client, statements, url, params=params, headers=reviewer)
            for url, params in urls
        ]
        for number in range(10):
            await create_study(
                session,
                owner=world.users["alice"],
                title=f"more {number}",
                samples=3,
                files=True,
                status=StudyStatus.PUBLISHED,
            )
        after = [
            await self._count(client, statements, url, params=params, headers=reviewer)
            for url, params in urls
        ]
        assert before == after
        # Summary (scope=all): the caller, studies with their kept counts, events, accounts,
        # queue.
        assert before[0] == 5
