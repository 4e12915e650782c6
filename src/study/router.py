"""Routes of the study module: studies, samples, members, review and events.

Each route is a declaration: dependencies load and authorise (src/study/dependencies.py), one
service call does the work, and the response model shapes the answer.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from src.auth.dependencies import CurrentUser, OptionalUser
from src.auth.exceptions import InvalidTokenError, TooManyAttemptsError
from src.dependencies import PageDep, SessionDep, StorageDep
from src.exceptions import error_responses
from src.schemas import PageOf, Paginated, plain_json
from src.study import listing, readiness, service, visibility
from src.study.constants import AccessRole, StudySort, StudyStatus
from src.study.dependencies import (
    MEMBER_LOOKUPS,
    DraftForEditor,
    EditableSample,
    OwnedStudy,
    ReviewableStudy,
    SampleDep,
    StudyConfigDep,
    StudyDep,
    StudyForEditor,
    StudyToDelete,
    TeamStudy,
)
from src.study.exceptions import (
    CommentRequiredError,
    ForbiddenError,
    InvalidSampleError,
    InvalidTransitionError,
    MemberNotFoundError,
    OwnerNotMemberError,
    PreconditionFailedError,
    SampleIdTakenError,
    SampleNotFoundError,
    StudyIncompleteError,
    StudyLockedError,
    StudyNotFoundError,
    UserNotFoundError,
)
from src.study.models import Sample, StudyEvent, StudyMember
from src.study.schemas import (
    EventRead,
    MemberIn,
    MemberRead,
    Readiness,
    ReviewIn,
    SampleCreate,
    SampleRead,
    SampleUpdate,
    StudyCreate,
    StudyRead,
    StudyUpdate,
)
from src.study.visibility import Scope, StudyView

router = APIRouter(prefix="/studies", tags=["studies"])

# What a guarded route may answer before its own work: no or a bad token, a role that does not
# allow the action, a study the caller may not see (see dependencies.py).
GUARDED = (InvalidTokenError, ForbiddenError, StudyNotFoundError)


def _with_etag(response: Response, view: StudyView) -> StudyView:
    response.headers["ETag"] = service.etag(view.study)
    return view


@router.post(
    "",
    response_model=StudyRead,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(InvalidTokenError, InvalidSampleError),
)
async def create_study(
    data: StudyCreate,
    user: CurrentUser,
    session: SessionDep,
    config: StudyConfigDep,
    response: Response,
) -> StudyView:
    """Create a draft study (optionally with its samples) and assign its accession."""
    study = await service.create(
        session, data=data, owner=user, accession_prefix=config.accession_prefix
    )
    # Its counts and the caller's role are known: no need to read it back.
    view = StudyView(study, AccessRole.OWNER)
    response.headers["Location"] = f"/api/v1/studies/{study.accession}"
    return _with_etag(response, view)


@router.get(
    "",
    response_model=Paginated[StudyRead],
    responses=error_responses(InvalidTokenError, ForbiddenError),
)
async def list_studies(
    user: OptionalUser,
    session: SessionDep,
    page: PageDep,
    config: StudyConfigDep,
    scope: Annotated[
        Scope | None,
        Query(description="mine (default when signed in), all (reviewers, admins), public"),
    ] = None,
    status_filter: Annotated[StudyStatus | None, Query(alias="status")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="accession, title, description, authors")
    ] = None,
    organism: Annotated[str | None, Query(max_length=200)] = None,
    sort: StudySort = StudySort.NEWEST,
    exact_total: Annotated[
        bool,
        Query(
            description="count every study a search matches, however many (by default a "
            "search counts up to SEARCH_TOTAL_LIMIT and says total_exact: false past it)"
        ),
    ] = False,
) -> Response:
    """Search studies: yours, all of them (reviewers, admins) or the public ones."""
    effective = visibility.resolve_scope(user, scope)
    found = await listing.list_studies(
        session,
        user=user,
        scope=effective,
        status=status_filter,
        q=q,
        organism=organism,
        sort=sort,
        page=page,
        search_total_limit=None if exact_total else config.search_total_limit,
    )
    # The rows' values, typed by their columns, written once as the response model would write
    # them (src/schemas.plain_json), not validated into models first.
    return Response(plain_json(found), media_type="application/json")


@router.get("/{study}", response_model=StudyRead, responses=error_responses(StudyNotFoundError))
async def get_study(view: StudyDep, response: Response) -> StudyView:
    """A study by UUID or accession, with its ETag."""
    return _with_etag(response, view)


@router.patch(
    "/{study}",
    response_model=StudyRead,
    responses=error_responses(*GUARDED, StudyLockedError, PreconditionFailedError),
)
async def update_study(
    data: StudyUpdate,
    view: DraftForEditor,
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    if_match: Annotated[
        str | None,
        Header(description="The study's ETag as last read; another one: 412 PRECONDITION_FAILED"),
    ] = None,
) -> StudyView:
    """Change a draft's title, description, authors or release date (If-Match optional)."""
    service.check_if_match(view.study, if_match)
    await service.update_study(session, study=view.study, data=data, actor=user)
    return _with_etag(response, await visibility.refresh_view(session, view=view, user=user))


@router.delete(
    "/{study}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*GUARDED, StudyLockedError),
)
async def delete_study(view: StudyToDelete, session: SessionDep, storage: StorageDep) -> None:
    """Delete a study with its samples, files and stored objects (owner: draft; admin)."""
    await service.delete_study(session, study=view.study, storage=storage)


