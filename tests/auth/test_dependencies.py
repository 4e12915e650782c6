"""The shared caller dependencies other modules use: CurrentUser, OptionalUser, role guards."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.dependencies import AdminUser, CurrentUser, OptionalUser, ReviewerUser
from src.config import Settings
from tests.auth.helpers import assert_error
from tests.factories import auth_headers, create_user


@pytest.fixture
def probe(app: FastAPI) -> None:
    """Routes guarded by each dependency, added to the test's app."""
    router = APIRouter(prefix="/probe")

    @router.get("/optional")
    async def optional(user: OptionalUser) -> dict[str, str | None]:
        return {"user": str(user.id) if user else None}

    @router.get("/current")
    async def current(user: CurrentUser) -> dict[str, str]:
        return {"user": str(user.id)}

    @router.get("/reviewer")
    async def reviewer(user: ReviewerUser) -> dict[str, str]:
        return {"role": user.role}

    @router.get("/admin")
    async def admin(user: AdminUser) -> dict[str, str]:
        return {"role": user.role}

    app.include_router(router)


@pytest.mark.usefixtures("probe")
class TestCallerDependencies:
    async def test_optional_user_is_none_without_a_header(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/probe/optional")
        assert response.json() == {"user": None}

    async def test_optional_user_with_a_token(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        user = await create_user(session)
        response = await client.get("/probe/optional", headers=auth_headers(settings, user))
        assert response.json() == {"user": str(user.id)}

    async def test_optional_user_with_a_bad_token_is_still_401(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/probe/optional", headers={"Authorization": "Bearer x.y.z"})
        assert_error(response, 401, "INVALID_TOKEN")
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_current_user_requires_a_token(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/probe/current"), 401, "INVALID_TOKEN")

    async def test_inactive_user_is_401_even_on_optional_routes(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        user = await create_user(session, is_active=False)
        response = await client.get("/probe/optional", headers=auth_headers(settings, user))
        assert_error(response, 401, "INVALID_TOKEN")

    @pytest.mark.parametrize(
        ("role", "reviewer_status", "admin_status"),
        [("researcher", 403, 403), ("reviewer", 200, 403), ("admin", 200, 200)],
    )
    async def test_role_guards(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        role: str,
        reviewer_status: int,
        admin_status: int,
    ) -> None:
        headers = auth_headers(settings, await create_user(session, role=role))
        reviewer = await client.get("/probe/reviewer", headers=headers)
        admin = await client.get("/probe/admin", headers=headers)
        assert (reviewer.status_code, admin.status_code) == (reviewer_status, admin_status)
        for response in (reviewer, admin):
            if response.status_code == 403:
                assert_error(response, 403, "FORBIDDEN")
            else:
                assert response.json() == {"role": role}

    async def test_role_guard_without_a_token_is_401_not_403(
        self, client: httpx.AsyncClient
    ) -> None:
        assert_error(await client.get("/probe/admin"), 401, "INVALID_TOKEN")
