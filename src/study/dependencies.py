"""Who may do what to a study, written once: each dependency loads the study (by UUID or
accession) as the caller sees it and refuses in a fixed order: 401 without a valid token where
one is needed, 404 when the caller may not see the study (never 403: no existence leak), 403 when
their role does not allow the action, 409 when the study's state does not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request

from src.auth.dependencies import CurrentUser, OptionalUser, account_lookups
from src.dependencies import SessionDep
from src.study import service, visibility
from src.study.config import StudyConfig
from src.study.constants import AccessRole, StudyStatus
from src.study.exceptions import (
    ForbiddenError,
    SampleNotFoundError,
    StudyLockedError,
)
from src.study.models import Sample
from src.study.permissions import EDITORS, STAFF
from src.study.visibility import StudyView

StudyRef = Annotated[
    str,
    Path(
        description="The study's UUID or accession (e.g. MOSAIC-0001).",
        max_length=64,
        examples=["MOSAIC-0001"],
    ),
]

MEMBERS = frozenset({AccessRole.OWNER, AccessRole.EDITOR, AccessRole.VIEWER})


async def get_study_config(request: Request) -> StudyConfig:
    config: StudyConfig = request.app.state.study_config
    return config


StudyConfigDep = Annotated[StudyConfig, Depends(get_study_config)]


async def visible_study(study: StudyRef, user: OptionalUser, session: SessionDep) -> StudyView:
    """The study, if the caller (or the public) may see it."""
    return await visibility.get_view(session, reference=study, user=user)


async def _signed_in_view(study: StudyRef, user: CurrentUser, session: SessionDep) -> StudyView:
    return await visibility.get_view(session, reference=study, user=user)


def _requiring(
    roles: frozenset[AccessRole], *, draft_only: bool = False
) -> Callable[..., Awaitable[StudyView]]:
    async def dependency(
        view: Annotated[StudyView, Depends(_signed_in_view)],
    ) -> StudyView:
        if view.my_role not in roles:
            raise ForbiddenError
        if draft_only and view.study.status != StudyStatus.DRAFT:
            raise StudyLockedError(
                f"The study is {view.study.status.value}; only drafts can be changed."
            )
        return view

    return dependency


# Adding a member finds an account by email: counted per caller (a route decorator's dependency,
# so it runs before the study is loaded; see account_lookups).
MEMBER_LOOKUPS = Depends(account_lookups("member"))

StudyDep = Annotated[StudyView, Depends(visible_study)]
# Members of the study, reviewers and admins: the study's working views (readiness, events).
TeamStudy = Annotated[StudyView, Depends(_requiring(MEMBERS | STAFF))]
# Owner or editor: may change it, while it is a draft.
DraftForEditor = Annotated[StudyView, Depends(_requiring(EDITORS, draft_only=True))]
# Owner or editor, any state (submit checks the state itself).
StudyForEditor = Annotated[StudyView, Depends(_requiring(EDITORS))]
OwnedStudy = Annotated[StudyView, Depends(_requiring(frozenset({AccessRole.OWNER})))]
ReviewableStudy = Annotated[StudyView, Depends(_requiring(STAFF))]
# Owner (draft) or admin (not published): checked in deletable_study.
StudyForEditorOrStaff = Annotated[StudyView, Depends(_requiring(EDITORS | STAFF))]


async def deletable_study(view: StudyForEditorOrStaff) -> StudyView:
    if view.my_role == AccessRole.OWNER:
        if view.study.status != StudyStatus.DRAFT:
            raise StudyLockedError("Only a draft can be deleted by its owner.")
        return view
    if view.my_role == AccessRole.ADMIN:
        if view.study.status == StudyStatus.PUBLISHED:
            raise StudyLockedError("A published study cannot be deleted.")
        return view
    raise ForbiddenError


async def visible_sample(sample_id: str, view: StudyDep, session: SessionDep) -> Sample:
    sample = await service.get_sample(session, study=view.study, sample_id=sample_id)
    if sample is None:
        raise SampleNotFoundError
    return sample


async def editable_sample(sample_id: str, view: DraftForEditor, session: SessionDep) -> Sample:
    sample = await service.get_sample(session, study=view.study, sample_id=sample_id)
    if sample is None:
        raise SampleNotFoundError
    return sample


StudyToDelete = Annotated[StudyView, Depends(deletable_study)]
SampleDep = Annotated[Sample, Depends(visible_sample)]
EditableSample = Annotated[Sample, Depends(editable_sample)]