@router.get("/{study}/readiness", response_model=Readiness, responses=error_responses(*GUARDED))
async def study_readiness(view: TeamStudy, session: SessionDep) -> Readiness:
    """The submit checks, without submitting."""
    problems = await readiness.find_problems(session, study=view.study)
    return Readiness(ready=not problems, problems=problems)


@router.post(
    "/{study}/submit",
    response_model=StudyRead,
    responses=error_responses(*GUARDED, InvalidTransitionError, StudyIncompleteError),
)
async def submit_study(
    view: StudyForEditor,
    user: CurrentUser,
    session: SessionDep,
    config: StudyConfigDep,
    storage: StorageDep,
) -> StudyView:
    """Submit a complete draft for review (or publish it when review is not required)."""
    await service.submit(
        session,
        study=view.study,
        actor=user,
        review_required=config.review_required,
        storage=storage,
    )
    return await visibility.refresh_view(session, view=view, user=user)


@router.post(
    "/{study}/withdraw",
    response_model=StudyRead,
    responses=error_responses(*GUARDED, InvalidTransitionError),
)
async def withdraw_study(view: OwnedStudy, user: CurrentUser, session: SessionDep) -> StudyView:
    """Take a study under review back to draft."""
    await service.withdraw(session, study=view.study, actor=user)
    return await visibility.refresh_view(session, view=view, user=user)


@router.post(
    "/{study}/review",
    response_model=StudyRead,
    responses=error_responses(*GUARDED, InvalidTransitionError, CommentRequiredError),
)
async def review_study(
    data: ReviewIn, view: ReviewableStudy, user: CurrentUser, session: SessionDep
) -> StudyView:
    """Approve (publish) a study under review, or send it back with a comment."""
    await service.review(
        session, study=view.study, actor=user, decision=data.decision, comment=data.comment
    )
    return await visibility.refresh_view(session, view=view, user=user)


@router.get(
    "/{study}/events", response_model=Paginated[EventRead], responses=error_responses(*GUARDED)
)
async def study_events(view: TeamStudy, session: SessionDep, page: PageDep) -> PageOf[StudyEvent]:
    """The audit trail of a study, newest first."""
    return await service.list_events(session, study=view.study, page=page)


@router.get(
    "/{study}/members", response_model=list[MemberRead], responses=error_responses(*GUARDED)
)
async def study_members(view: TeamStudy, session: SessionDep) -> list[StudyMember]:
    """The members of a study and their roles."""
    return await service.list_members(session, study=view.study)


@router.put(
    "/{study}/members",
    response_model=MemberRead,
    responses=error_responses(
        *GUARDED,
        UserNotFoundError,
        OwnerNotMemberError,
        TooManyAttemptsError,
    ),
    dependencies=[MEMBER_LOOKUPS],
)
async def set_study_member(
    data: MemberIn, view: OwnedStudy, user: CurrentUser, session: SessionDep, storage: StorageDep
) -> StudyMember:
    """Add a member by email, or change their role; look-ups are throttled per caller."""
    return await service.set_member(
        session,
        study=view.study,
        email=str(data.email),
        role=data.role,
        actor=user,
        storage=storage,
    )


@router.delete(
    "/{study}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*GUARDED, MemberNotFoundError),
)
async def remove_study_member(
    user_id: uuid.UUID,
    view: OwnedStudy,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
) -> None:
    """Remove a member from a study; their unfinished uploads to it end."""
    await service.remove_member(
        session, study=view.study, user_id=user_id, actor=user, storage=storage
    )


samples_router = APIRouter(prefix="/studies/{study}/samples", tags=["samples"])


@samples_router.get(
    "", response_model=Paginated[SampleRead], responses=error_responses(StudyNotFoundError)
)
async def list_samples(
    view: StudyDep,
    session: SessionDep,
    page: PageDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    organism: Annotated[str | None, Query(max_length=200)] = None,
    sex: Annotated[str | None, Query(max_length=64)] = None,
) -> PageOf[Sample]:
    """The samples of a study, with their files."""
    return await service.list_samples(
        session, study=view.study, q=q, organism=organism, sex=sex, page=page
    )


@samples_router.post(
    "",
    response_model=SampleRead,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(*GUARDED, StudyLockedError, SampleIdTakenError, InvalidSampleError),
)
async def create_sample(
    data: SampleCreate, view: DraftForEditor, user: CurrentUser, session: SessionDep
) -> Sample:
    """Add a sample to a draft, checked against the checklist."""
    return await service.create_sample(session, study=view.study, data=data, actor=user)


@samples_router.get(
    "/{sample_id}",
    response_model=SampleRead,
    responses=error_responses(StudyNotFoundError, SampleNotFoundError),
)
async def get_sample(sample: SampleDep) -> Sample:
    """One sample with its files."""
    return sample


@samples_router.patch(
    "/{sample_id}",
    response_model=SampleRead,
    responses=error_responses(
        *GUARDED, SampleNotFoundError, StudyLockedError, SampleIdTakenError, InvalidSampleError
    ),
)
async def update_sample(
    data: SampleUpdate,
    sample: EditableSample,
    view: DraftForEditor,
    user: CurrentUser,
    session: SessionDep,
) -> Sample:
    """Change a sample of a draft; the checklist applies to the result."""
    return await service.update_sample(
        session, study=view.study, sample=sample, data=data, actor=user
    )


@samples_router.delete(
    "/{sample_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*GUARDED, SampleNotFoundError, StudyLockedError),
)
async def delete_sample(
    sample: EditableSample,
    view: DraftForEditor,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
) -> None:
    """Delete a sample of a draft with its files."""
    await service.delete_samples(
        session, study=view.study, samples=[sample], storage=storage, actor=user
    )
