"""Who sees which study, written once: a public study (``Study.is_public``, and
``Study.public_clause`` in SQL: published, release date passed) is seen by anyone; any other only
by its owner, its members, reviewers and admins (``access_role``). A ``StudyView`` is a study as
one caller sees it, with their role; ``Scope`` and
``resolve_scope`` say which list a caller may ask for.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from src.auth.models import User, UserRole
from src.study.constants import AccessRole, MemberRole, StudyStatus
from src.study.exceptions import ForbiddenError, StudyNotFoundError
from src.study.models import Study, StudyMember, is_public


@dataclass
class StudyView:
    """A study with the caller's role; reads like the Study model (its counts included, which
    are kept on the study row: study/counters.py)."""

    study: Study
    my_role: AccessRole

    def __getattr__(self, name: str) -> Any:
        return getattr(self.study, name)


class Scope(StrEnum):
    MINE = "mine"
    ALL = "all"
    PUBLIC = "public"


def access_role(
    study: Study, user: User | None, member_role: MemberRole | None
) -> AccessRole | None:
    """How ``user`` relates to ``study``; None when the study is invisible to them."""
    return role_of(study.owner_id, study.status, study.release_date, user, member_role)


def role_of(
    owner_id: uuid.UUID,
    status: StudyStatus,
    release_date: date | None,
    user: User | None,
    member_role: str | None,
) -> AccessRole | None:
    """``access_role`` on a study's plain values (a list reads rows, not models)."""
    if user is not None:
        if owner_id == user.id:
            return AccessRole.OWNER
        if member_role is not None:
            return AccessRole(member_role)
        if user.role == UserRole.ADMIN:
            return AccessRole.ADMIN
        if user.role == UserRole.REVIEWER:
            return AccessRole.REVIEWER
    if is_public(status, release_date):
        return AccessRole.PUBLIC
    return None


def _member_role_column(user: User | None) -> Any:
    if user is None:
        return None
    return (
        select(StudyMember.role)
        .where(StudyMember.study_id == Study.id, StudyMember.user_id == user.id)
        .correlate(Study)
        .scalar_subquery()
    )


def view_query(user: User | None) -> Select[Any]:
    member_role = _member_role_column(user)
    columns: list[Any] = [Study]
    if member_role is not None:
        columns.append(member_role)
    return select(*columns).options(joinedload(Study.owner))


def views_from_rows(rows: Sequence[Any], user: User | None) -> list[StudyView]:
    views = []
    for row in rows:
        study = row[0]
        member_role = MemberRole(row[1]) if user is not None and row[1] is not None else None
        role = access_role(study, user, member_role)
        if role is None:  # filtered in SQL already; kept as a guard against a visibility leak
            continue
        views.append(StudyView(study, role))
    return views


def _reference_clause(reference: str) -> ColumnElement[bool]:
    try:
        return Study.id == uuid.UUID(reference)
    except ValueError:
        return Study.accession == reference.strip()


async def get_view(session: AsyncSession, *, reference: str, user: User | None) -> StudyView:
    """A study by UUID or accession as ``user`` sees it; STUDY_NOT_FOUND when they may not."""
    result = await session.execute(view_query(user).where(_reference_clause(reference)))
    views = views_from_rows(result.all(), user)
    if not views:
        raise StudyNotFoundError
    return views[0]


async def refresh_view(session: AsyncSession, *, view: StudyView, user: User | None) -> StudyView:
    """The same study re-read after a change (new counts, new version)."""
    await session.flush()
    await session.refresh(view.study)
    return await get_view(session, reference=str(view.study.id), user=user)


def resolve_scope(user: User | None, scope: Scope | None) -> Scope:
    """The list a caller asked for: anonymous callers see public studies only; ``all`` is for
    reviewers and admins; signed-in callers default to their own."""
    if user is None:
        if scope in (None, Scope.PUBLIC):
            return Scope.PUBLIC
        raise ForbiddenError("Sign in to list your own or all studies.")
    if scope == Scope.ALL and user.role not in (UserRole.REVIEWER, UserRole.ADMIN):
        raise ForbiddenError("Only reviewers and admins can list all studies.")
    return scope or Scope.MINE
