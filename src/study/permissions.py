"""Who may change a study, written once: the roles that edit a study (``EDITORS``), the staff
who review and administer every study (``STAFF``), and :func:`ensure_editable_draft`, the check
that the caller is the study's owner or an editor and that the study is still a draft."""

from __future__ import annotations

from typing import TYPE_CHECKING

from src.study.constants import AccessRole, StudyStatus
from src.study.exceptions import ForbiddenError, StudyLockedError

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
