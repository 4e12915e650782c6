"""Who may change a study, written once: the roles that edit a study (``EDITORS``), the staff
who review and administer every study (``STAFF``), and :func:`ensure_editable_draft`, the check
that the caller is the study's owner or an editor and that the study is still a draft (and
:func:`edits_draft`, the same rule in SQL, for sweeps over many rows)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, SQLColumnExpression, exists, or_

from src.study.constants import AccessRole, MemberRole, StudyStatus
from src.study.exceptions import ForbiddenError, StudyLockedError
from src.study.models import Study, StudyMember

if TYPE_CHECKING:
    from src.study.visibility import StudyView

EDITORS = frozenset({AccessRole.OWNER, AccessRole.EDITOR})
STAFF = frozenset({AccessRole.REVIEWER, AccessRole.ADMIN})


def ensure_editable_draft(view: StudyView, *, locked_detail: str | None = None) -> None:
    """Raise ForbiddenError unless the caller edits the study, and StudyLockedError (with
    ``locked_detail`` if given) unless it is a draft."""
    if view.my_role not in EDITORS:
        raise ForbiddenError
    if view.study.status != StudyStatus.DRAFT:
        raise StudyLockedError(
            locked_detail or f"The study is {view.study.status.value}; only drafts can be changed."
        )


def edits_draft(
    user_id: SQLColumnExpression[uuid.UUID], study_id: SQLColumnExpression[uuid.UUID]
) -> ColumnElement[bool]:
    """:func:`ensure_editable_draft` in SQL: the study exists, is a draft, and the user owns it
    or is one of its editors (``EDITORS``)."""
    editor = exists().where(
        StudyMember.study_id == Study.id,
        StudyMember.user_id == user_id,
        StudyMember.role == MemberRole.EDITOR,
    )
    return exists().where(
        Study.id == study_id,
        Study.status == StudyStatus.DRAFT,
        or_(Study.owner_id == user_id, editor),
    )
