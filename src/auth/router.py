"""Routes of the auth module: accounts, tokens and roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from src.auth import service as auth_service
from src.auth.constants import AuthErrorCode
from src.auth.dependencies import (
    AdminUser,
    AuthStateDep,
    CurrentUser,
    DeferredDep,
    LoginAttempts,
    LoginForm,
    PresentedRefreshToken,
    RegisterAttempts,
    ReleasedUser,
    RequiredRefreshToken,
    SessionmakerDep,
    UserById,
    account_lookups,
)
from src.auth.exceptions import (
    EmailTakenError,
    ForbiddenError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    InvalidTokenError,
    OwnAccountError,
    RefreshTokenReusedError,
    TooManyAttemptsError,
    UserInactiveError,
    UserNotFoundError,
    WeakPasswordError,
    WrongPasswordError,
)
from src.auth.models import User
from src.auth.schemas import (
    LoginIn,
    MeUpdate,
    PasswordChange,
    RegisterIn,
    TokenPair,
    UserAdminUpdate,
    UserQuery,
    UserRead,
)
from src.auth.utils import clear_refresh_cookie, set_refresh_cookie
from src.dependencies import PageDep, SessionDep
from src.exceptions import (
    KernelErrorCode,
    MalformedRequestError,
    ServiceBusyError,
    error_responses,
)
from src.schemas import PageOf, Paginated

router = APIRouter(prefix="/auth", tags=["auth"])

# Auth's routes describe each error status by the codes it may carry. InvalidTokenError describes
# itself in words, as the other modules' routes show it, so here its 401 is reworded to its code.
INVALID_TOKEN = {401: AuthErrorCode.INVALID_TOKEN.value}
# The kernel's ServiceBusyError, on the routes that hash a password (the hasher's queue is full).
SERVICE_BUSY = {503: f"{KernelErrorCode.SERVICE_BUSY.value} (see Retry-After)"}
# Routes that hash a password may also find the hasher's queue full: 503 SERVICE_BUSY.
LOGIN_ERRORS = error_responses(
    InvalidCredentialsError,
    UserInactiveError,
    MalformedRequestError,
    TooManyAttemptsError,
    ServiceBusyError,
    descriptions=SERVICE_BUSY,
)


@router.post(
    "/register",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        EmailTakenError,
        MalformedRequestError,
        WeakPasswordError,
        TooManyAttemptsError,
        ServiceBusyError,
        descriptions=SERVICE_BUSY,
    ),
)
async def register(
    data: RegisterIn, attempts: RegisterAttempts, session: SessionDep, auth: AuthStateDep
) -> User:
    """Create a researcher account."""
    return await auth_service.register(
        session, data=data, passwords=auth.passwords, attempts=attempts
    )


@router.post("/login", response_model=TokenPair, responses=LOGIN_ERRORS)
async def login(
    *,
    deferred: DeferredDep,
    data: LoginIn,
    attempts: LoginAttempts,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    auth: AuthStateDep,
    response: Response,
) -> TokenPair:
    """Exchange email and password for tokens; the refresh token is also set as a cookie."""
    pair = await auth_service.login(
        session,
        sessionmaker=sessionmaker,
        email=data.email,
        password=data.password,
        auth=auth,
        attempts=attempts,
        deferred=deferred,
    )
    set_refresh_cookie(response, pair, auth.config)
    return pair


@router.post("/token", response_model=TokenPair, responses=LOGIN_ERRORS)
async def oauth2_token(
    deferred: DeferredDep,
    form: LoginForm,
    attempts: LoginAttempts,
    session: SessionDep,
    sessionmaker: SessionmakerDep,
    auth: AuthStateDep,
) -> TokenPair:
    """OAuth2 password flow (``username`` is the email), for /docs' Authorize and OAuth2 clients."""
    return await auth_service.login(
        session,
        sessionmaker=sessionmaker,
        email=form.email,
        password=form.password,
        auth=auth,
        attempts=attempts,
        deferred=deferred,
    )


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses=error_responses(
        InvalidRefreshTokenError, RefreshTokenReusedError, UserInactiveError, MalformedRequestError
    ),
)
async def refresh_tokens(
    deferred: DeferredDep,
    refresh_token: RequiredRefreshToken,
    session: SessionDep,
    auth: AuthStateDep,
    response: Response,
) -> TokenPair:
    """Rotate the refresh token (body or cookie) and return a new pair."""
    pair = await auth_service.refresh(session, token=refresh_token, auth=auth, deferred=deferred)
    set_refresh_cookie(response, pair, auth.config)
    return pair


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(InvalidTokenError, MalformedRequestError, descriptions=INVALID_TOKEN),
)
async def logout(
    user: CurrentUser,
    refresh_token: PresentedRefreshToken,
    session: SessionDep,
    auth: AuthStateDep,
    response: Response,
) -> None:
    """Revoke this session's refresh token (body or cookie) and end the caller's access tokens."""
    await auth_service.logout(session, user=user, token=refresh_token)
    clear_refresh_cookie(response, auth.config)


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(InvalidTokenError, descriptions=INVALID_TOKEN),
)
async def logout_all(
    user: CurrentUser, session: SessionDep, auth: AuthStateDep, response: Response
) -> None:
    """End every session of the caller: all refresh tokens and all access tokens, at once."""
    await auth_service.logout_all(session, user=user)
    clear_refresh_cookie(response, auth.config)


@router.get(
    "/me",
    response_model=UserRead,
    responses=error_responses(InvalidTokenError, descriptions=INVALID_TOKEN),
)
async def read_me(user: CurrentUser) -> User:
    """The caller's account."""
    return user


@router.patch(
    "/me",
    response_model=UserRead,
    responses=error_responses(InvalidTokenError, MalformedRequestError, descriptions=INVALID_TOKEN),
)
async def update_me(data: MeUpdate, user: CurrentUser, session: SessionDep) -> User:
    """Change the caller's name."""
    return await auth_service.update_me(session, user=user, data=data)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(
        WrongPasswordError,
        InvalidTokenError,
        MalformedRequestError,
        WeakPasswordError,
        ServiceBusyError,
        descriptions={**INVALID_TOKEN, **SERVICE_BUSY},
    ),
)
async def change_password(
    data: PasswordChange, user: ReleasedUser, session: SessionDep, auth: AuthStateDep
) -> None:
    """Change the caller's password; every refresh and access token of the account ends."""
    await auth_service.change_password(session, user=user, data=data, passwords=auth.passwords)


@router.get(
    "/users",
    response_model=Paginated[UserRead],
    responses=error_responses(
        InvalidTokenError,
        ForbiddenError,
        MalformedRequestError,
        TooManyAttemptsError,
        descriptions=INVALID_TOKEN,
    ),
    dependencies=[Depends(account_lookups("users"))],
)
async def list_users(
    query: Annotated[UserQuery, Query()], page: PageDep, _: AdminUser, session: SessionDep
) -> PageOf[User]:
    """Admin: a page of users, filtered by ``q`` (email or name) and ``role``; throttled."""
    return await auth_service.list_users(session, query=query, page=page)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    responses=error_responses(
        InvalidTokenError,
        ForbiddenError,
        UserNotFoundError,
        OwnAccountError,
        MalformedRequestError,
        descriptions=INVALID_TOKEN,
    ),
)
async def update_user(
    data: UserAdminUpdate, admin: AdminUser, user: UserById, session: SessionDep
) -> User:
    """Admin: change a user's role or deactivate / reactivate the account."""
    return await auth_service.admin_update(session, user=user, data=data, actor=admin)
