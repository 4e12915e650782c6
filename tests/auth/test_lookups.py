"""Look-ups of accounts are throttled per caller (LOOKUP_RATE_LIMIT): adding a study member by
email and the admin's user search. Past the limit: 429 TOO_MANY_ATTEMPTS with Retry-After; other
callers are not affected; the members answer tells no more than the contract needs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.config import AuthConfig
from src.auth.models import User
from src.auth.state import AuthState
from src.config import Settings
from tests.auth.conftest import flush_redis, make_config
from tests.auth.helpers import AUTH, assert_error, bearer, deployed_client, register, tokens
from tests.factories import auth_headers, create_user
from tests.study.factories import create_study

STUDIES = "/api/v1/studies"


@pytest.fixture(params=["database", "redis"])
async def limit(
    request: pytest.FixtureRequest, app: FastAPI, settings: Settings
) -> AsyncIterator[Callable[[str], None]]:
    """Set LOOKUP_RATE_LIMIT, with the counters in the database or in Redis."""
    redis_url = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        await flush_redis(redis_url)
    built: list[AuthState] = []

    def configure(value: str) -> None:
        state = AuthState.build(settings, make_config(redis_url=redis_url, lookup_rate_limit=value))
        built.append(state)
        app.state.auth = state

    yield configure
    for state in built[:-1]:  # the last one is closed by the app's lifespan
        await state.close()
    if redis_url:
        await flush_redis(redis_url)


async def add_member(
    client: httpx.AsyncClient, accession: str, headers: dict[str, str], email: str
) -> httpx.Response:
    return await client.put(
        f"{STUDIES}/{accession}/members", json={"email": email, "role": "viewer"}, headers=headers
    )


async def owned_study(
    session: AsyncSession, settings: Settings, **user: Any
) -> tuple[str, dict[str, str]]:
    """A new user (``user`` its fields) owning a new study: its accession, their headers."""
    owner = await create_user(session, **user)
    study = await create_study(session, owner=owner)
    return study.accession, auth_headers(settings, owner)


def assert_throttled(response: httpx.Response, window_seconds: int) -> None:
    assert_error(response, 429, "TOO_MANY_ATTEMPTS")
    assert 1 <= int(response.headers["retry-after"]) <= window_seconds


class TestSetting:
    def test_default_and_a_malformed_value(self) -> None:
        assert AuthConfig(_env_file=None).lookup_rate_limit == "30/minute"
        with pytest.raises(ValidationError):
            AuthConfig(_env_file=None, lookup_rate_limit="lots")


class TestMemberLookups:
    async def test_past_the_limit_is_429_and_other_callers_are_not_affected(
        self,
        limit: Callable[[str], None],
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
    ) -> None:
        limit("3/minute")
        accession, headers = await owned_study(session, settings)
        other_accession, other = await owned_study(session, settings)
        await create_user(session, email="known@example.org")
        # Known and unknown emails count alike: both are answers of the oracle.
        for email in ("known@example.org", "nobody-1@example.org", "nobody-2@example.org"):
            response = await add_member(client, accession, headers, email)
            assert response.status_code in (200, 404), response.text
        refused = await add_member(client, accession, headers, "known@example.org")
        assert_throttled(refused, 60)
        # Another caller has a budget of their own.
        added = await add_member(client, other_accession, other, "known@example.org")
        assert added.status_code == 200, added.text
        # Other routes of the throttled caller still work.
        listed = await client.get(f"{STUDIES}/{accession}/members", headers=headers)
        assert [m["user"]["email"] for m in listed.json()] == ["known@example.org"]

    async def test_recovers_after_the_window(
        self,
        limit: Callable[[str], None],
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
    ) -> None:
        limit("1/2seconds")
        accession, headers = await owned_study(session, settings)
        await create_user(session, email="known@example.org")
        assert (await add_member(client, accession, headers, "known@example.org")).is_success
        refused = await add_member(client, accession, headers, "known@example.org")
        assert_throttled(refused, 2)
        await anyio.sleep(2.1)
        assert (await add_member(client, accession, headers, "known@example.org")).is_success

    async def test_requests_without_a_valid_token_are_401_not_counted(
        self,
        limit: Callable[[str], None],
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
    ) -> None:
        limit("1/minute")
        accession, _ = await owned_study(session, settings)
        for headers in ({}, bearer("not.a.jwt")):
            response = await add_member(client, accession, headers, "x@example.org")
            assert_error(response, 401, "INVALID_TOKEN")

    async def test_unknown_and_deactivated_accounts_get_the_same_answer(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        accession, headers = await owned_study(session, settings)
        await create_user(session, email="gone@example.org", is_active=False)
        unknown = await add_member(client, accession, headers, "nobody@example.org")
        deactivated = await add_member(client, accession, headers, "gone@example.org")
        for response in (unknown, deactivated):
            body = assert_error(response, 404, "USER_NOT_FOUND")
            assert set(body) == {"code", "detail", "request_id"}
        assert unknown.json()["detail"] == deactivated.json()["detail"]
        assert "example.org" not in unknown.json()["detail"]

    async def test_the_answer_is_the_member_as_the_members_list_shows_it(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        accession, headers = await owned_study(session, settings)
        colleague = await create_user(session, email="colleague@example.org", full_name="Col")
        added = await add_member(client, accession, headers, "colleague@example.org")
        listed = await client.get(f"{STUDIES}/{accession}/members", headers=headers)
        assert listed.json() == [added.json()]
        assert added.json() == {
            "user": {"id": str(colleague.id), "email": "colleague@example.org", "full_name": "Col"},
            "role": "viewer",
        }


class TestUserSearchLookups:
    async def test_past_the_limit_is_429_and_other_admins_are_not_affected(
        self,
        limit: Callable[[str], None],
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
    ) -> None:
        limit("2/minute")
        admin: User = await create_user(session, role="admin")
        other: User = await create_user(session, role="admin")
        headers = auth_headers(settings, admin)
        for query in ("ada", "grace"):
            response = await client.get(f"{AUTH}/users", params={"q": query}, headers=headers)
            assert response.status_code == 200, response.text
        assert_throttled(await client.get(f"{AUTH}/users", headers=headers), 60)
        response = await client.get(f"{AUTH}/users", headers=auth_headers(settings, other))
        assert response.status_code == 200

    async def test_member_and_user_lookups_count_separately(
        self,
        limit: Callable[[str], None],
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
    ) -> None:
        limit("1/minute")
        accession, headers = await owned_study(session, settings, role="admin")
        assert (await client.get(f"{AUTH}/users", headers=headers)).status_code == 200
        response = await add_member(client, accession, headers, "nobody@example.org")
        assert_error(response, 404, "USER_NOT_FOUND")


class TestDeployedProcess:
    async def test_counting_does_not_wait_on_the_requests_own_transaction(
        self, scratch_url: str, tmp_path: Path
    ) -> None:
        """No shared test connection: the count has its own connection and transaction. On
        SQLite, counting after the request's transaction began would wait for that transaction's
        write lock until the busy timeout and fail the request; counting first never waits."""
        config = make_config(lookup_rate_limit="2/minute")
        async with deployed_client(scratch_url, tmp_path / "data", config) as client:
            for email in ("owner@example.org", "known@example.org"):
                assert (await register(client, email=email)).status_code == 201
            headers = bearer((await tokens(client, "owner@example.org"))["access_token"])
            body: dict[str, Any] = {"title": "Atlas", "description": "d", "authors": ["A"]}
            created = await client.post(STUDIES, json=body, headers=headers)
            assert created.status_code == 201, created.text
            accession = created.json()["accession"]
            added = await add_member(client, accession, headers, "known@example.org")
            assert added.status_code == 200, added.text
            missing = await add_member(client, accession, headers, "nobody@example.org")
            assert_error(missing, 404, "USER_NOT_FOUND")
            refused = await add_member(client, accession, headers, "known@example.org")
            assert_throttled(refused, 60)
