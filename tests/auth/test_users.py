"""Admin routes: GET /auth/users and PATCH /auth/users/{user_id}."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from src.config import Settings
from tests.auth.helpers import AUTH, assert_error, bearer, tokens
from tests.factories import auth_headers, create_user


class TestListUsers:
    async def test_admin_gets_a_page(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        admin = await create_user(session, role="admin")
        for _ in range(3):
            await create_user(session)
        response = await client.get(
            f"{AUTH}/users",
            params={"page": 1, "page_size": 2},
            headers=auth_headers(settings, admin),
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["total"], body["page"], body["page_size"]) == (4, 1, 2)
        assert len(body["items"]) == 2
        assert all("password_hash" not in item for item in body["items"])
        second = await client.get(
            f"{AUTH}/users",
            params={"page": 2, "page_size": 2},
            headers=auth_headers(settings, admin),
        )
        ids = {item["id"] for item in body["items"]} | {i["id"] for i in second.json()["items"]}
        assert len(ids) == 4

    async def test_filters_by_text_and_role(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        admin = await create_user(session, role="admin", full_name="Admin")
        await create_user(session, email="rosalind@kings.ac.uk", full_name="Rosalind Franklin")
        await create_user(session, role="reviewer", full_name="Maurice Wilkins")
        await create_user(session, email="under_score@example.org", full_name="U")
        headers = auth_headers(settings, admin)

        async def emails(**params: str) -> set[str]:
            response = await client.get(f"{AUTH}/users", params=params, headers=headers)
            assert response.status_code == 200, response.text
            return {item["email"] for item in response.json()["items"]}

        assert await emails(q="FRANKLIN") == {"rosalind@kings.ac.uk"}
        assert await emails(q="kings.ac") == {"rosalind@kings.ac.uk"}
        assert len(await emails(role="reviewer")) == 1
        assert await emails(q="franklin", role="reviewer") == set()
        assert await emails(q="_") == {"under_score@example.org"}  # wildcards are literal
        assert await emails(q="%") == set()

    async def test_researcher_and_reviewer_are_403(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        for role in ("researcher", "reviewer"):
            user = await create_user(session, role=role)
            response = await client.get(f"{AUTH}/users", headers=auth_headers(settings, user))
            assert_error(response, 403, "FORBIDDEN")

    async def test_anonymous_is_401(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get(f"{AUTH}/users"), 401, "INVALID_TOKEN")

    @pytest.mark.parametrize(
        "params",
        [
            {"role": "superuser"},
            {"page": 0},
            {"page_size": 101},
            {"q": "x" * 201},
            {"q": "a\x00b"},
            {"q": "a\x1bb"},
        ],
    )
    async def test_bad_query_is_422(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        params: dict[str, str | int],
    ) -> None:
        admin = await create_user(session, role="admin")
        response = await client.get(
            f"{AUTH}/users", params=params, headers=auth_headers(settings, admin)
        )
        assert_error(response, 422, "VALIDATION_ERROR")


class TestUpdateUser:
    async def test_admin_changes_a_role_which_applies_at_once(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        admin = await create_user(session, role="admin")
        user = await create_user(session)
        user_headers = auth_headers(settings, user)
        assert_error(await client.get(f"{AUTH}/users", headers=user_headers), 403, "FORBIDDEN")
        response = await client.patch(
            f"{AUTH}/users/{user.id}", json={"role": "admin"}, headers=auth_headers(settings, admin)
        )
        assert response.status_code == 200
        assert response.json()["role"] == "admin"
        # The same access token now carries the new role: roles are read per request.
        assert (await client.get(f"{AUTH}/users", headers=user_headers)).status_code == 200

    async def test_deactivation_cuts_off_access_and_refresh_tokens(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        admin = await create_user(session, role="admin")
        await create_user(session, email="ada@example.org")
        pair = await tokens(client, "ada@example.org")
        headers = {"Authorization": f"Bearer {pair['access_token']}"}
        assert (await client.get(f"{AUTH}/me", headers=headers)).status_code == 200
        user_id = (await client.get(f"{AUTH}/me", headers=headers)).json()["id"]

        response = await client.patch(
            f"{AUTH}/users/{user_id}",
            json={"is_active": False},
            headers=auth_headers(settings, admin),
        )
        assert response.status_code == 200
        assert response.json()["is_active"] is False

        cut_off = await client.get(f"{AUTH}/me", headers=headers)
        assert_error(cut_off, 401, "INVALID_TOKEN")
        assert cut_off.headers["www-authenticate"] == "Bearer"
        refreshed = await client.post(
            f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert_error(refreshed, 401, "INVALID_REFRESH_TOKEN")

        reactivated = await client.patch(
            f"{AUTH}/users/{user_id}",
            json={"is_active": True},
            headers=auth_headers(settings, admin),
        )
        assert reactivated.json()["is_active"] is True
        # Deactivation ended the old tokens for good: reactivating does not bring them back.
        assert_error(await client.get(f"{AUTH}/me", headers=headers), 401, "INVALID_TOKEN")
        again = await tokens(client, "ada@example.org")
        assert (await client.get(f"{AUTH}/me", headers=bearer(again["access_token"]))).is_success

    async def test_admin_cannot_demote_or_deactivate_themselves(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        admin = await create_user(session, role="admin")
        headers = auth_headers(settings, admin)
        for body in ({"role": "researcher"}, {"is_active": False}):
            response = await client.patch(f"{AUTH}/users/{admin.id}", json=body, headers=headers)
            assert_error(response, 409, "OWN_ACCOUNT")
        same = await client.patch(
            f"{AUTH}/users/{admin.id}", json={"role": "admin"}, headers=headers
        )
        assert same.status_code == 200

    async def test_unknown_user_is_404(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        admin = await create_user(session, role="admin")
        response = await client.patch(
            f"{AUTH}/users/{uuid.uuid4()}",
            json={"role": "reviewer"},
            headers=auth_headers(settings, admin),
        )
        assert_error(response, 404, "USER_NOT_FOUND")

    async def test_non_admin_is_403(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        reviewer = await create_user(session, role="reviewer")
        other = await create_user(session)
        response = await client.patch(
            f"{AUTH}/users/{other.id}",
            json={"role": "admin"},
            headers=auth_headers(settings, reviewer),
        )
        assert_error(response, 403, "FORBIDDEN")

    @pytest.mark.parametrize(
        ("path_id", "body"),
        [
            ("not-a-uuid", {"role": "reviewer"}),
            (None, {"role": "superuser"}),
            (None, {"is_active": "yes"}),
            (None, {"is_active": 1}),
            (None, {"email": "x@example.org"}),
        ],
    )
    async def test_bad_input_is_422(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        path_id: str | None,
        body: dict[str, object],
    ) -> None:
        admin = await create_user(session, role="admin")
        other = await create_user(session)
        response = await client.patch(
            f"{AUTH}/users/{path_id or other.id}", json=body, headers=auth_headers(settings, admin)
        )
        assert_error(response, 422, "VALIDATION_ERROR")
