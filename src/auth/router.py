"""Routes of the auth module: accounts, tokens and roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from src.auth import service as auth_service
from src.auth.dependencies import (
    AdminUser,
    AuthStateDep,
    CurrentUser,
    DeferredDep,
    LoginAttempts,
    LoginForm,
    PresentedRefreshToken,
    RegisterAttempts,
    RequiredRefreshToken,
    UserById,
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
from src.exceptions import ErrorOut, Responses
from src.schemas import PageOf, Paginated

router = APIRouter(prefix="/auth", tags=["auth"])

# Declared on every route: the error envelope and the codes it may carry.
UNAUTHORIZED: Responses = {401: {"model": ErrorOut, "description": "INVALID_TOKEN"}}
FORBIDDEN: Responses = {403: {"model": ErrorOut, "description": "FORBIDDEN"}}
INVALID: Responses = {422: {"model": ErrorOut, "description": "VALIDATION_ERROR"}}
THROTTLED: Responses = {
    429: {"model": ErrorOut, "description": "TOO_MANY_ATTEMPTS (see Retry-After)"}
}
LOGIN_ERRORS: Responses = {
    401: {"model": ErrorOut, "description": "INVALID_CREDENTIALS"},
    403: {"model": ErrorOut, "description": "USER_INACTIVE"},
    **INVALID,
    **THROTTLED,
}


@router.post(
    "/register",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": ErrorOut, "description": "EMAIL_TAKEN"}, **INVALID, **THROTTLED},
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
    auth: AuthStateDep,
    response: Response,
) -> TokenPair:
    """Exchange email and password for tokens; the refresh token is also set as a cookie."""
    pair = await auth_service.login(
        session,
        email=data.email,
        password=data.password,
        auth=auth,
        attempts=attempts,
        deferred=deferred,
    )
    set_refresh_cookie(response, pair, auth.config)
    return pair


@router.post("/token", response_model=TokenPair, responses=LOGIN_ERRORS)
async def token(
    deferred: DeferredDep,
    form: LoginForm,
    attempts: LoginAttempts,
    session: SessionDep,
    auth: AuthStateDep,
) -> TokenPair:
    """OAuth2 password flow (``username`` is the email), for /docs' Authorize and OAuth2 clients."""
    return await auth_service.login(
        session,
        email=form.email,
        password=form.password,
        auth=auth,
        attempts=attempts,
        deferred=deferred,
    )


@router.post(
    "/refresh",
    response_model=TokenPair,
    responses={
        401: {
            "model": ErrorOut,
            "description": "INVALID_REFRESH_TOKEN or REFRESH_TOKEN_REUSED (family revoked)",
        },
        403: {"model": ErrorOut, "description": "USER_INACTIVE"},
        **INVALID,
    },
)
async def refresh(
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
    responses={**UNAUTHORIZED, **INVALID},
)
async def logout(
    user: CurrentUser,
    refresh_token: PresentedRefreshToken,
    session: SessionDep,
    auth: AuthStateDep,
    response: Response,
) -> None:
    """Revoke this session's refresh token (body or cookie) and clear the cookie."""
    await auth_service.logout(session, user=user, token=refresh_token)
    clear_refresh_cookie(response, auth.config)


@router.get("/me", response_model=UserRead, responses=UNAUTHORIZED)
async def read_me(user: CurrentUser) -> User:
    """The caller's account."""
    return user


@router.patch("/me", response_model=UserRead, responses={**UNAUTHORIZED, **INVALID})
async def update_me(data: MeUpdate, user: CurrentUser, session: SessionDep) -> User:
    """Change the caller's name."""
    return await auth_service.update_me(session, user=user, data=data)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        400: {"model": ErrorOut, "description": "WRONG_PASSWORD"},
        **UNAUTHORIZED,
        422: {"model": ErrorOut, "description": "VALIDATION_ERROR or WEAK_PASSWORD"},
    },
)
async def change_password(
    data: PasswordChange, user: CurrentUser, session: SessionDep, auth: AuthStateDep
) -> None:
    """Change the caller's password; every refresh token of the account is revoked."""
    await auth_service.change_password(session, user=user, data=data, passwords=auth.passwords)


@router.get(
    "/users",
    response_model=Paginated[UserRead],
    responses={**UNAUTHORIZED, **FORBIDDEN, **INVALID},
)
async def list_users(
    query: Annotated[UserQuery, Query()], page: PageDep, _: AdminUser, session: SessionDep
) -> PageOf[User]:
    """Admin: a page of users, filtered by ``q`` (email or name) and ``role``."""
    return await auth_service.list_users(session, query=query, page=page)


@router.patch(
    "/users/{user_id}",
    response_model=UserRead,
    responses={
        **UNAUTHORIZED,
        **FORBIDDEN,
        404: {"model": ErrorOut, "description": "USER_NOT_FOUND"},
        409: {"model": ErrorOut, "description": "OWN_ACCOUNT"},
        **INVALID,
    },
)
async def update_user(
    data: UserAdminUpdate, admin: AdminUser, user: UserById, session: SessionDep
) -> User:
    """Admin: change a user's role or deactivate / reactivate the account."""
    return await auth_service.admin_update(session, user=user, data=data, actor=admin)
