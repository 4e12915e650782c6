"""Studies through the HTTP API: creation and accessions, lists and search, ETags, the
lifecycle with every refused transition, members, deletion, and the audit trail."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User, UserRole
from src.config import Settings
from src.database import today
from src.schemas import Paginated
from src.study.config import StudyConfig
from src.study.constants import FileStatus, MemberRole, ReadKind, StudyStatus
from src.study.models import Sample, SampleFile, Study, StudyEvent
from src.study.schemas import StudyRead
from tests.factories import auth_headers, create_user
from tests.study.concurrency import create_concurrently
from tests.study.factories import add_file, add_member, create_study, names_digest

API = "/api/v1/studies"


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session, full_name="Ada Owner")


async def actions(session: AsyncSession, study_id: object) -> list[str]:
    rows = await session.scalars(
        select(StudyEvent.action).where(StudyEvent.study_id == study_id).order_by(StudyEvent.at)
    )
    return list(rows.all())


class TestCreateStudy:
    async def test_creates_a_draft_with_an_accession(
        self, client: httpx.AsyncClient, headers: dict[str, str], owner: User
    ) -> None:
        response = await client.post(
            API,
            headers=headers,
            json={"title": "Atlas", "description": "d", "authors": ["A. One", "B. Two"]},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "draft"
        assert body["accession"].startswith("MOSAIC-")
        assert len(body["accession"].split("-")[1]) >= 4
        assert body["authors"] == ["A. One", "B. Two"]
        assert body["owner"] == {"id": str(owner.id), "full_name": "Ada Owner"}
        assert body["my_role"] == "owner"
        assert (body["sample_count"], body["file_count"], body["total_bytes"]) == (0, 0, 0)
        assert response.headers["location"] == f"{API}/{body['accession']}"
        assert response.headers["etag"]

    async def test_accessions_are_consecutive(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        numbers = []
        for title in ("one", "two", "three"):
            response = await client.post(API, headers=headers, json={"title": title})
            numbers.append(int(response.json()["accession"].split("-")[1]))
        assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]

    async def test_inline_samples_are_created_and_normalised(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        response = await client.post(
            API,
            headers=headers,
            json={
                "title": "With samples",
                "samples": [
                    {"sample_id": "LIV_1", "organism": "mus musculus", "sex": "F"},
                    {"sample_id": "liv_2", "organism": "Homo sapiens", "attributes": {"x": "1"}},
                ],
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["sample_count"] == 2
        samples = (
            await client.get(f"{API}/{response.json()['accession']}/samples", headers=headers)
        ).json()["items"]
        by_id = {s["sample_id"]: s for s in samples}
        assert by_id["LIV_1"]["organism"] == "Mus musculus"
        assert by_id["LIV_1"]["sex"] == "female"
        assert by_id["LIV_1"]["sample"] == "LIV_1"
        assert by_id["liv_2"]["attributes"] == {"x": "1"}

    async def test_one_bad_inline_sample_creates_nothing(
        self, client: httpx.AsyncClient, headers: dict[str, str], session: AsyncSession
    ) -> None:
        before = (await session.execute(select(func.count(Study.id)))).scalar_one()
        response = await client.post(
            API,
            headers=headers,
            json={
                "title": "Bad",
                "samples": [
                    {"sample_id": "OK1", "organism": "Mus musculus"},
                    {"sample_id": "bad id!", "organism": "Mus musculus", "sex": "robot"},
                    {"sample_id": "ok1", "organism": "Mus musculus"},
                ],
            },
        )
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "INVALID_SAMPLE"
        codes = {(e["index"], e["code"]) for e in body["errors"]}
        assert (1, "INVALID_SAMPLE_ID") in codes
        assert (1, "INVALID_SEX") in codes
        assert (2, "DUPLICATE_SAMPLE_ID") in codes
        after = (await session.execute(select(func.count(Study.id)))).scalar_one()
        assert after == before

    @pytest.mark.parametrize(
        "payload",
        [
            {},
            {"title": ""},
            {"title": "   "},
            {"title": "x" * 301},
            {"title": 5},
            {"title": "ok", "authors": "not a list"},
            {"title": "ok", "authors": [""]},
            {"title": "ok", "release_date": "next week"},
            {"title": "ok", "release_date": 0},
            {"title": "nul\u0000"},
            {"title": "bell\u0007"},
            {"title": "two\nlines"},
            {"title": "ok", "authors": ["Ada\u0000"]},
            {"title": "ok", "description": "nul\u0000"},
            {"title": "ok", "description": "escape\u001b[31m"},
            {"title": "ok", "release_date": 1735689600},
            {"title": "ok", "release_date": "2030-01-01T00:00:00"},
            {"title": "ok", "unknown": 1},
            {"title": "ok", "samples": [{"sample_id": ["x"]}]},
        ],
    )
    async def test_malformed_input_is_422(
        self, client: httpx.AsyncClient, headers: dict[str, str], payload: object
    ) -> None:
        response = await client.post(API, headers=headers, json=payload)
        assert response.status_code == 422
        assert response.json()["code"] in {"VALIDATION_ERROR", "INVALID_SAMPLE"}

    async def test_a_description_keeps_tabs_and_line_breaks(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        text = "Line one\tcell\r\nLine two\nLine three"
        response = await client.post(API, headers=headers, json={"title": "t", "description": text})
        assert response.status_code == 201, response.text
        assert response.json()["description"] == text

    async def test_anonymous_cannot_create(self, client: httpx.AsyncClient) -> None:
        response = await client.post(API, json={"title": "x"})
        assert (response.status_code, response.json()["code"]) == (401, "INVALID_TOKEN")


class TestGetStudy:
    async def test_by_uuid_and_by_accession(
        self, client: httpx.AsyncClient, headers: dict[str, str], session: AsyncSession, owner: User
    ) -> None:
        study = await create_study(session, owner=owner)
        by_id = await client.get(f"{API}/{study.id}", headers=headers)
        by_accession = await client.get(f"{API}/{study.accession}", headers=headers)
        assert by_id.status_code == by_accession.status_code == 200
        assert by_id.json() == by_accession.json()
        assert by_id.headers["etag"] == by_accession.headers["etag"]

    async def test_unknown_is_404(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        for reference in ("MOSAIC-99999", "00000000-0000-0000-0000-000000000000", "x%27--"):
            response = await client.get(f"{API}/{reference}", headers=headers)
            assert response.status_code == 404
            assert response.json()["code"] == "STUDY_NOT_FOUND"

    async def test_counts_are_right(
        self, client: httpx.AsyncClient, headers: dict[str, str], session: AsyncSession, owner: User
    ) -> None:
        study = await create_study(session, owner=owner, samples=3)
        samples = (await session.scalars(select(Sample).where(Sample.study_id == study.id))).all()
        await add_file(session, sample=samples[0], size=10)
        await add_file(session, sample=samples[0], size=20)
        await add_file(session, sample=samples[1], size=5, status=FileStatus.INVALID)
        body = (await client.get(f"{API}/{study.accession}", headers=headers)).json()
        assert (body["sample_count"], body["file_count"], body["total_bytes"]) == (3, 3, 35)


class TestListStudies:
    async def test_scopes(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        alice = await create_user(session)
        bob = await create_user(session)
        reviewer = await create_user(session, role=UserRole.REVIEWER)
        mine = await create_study(session, owner=alice, title="alice draft")
        shared = await create_study(session, owner=bob, title="bob shares")
        await add_member(session, study=shared, user=alice, role=MemberRole.VIEWER)
        public = await create_study(
            session, owner=bob, title="bob public", status=StudyStatus.PUBLISHED
        )
        embargoed = await create_study(
            session,
            owner=bob,
            title="bob embargoed",
            status=StudyStatus.PUBLISHED,
            release_date=today() + timedelta(days=3),
        )
        released = await create_study(
            session,
            owner=bob,
            title="bob released today",
            status=StudyStatus.PUBLISHED,
            release_date=today(),
        )

        async def accessions(headers: dict[str, str], **params: str) -> set[str]:
            response = await client.get(API, headers=headers, params={"page_size": "100", **params})
            assert response.status_code == 200, response.text
            return {item["accession"] for item in response.json()["items"]}

        as_alice = auth_headers(settings, alice)
        assert await accessions(as_alice) == {mine.accession, shared.accession}
        assert await accessions({}) >= {public.accession, released.accession}
        assert embargoed.accession not in await accessions({})
        assert mine.accession not in await accessions({}, scope="public")
        every = await accessions(auth_headers(settings, reviewer), scope="all")
        assert {mine.accession, shared.accession, embargoed.accession} <= every
        refused = await client.get(API, headers=as_alice, params={"scope": "all"})
        assert (refused.status_code, refused.json()["code"]) == (403, "FORBIDDEN")

    async def test_search_filters_sort_and_paging(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings, owner: User
    ) -> None:
        headers = auth_headers(settings, owner)
        await create_study(session, owner=owner, title="Zebrafish fin 100%", authors=["Kim"])
        await create_study(session, owner=owner, title="mouse liver", description="hepatocytes")
        await create_study(session, owner=owner, title="Another", authors=["O'Brien_X"])

        async def titles(**params: str) -> list[str]:
            response = await client.get(API, headers=headers, params=params)
            assert response.status_code == 200, response.text
            return [item["title"] for item in response.json()["items"]]

        assert await titles(q="HEPATO") == ["mouse liver"]
        assert await titles(q="kim") == ["Zebrafish fin 100%"]
        assert await titles(q="100%") == ["Zebrafish fin 100%"]
        assert await titles(q="%") == ["Zebrafish fin 100%"]  # a literal %, not a wildcard
        assert await titles(q="_x") == ["Another"]  # a literal _, not a wildcard
        assert await titles(q="o'brien") == ["Another"]
        assert await titles(sort="title") == ["Another", "mouse liver", "Zebrafish fin 100%"]
        page = (await client.get(API, headers=headers, params={"page_size": 2, "page": 2})).json()
        assert page["total"] == 3
        assert (page["page"], page["page_size"], len(page["items"])) == (2, 2, 1)
        refused = await client.get(API, headers=headers, params={"page_size": 101})
        assert (refused.status_code, refused.json()["code"]) == (422, "VALIDATION_ERROR")

    async def test_totals_and_roles_in_every_scope(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        alice = await create_user(session)
        bob = await create_user(session)
        reviewer = await create_user(session, role=UserRole.REVIEWER)
        draft = await create_study(session, owner=alice, title="alice draft")
        published = await create_study(
            session, owner=alice, title="alice public", status=StudyStatus.PUBLISHED
        )
        shared = await create_study(session, owner=bob, title="bob shares")
        await add_member(session, study=shared, user=alice, role=MemberRole.EDITOR)
        await create_study(session, owner=bob, title="bob alone")
        # Published but not public yet: counted in "all", not in the public total.
        await create_study(
            session,
            owner=bob,
            title="bob embargoed",
            status=StudyStatus.PUBLISHED,
            release_date=today() + timedelta(days=30),
        )

        async def listed(headers: dict[str, str], **params: str | int) -> dict[str, object]:
            response = await client.get(API, headers=headers, params=params)
            assert response.status_code == 200, response.text
            body: dict[str, object] = response.json()
            return body

        def roles(page: dict[str, object]) -> dict[str, str]:
            items = page["items"]
            assert isinstance(items, list)
            return {item["accession"]: item["my_role"] for item in items}

        as_alice = auth_headers(settings, alice)
        everything = await listed(as_alice, page_size=100)
        assert everything["total"] == 3
        assert roles(everything) == {
            draft.accession: "owner",
            published.accession: "owner",
            shared.accession: "editor",
        }
        # Every page of a list tells the same total, a page past the end too.
        for number, expected in ((1, 2), (2, 1), (3, 0)):
            page = await listed(as_alice, page_size=2, page=number)
            assert (page["total"], len(page["items"])) == (3, expected)  # type: ignore[arg-type]
        # The owner of a public study is still its owner in the public list.
        assert roles(await listed(as_alice, scope="public"))[published.accession] == "owner"
        anonymous = await listed({}, page_size=100)
        assert roles(anonymous)[published.accession] == "public"
        assert set(roles(anonymous).values()) == {"public"}
        assert anonymous["total"] == len(roles(anonymous))
        past_end = await listed({}, page_size=100, page=2)
        assert (past_end["total"], past_end["items"]) == (anonymous["total"], [])
        every = await listed(auth_headers(settings, reviewer), scope="all", page_size=100)
        assert every["total"] == len(roles(every))
        assert set(roles(every).values()) == {"reviewer"}
        searched = await listed(auth_headers(settings, reviewer), scope="all", q="alice")
        assert (searched["total"], len(searched["items"])) == (2, 2)  # type: ignore[arg-type]

    async def test_the_page_is_written_as_its_response_model_writes_it(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings, owner: User
    ) -> None:
        # The list writes its rows' values itself (src/schemas.plain_json), not through the
        # response model: every byte must be what the model would have written.
        other = await create_user(session)
        await create_study(
            session,
            owner=owner,
            title='Zébrafish "fin" \\ 中文 😀 </script>',
            description="Line one\nline two\ttabbed\r\nend",
            authors=["O'Brien", "Ünïcode"],
            samples=2,
            files=True,
            status=StudyStatus.PUBLISHED,
            release_date=today() - timedelta(days=1),
        )
        shared = await create_study(session, owner=other, title="shared with the owner")
        await add_member(session, study=shared, user=owner, role=MemberRole.VIEWER)
        await create_study(session, owner=owner, status=StudyStatus.IN_REVIEW)
        adapter = TypeAdapter(Paginated[StudyRead])
        for params in ({}, {"page_size": 2, "page": 2}, {"page": 9}, {"q": "zébrafish"}):
            response = await client.get(API, headers=auth_headers(settings, owner), params=params)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/json"
            assert adapter.dump_json(adapter.validate_json(response.content)) == response.content
        page = adapter.validate_json(response.content)
        assert [(item.total_bytes > 0, item.my_role) for item in page.items] == [(True, "owner")]

    async def test_a_search_counts_up_to_its_limit(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        owner: User,
    ) -> None:
        # A search counts its matches up to SEARCH_TOTAL_LIMIT: past it, total is the limit and
        # total_exact is false; exact_total=true counts them all. Lists without q always count.
        app.state.study_config = StudyConfig(search_total_limit=3)
        other = await create_user(session)
        released = today() - timedelta(days=1)
        for _ in range(4):
            await create_study(
                session,
                owner=owner,
                title="gut biome",
                status=StudyStatus.PUBLISHED,
                release_date=released,
            )
        for _ in range(2):
            shared = await create_study(session, owner=other, title="gut biome, shared")
            await add_member(session, study=shared, user=owner, role=MemberRole.VIEWER)
        await create_study(session, owner=owner, title="Gut lining")
        reviewer = await create_user(session, role=UserRole.REVIEWER)

        async def page_of(headers: dict[str, str], **params: str | int) -> tuple[int, bool, int]:
            response = await client.get(API, headers=headers, params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            return body["total"], body["total_exact"], len(body["items"])

        mine = auth_headers(settings, owner)
        every = auth_headers(settings, reviewer)
        # Exactly at the limit is exact; one more is not.
        assert await page_of(mine, q="lining") == (1, True, 1)
        assert await page_of({}, q="gut biome") == (3, False, 4)
        assert await page_of({}, q="gut biome", exact_total="true") == (4, True, 4)
        assert await page_of(every, scope="all", q="GUT") == (3, False, 7)
        assert await page_of(every, scope="all", q="gut", exact_total="true") == (7, True, 7)
        # "mine" counts what one owns and what one is a member of, each up to the limit.
        assert await page_of(mine, q="shared") == (2, True, 2)
        assert await page_of(mine, q="gut") == (3, False, 7)
        assert await page_of(mine, q="gut", exact_total="true") == (7, True, 7)
        # A page past the end says the same total.
        assert await page_of(mine, q="gut", page=3, page_size=5) == (3, False, 0)
        # Without a search every total is exact, whatever the limit.
        assert await page_of(mine) == (7, True, 7)
        assert await page_of({}) == (4, True, 4)
        assert await page_of(mine, status="draft") == (3, True, 3)

    async def test_organism_and_status_filters(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings, owner: User
    ) -> None:
        headers = auth_headers(settings, owner)
        mice = await create_study(session, owner=owner, samples=1)
        await create_study(session, owner=owner, status=StudyStatus.IN_REVIEW)
        found = (await client.get(API, headers=headers, params={"organism": "mus MUSCULUS"})).json()
        assert [s["accession"] for s in found["items"]] == [mice.accession]
        in_review = (await client.get(API, headers=headers, params={"status": "in_review"})).json()
        assert [s["status"] for s in in_review["items"]] == ["in_review"]


class TestUpdateStudy:
    async def test_changes_fields_and_etag(
        self, client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str], owner: User
    ) -> None:
        study = await create_study(session, owner=owner)
        first = await client.get(f"{API}/{study.accession}", headers=headers)
        response = await client.patch(
            f"{API}/{study.accession}",
            headers={**headers, "If-Match": first.headers["etag"]},
            json={"title": "Renamed", "authors": ["Z"]},
        )
        assert response.status_code == 200, response.text
        assert response.json()["title"] == "Renamed"
        assert response.headers["etag"] != first.headers["etag"]
        stale = await client.patch(
            f"{API}/{study.accession}",
            headers={**headers, "If-Match": first.headers["etag"]},
            json={"title": "Again"},
        )
        assert stale.status_code == 412
        assert stale.json()["code"] == "PRECONDITION_FAILED"
        assert "study.updated" in await actions(session, study.id)

    async def test_renamed_study_is_found_by_its_new_title(
        self, client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str], owner: User
    ) -> None:
        study = await create_study(session, owner=owner, title="old name")
        await client.patch(f"{API}/{study.accession}", headers=headers, json={"title": "Fresh"})
        found = (await client.get(API, headers=headers, params={"q": "fresh"})).json()
        assert [s["accession"] for s in found["items"]] == [study.accession]


class TestLifecycle:
    async def test_submit_review_publish(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        headers: dict[str, str],
        owner: User,
    ) -> None:
        reviewer = await create_user(session, role=UserRole.REVIEWER)
        study = await create_study(session, owner=owner, samples=1, files=True)
        url = f"{API}/{study.accession}"
        submitted = await client.post(f"{url}/submit", headers=headers)
        assert submitted.status_code == 200, submitted.text
        assert submitted.json()["status"] == "in_review"
        assert submitted.json()["submitted_at"]
        locked = await client.patch(url, headers=headers, json={"title": "no"})
        assert locked.status_code == 409
        assert locked.json()["code"] == "STUDY_LOCKED"
        approved = await client.post(
            f"{url}/review",
            headers=auth_headers(settings, reviewer),
            json={"decision": "approve", "comment": "Good."},
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "published"
        assert approved.json()["published_at"]
        assert (await client.get(url)).status_code == 200  # public now
        assert await actions(session, study.id) == [
            "study.created",
            "study.submitted",
            "study.approved",
        ]

    async def test_request_changes_needs_a_comment_and_returns_to_draft(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        owner: User,
    ) -> None:
        reviewer = await create_user(session, role=UserRole.REVIEWER)
        study = await create_study(session, owner=owner, status=StudyStatus.IN_REVIEW)
        url = f"{API}/{study.accession}/review"
        as_reviewer = auth_headers(settings, reviewer)
        missing = await client.post(url, headers=as_reviewer, json={"decision": "request_changes"})
        assert missing.status_code == 422
        assert missing.json()["code"] == "COMMENT_REQUIRED"
        sent_back = await client.post(
            url, headers=as_reviewer, json={"decision": "request_changes", "comment": "Fix S1"}
        )
        assert sent_back.status_code == 200
        assert sent_back.json()["status"] == "draft"
        assert sent_back.json()["review_comment"] == "Fix S1"
        assert "study.changes_requested" in await actions(session, study.id)

    async def test_withdraw(
        self, client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str], owner: User
    ) -> None:
        study = await create_study(session, owner=owner, status=StudyStatus.IN_REVIEW)
        response = await client.post(f"{API}/{study.accession}/withdraw", headers=headers)
        assert response.status_code == 200
        assert response.json()["status"] == "draft"
        assert "study.withdrawn" in await actions(session, study.id)
        again = await client.post(f"{API}/{study.accession}/withdraw", headers=headers)
        assert again.status_code == 409
        assert again.json()["code"] == "INVALID_TRANSITION"

    async def test_without_review_submit_publishes(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        owner: User,
    ) -> None:
        app.state.study_config = StudyConfig(review_required=False)
        study = await create_study(session, owner=owner, samples=1, files=True)
        response = await client.post(f"{API}/{study.accession}/submit", headers=headers)
        assert response.status_code == 200
        assert response.json()["status"] == "published"
        assert "study.published" in await actions(session, study.id)

    async def test_embargo_keeps_a_published_study_private_until_its_day(
        self, client: httpx.AsyncClient, session: AsyncSession, owner: User
    ) -> None:
        later = await create_study(
            session,
            owner=owner,
            status=StudyStatus.PUBLISHED,
            release_date=today() + timedelta(days=1),
        )
        now = await create_study(
            session, owner=owner, status=StudyStatus.PUBLISHED, release_date=today()
        )
        hidden = await client.get(f"{API}/{later.accession}")
        assert (hidden.status_code, hidden.json()["code"]) == (404, "STUDY_NOT_FOUND")
        assert (await client.get(f"{API}/{now.accession}")).status_code == 200


class TestReadiness:
    async def _problems(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> set[tuple[str | None, str]]:
        response = await client.get(f"{API}/{study.accession}/readiness", headers=headers)
        assert response.status_code == 200
        body = response.json()
        assert body["ready"] is (not body["problems"])
        return {(p["sample_id"], p["code"]) for p in body["problems"]}

    async def test_empty_study(
        self, client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str], owner: User
    ) -> None:
        study = await create_study(session, owner=owner)
        assert await self._problems(client, headers, study) == {(None, "NO_SAMPLES")}
        refused = await client.post(f"{API}/{study.accession}/submit", headers=headers)
        assert refused.status_code == 409
        assert refused.json()["code"] == "STUDY_INCOMPLETE"
        assert refused.json()["errors"][0]["code"] == "NO_SAMPLES"

    async def test_every_file_problem_is_reported(
        self, client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str], owner: User
    ) -> None:
        study = await create_study(session, owner=owner, samples=6)
        s = {
            x.sample_id: x
            for x in (await session.scalars(select(Sample).where(Sample.study_id == study.id)))
        }
        await add_file(session, sample=s["S2"], status=FileStatus.UPLOADING)
        await add_file(session, sample=s["S3"], status=FileStatus.INVALID)
        await add_file(session, sample=s["S3"])
        await add_file(session, sample=s["S4"], filename="a_R1.fastq.gz", read=ReadKind.R1)
        await add_file(
            session, sample=s["S5"], filename="b_R1.fq.gz", read=ReadKind.R1, read_count=10
        )
        await add_file(
            session, sample=s["S5"], filename="b_R2.fq.gz", read=ReadKind.R2, read_count=11
        )
        await add_file(
            session,
            sample=s["S6"],
            filename="c_R1.fq.gz",
            read=ReadKind.R1,
            name_digest=names_digest(["a", "b"]),
        )
        await add_file(
            session,
            sample=s["S6"],
            filename="c_R2.fq.gz",
            read=ReadKind.R2,
            name_digest=names_digest(["a", "c"]),
        )
        assert await self._problems(client, headers, study) == {
            ("S1", "NO_VALID_FILE"),
            ("S2", "FILE_UPLOADING"),
            ("S2", "NO_VALID_FILE"),
            ("S3", "FILE_INVALID"),
            ("S4", "UNPAIRED_READ"),
            ("S5", "PAIR_READ_COUNT_MISMATCH"),
            ("S6", "PAIR_READ_NAMES_MISMATCH"),
        }
        response = await client.get(f"{API}/{study.accession}/readiness", headers=headers)
        unpaired = [p for p in response.json()["problems"] if p["code"] == "UNPAIRED_READ"]
        # The message names the mate that is missing, not the read that is there.
        assert [p["message"] for p in unpaired] == ["a_R1.fastq.gz (R1) has no R2 mate"]

    async def test_matching_pairs_are_ready(
        self, client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str], owner: User
    ) -> None:
        study = await create_study(session, owner=owner, samples=1)
        (sample,) = (await session.scalars(select(Sample).where(Sample.study_id == study.id))).all()
        for name, read in (("x_1.fq.gz", ReadKind.R1), ("x_2.fq.gz", ReadKind.R2)):
            await add_file(session, sample=sample, filename=name, read=read)
        assert await self._problems(client, headers, study) == set()


class TestMembers:
    async def test_add_change_list_and_remove(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        headers: dict[str, str],
        owner: User,
    ) -> None:
        colleague = await create_user(session, email="colleague@example.org")
        study = await create_study(session, owner=owner)
        url = f"{API}/{study.accession}/members"
        added = await client.put(
            url, headers=headers, json={"email": "Colleague@Example.org", "role": "viewer"}
        )
        assert added.status_code == 200, added.text
        assert added.json()["user"]["email"] == "colleague@example.org"
        as_colleague = auth_headers(settings, colleague)
        assert (await client.get(f"{API}/{study.accession}", headers=as_colleague)).json()[
            "my_role"
        ] == "viewer"
        promoted = await client.put(
            url, headers=headers, json={"email": "colleague@example.org", "role": "editor"}
        )
        assert promoted.json()["role"] == "editor"
        listed = (await client.get(url, headers=headers)).json()
        assert [(m["user"]["id"], m["role"]) for m in listed] == [(str(colleague.id), "editor")]
        removed = await client.delete(f"{url}/{colleague.id}", headers=headers)
        assert removed.status_code == 204
        hidden = await client.get(f"{API}/{study.accession}", headers=as_colleague)
        assert (hidden.status_code, hidden.json()["code"]) == (404, "STUDY_NOT_FOUND")
        again = await client.delete(f"{url}/{colleague.id}", headers=headers)
        assert (again.status_code, again.json()["code"]) == (404, "MEMBER_NOT_FOUND")
        assert await actions(session, study.id) == [
            "study.created",
            "member.set",
            "member.set",
            "member.removed",
        ]

    async def test_unknown_user_and_owner_are_refused(
        self, client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str], owner: User
    ) -> None:
        study = await create_study(session, owner=owner)
        url = f"{API}/{study.accession}/members"
        unknown = await client.put(
            url, headers=headers, json={"email": "nobody@example.org", "role": "viewer"}
        )
        assert unknown.status_code == 404
        assert unknown.json()["code"] == "USER_NOT_FOUND"
        itself = await client.put(
            url, headers=headers, json={"email": owner.email, "role": "editor"}
        )
        assert (itself.status_code, itself.json()["code"]) == (409, "OWNER_NOT_MEMBER")


class TestDeleteStudy:
    async def test_removes_samples_files_and_stored_objects(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        owner: User,
    ) -> None:
        study = await create_study(session, owner=owner, samples=2, files=True)
        storage = app.state.storage
        key = f"studies/{study.id}/object"
        async with await storage.open_writer(key) as writer:
            await writer.write(b"ACGT")
            await writer.commit()
        assert await storage.exists(key)
        response = await client.delete(f"{API}/{study.accession}", headers=headers)
        assert response.status_code == 204
        gone = await client.get(f"{API}/{study.accession}", headers=headers)
        assert (gone.status_code, gone.json()["code"]) == (404, "STUDY_NOT_FOUND")
        remaining = await session.execute(
            select(func.count(SampleFile.id))
            .join(Sample, SampleFile.sample_pk == Sample.id)
            .where(Sample.study_id == study.id)
        )
        assert remaining.scalar_one() == 0
        assert not await storage.exists(key)


class TestConcurrentAccessions:
    async def test_fifty_concurrent_creations_get_fifty_consecutive_accessions(
        self, settings: Settings, scratch_database_url: str
    ) -> None:
        accessions = await create_concurrently(
            settings.model_copy(update={"database_url": scratch_database_url}), count=50
        )
        numbers = sorted(int(a.split("-")[1]) for a in accessions)
        assert len(set(accessions)) == 50
        assert numbers == list(range(numbers[0], numbers[0] + 50))
