"""The permission matrix: every study and sample endpoint, for every kind of caller, on a study
in every state. A study the caller may not see is 404 (never 403); a visible one the caller's
role may not touch is 403; a role that may act on a study in the wrong state gets 409.

Columns: anonymous, stranger, viewer, editor, owner, reviewer, admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from src.auth.models import User, UserRole
from src.config import Settings
from src.database import today
from src.study.constants import MemberRole, StudyStatus
from src.study.models import Study
from tests.factories import auth_headers, create_user
from tests.study.factories import add_member, create_study

ROLES = ("anonymous", "stranger", "viewer", "editor", "owner", "reviewer", "admin")
STATES = ("draft", "in_review", "embargoed", "public")

# endpoint -> state -> expected status per role, in ROLES order.
MATRIX: dict[str, dict[str, str]] = {
    "GET /studies/{s}": {
        "draft": "404 404 200 200 200 200 200",
        "in_review": "404 404 200 200 200 200 200",
        "embargoed": "404 404 200 200 200 200 200",
        "public": "200 200 200 200 200 200 200",
    },
    "PATCH /studies/{s}": {
        "draft": "401 404 403 200 200 403 403",
        "in_review": "401 404 403 409 409 403 403",
        "embargoed": "401 404 403 409 409 403 403",
        "public": "401 403 403 409 409 403 403",
    },
    "DELETE /studies/{s}": {
        "draft": "401 404 403 403 204 403 204",
        "in_review": "401 404 403 403 409 403 204",
        "embargoed": "401 404 403 403 409 403 409",
        "public": "401 403 403 403 409 403 409",
    },
    "GET /studies/{s}/readiness": {
        "draft": "401 404 200 200 200 200 200",
        "in_review": "401 404 200 200 200 200 200",
        "embargoed": "401 404 200 200 200 200 200",
        "public": "401 403 200 200 200 200 200",
    },
    "POST /studies/{s}/submit": {
        "draft": "401 404 403 200 200 403 403",
        "in_review": "401 404 403 409 409 403 403",
        "embargoed": "401 404 403 409 409 403 403",
        "public": "401 403 403 409 409 403 403",
    },
    "POST /studies/{s}/withdraw": {
        "draft": "401 404 403 403 409 403 403",
        "in_review": "401 404 403 403 200 403 403",
        "embargoed": "401 404 403 403 409 403 403",
        "public": "401 403 403 403 409 403 403",
    },
    "POST /studies/{s}/review": {
        "draft": "401 404 403 403 403 409 409",
        "in_review": "401 404 403 403 403 200 200",
        "embargoed": "401 404 403 403 403 409 409",
        "public": "401 403 403 403 403 409 409",
    },
    "GET /studies/{s}/events": {
        "draft": "401 404 200 200 200 200 200",
        "in_review": "401 404 200 200 200 200 200",
        "embargoed": "401 404 200 200 200 200 200",
        "public": "401 403 200 200 200 200 200",
    },
    "GET /studies/{s}/members": {
        "draft": "401 404 200 200 200 200 200",
        "in_review": "401 404 200 200 200 200 200",
        "embargoed": "401 404 200 200 200 200 200",
        "public": "401 403 200 200 200 200 200",
    },
    "PUT /studies/{s}/members": {
        "draft": "401 404 403 403 200 403 403",
        "in_review": "401 404 403 403 200 403 403",
        "embargoed": "401 404 403 403 200 403 403",
        "public": "401 403 403 403 200 403 403",
    },
    "DELETE /studies/{s}/members/{viewer}": {
        "draft": "401 404 403 403 204 403 403",
        "in_review": "401 404 403 403 204 403 403",
        "embargoed": "401 404 403 403 204 403 403",
        "public": "401 403 403 403 204 403 403",
    },
    "GET /studies/{s}/samples": {
        "draft": "404 404 200 200 200 200 200",
        "in_review": "404 404 200 200 200 200 200",
        "embargoed": "404 404 200 200 200 200 200",
        "public": "200 200 200 200 200 200 200",
    },
    "POST /studies/{s}/samples": {
        "draft": "401 404 403 201 201 403 403",
        "in_review": "401 404 403 409 409 403 403",
        "embargoed": "401 404 403 409 409 403 403",
        "public": "401 403 403 409 409 403 403",
    },
    "GET /studies/{s}/samples/S1": {
        "draft": "404 404 200 200 200 200 200",
        "in_review": "404 404 200 200 200 200 200",
        "embargoed": "404 404 200 200 200 200 200",
        "public": "200 200 200 200 200 200 200",
    },
    "PATCH /studies/{s}/samples/S1": {
        "draft": "401 404 403 200 200 403 403",
        "in_review": "401 404 403 409 409 403 403",
        "embargoed": "401 404 403 409 409 403 403",
        "public": "401 403 403 409 409 403 403",
    },
    "DELETE /studies/{s}/samples/S1": {
        "draft": "401 404 403 204 204 403 403",
        "in_review": "401 404 403 409 409 403 403",
        "embargoed": "401 404 403 409 409 403 403",
        "public": "401 403 403 409 409 403 403",
    },
}

BODIES: dict[str, object] = {
    "PATCH /studies/{s}": {"title": "A new title"},
    "POST /studies/{s}/review": {"decision": "approve", "comment": "fine"},
    "PUT /studies/{s}/members": {"email": "newcomer@example.org", "role": "viewer"},
    "POST /studies/{s}/samples": {"sample_id": "NEW1", "organism": "Homo sapiens"},
    "PATCH /studies/{s}/samples/S1": {"tissue": "liver"},
}

CASES = [
    pytest.param(endpoint, state, expected, id=f"{endpoint}|{state}")
    for endpoint, by_state in MATRIX.items()
    for state, expected in by_state.items()
]


@dataclass
class World:
    study: Study
    users: dict[str, User]


async def build_world(session: AsyncSession, state: str) -> World:
    users = {
        "stranger": await create_user(session),
        "viewer": await create_user(session),
        "editor": await create_user(session),
        "owner": await create_user(session),
        "reviewer": await create_user(session, role=UserRole.REVIEWER),
        "admin": await create_user(session, role=UserRole.ADMIN),
    }
    await create_user(session, email="newcomer@example.org")
    status = {
        "draft": StudyStatus.DRAFT,
        "in_review": StudyStatus.IN_REVIEW,
        "embargoed": StudyStatus.PUBLISHED,
        "public": StudyStatus.PUBLISHED,
    }[state]
    release = today() + timedelta(days=30) if state == "embargoed" else None
    study = await create_study(
        session,
        owner=users["owner"],
        status=status,
        release_date=release,
        samples=1,
        files=True,
    )
    await add_member(session, study=study, user=users["viewer"], role=MemberRole.VIEWER)
    await add_member(session, study=study, user=users["editor"], role=MemberRole.EDITOR)
    return World(study, users)


@pytest.mark.parametrize(("endpoint", "state", "expected"), CASES)
async def test_permission_matrix(
    client: httpx.AsyncClient,
    connection: AsyncConnection,
    session: AsyncSession,
    settings: Settings,
    endpoint: str,
    state: str,
    expected: str,
) -> None:
    world = await build_world(session, state)
    method, template = endpoint.split(" ", 1)
    path = "/api/v1" + template.format(s=world.study.accession, viewer=world.users["viewer"].id)
    seen = {}
    for role in ROLES:
        # Each caller acts on the same world; whatever one request changes is rolled back.
        savepoint = await connection.begin_nested()
        headers = {} if role == "anonymous" else auth_headers(settings, world.users[role])
        response = await client.request(method, path, headers=headers, json=BODIES.get(endpoint))
        await savepoint.rollback()
        seen[role] = response.status_code
        code = response.json().get("code") if response.status_code >= 400 else None
        if response.status_code == 404:
            assert code == "STUDY_NOT_FOUND", (role, response.text)
        if response.status_code == 403:
            assert code == "FORBIDDEN", (role, response.text)
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith("Bearer"), role
    assert " ".join(str(seen[role]) for role in ROLES) == expected, dict(
        zip(ROLES, expected.split(), strict=True)
    )
