"""Auth's dependencies: the caller (``CurrentUser``, ``OptionalUser``) and the role guards, used
by every module; and those of the auth routes: the caller with no transaction held (for routes
that hash), the session factory, the rate-limit attempts of a login or registration, writes kept
outside the request's transaction, the presented refresh token, the OAuth2 form, and the user
addressed by an admin route."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Body, Cookie, Depends, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from src.auth import service as auth_service
from src.auth.constants import REFRESH_COOKIE_NAME, REFRESH_TOKEN_MAX_LENGTH, TOKEN_URL
from src.auth.deferred import Deferred
from src.auth.exceptions import (
    ForbiddenError,
    InvalidRefreshTokenError,
    InvalidTokenError,
    UserNotFoundError,
)
from src.auth.models import User, UserRole
from src.auth.ratelimit import Attempts, attempts, throttle
from src.auth.schemas import LoginIn, RefreshIn
from src.auth.state import AuthState, auth_state
from src.dependencies import SessionDep
from src.logging import user_id_var

AuthStateDep = Annotated[AuthState, Depends(auth_state)]


class OptionalOAuth2PasswordBearer(OAuth2PasswordBearer):
    """The bearer scheme of a caller who may also be anonymous: the document gives operations
    that need no other scheme an empty ``{}`` security alternative (src/openapi.py)."""

    optional = True


# The Authorize button of /docs posts the OAuth2 password form here. auto_error is off so a missing
# token gets the one error envelope (401 INVALID_TOKEN) rather than FastAPI's own. One scheme in
# the document, two instances: ``current_user`` declares the required one.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
optional_oauth2_scheme = OptionalOAuth2PasswordBearer(
    tokenUrl=TOKEN_URL, auto_error=False, scheme_name="OAuth2PasswordBearer"
)


async def optional_user(
    request: Request,
    session: SessionDep,
    auth: AuthStateDep,
    token: Annotated[str | None, Depends(optional_oauth2_scheme)],
) -> User | None:
    """The caller, or None without an Authorization header; any bad token is 401 INVALID_TOKEN.

    The user is loaded on every request, so deactivating or deleting an account (or changing its
    role) takes effect at once, whatever tokens it holds; and a token issued before the account's
    current token generation (logout, password change, deactivation, logout-all) is refused by
    comparing the loaded row with the token's claim, without another query."""
    if "authorization" not in request.headers:
        return None
    if not token:
        raise InvalidTokenError()
    claims = auth.access_claims(token)
    user = await auth_service.get_caller(session, user_id=claims.user_id)
    if user is None or not user.is_active:
        raise InvalidTokenError("The account of this token no longer exists or is deactivated.")
    if claims.generation != user.token_generation:
        raise InvalidTokenError("This access token was ended by a logout or a password change.")
    user_id_var.set(str(user.id))
    return user


async def current_user(
    user: Annotated[User | None, Depends(optional_user)],
    _required: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    """The authenticated caller; 401 INVALID_TOKEN (with WWW-Authenticate: Bearer) otherwise.

    ``_required`` only declares, for the document, that the bearer token is not optional here."""
    if user is None:
        raise InvalidTokenError("Not authenticated.")
    return user


OptionalUser = Annotated[User | None, Depends(optional_user)]
CurrentUser = Annotated[User, Depends(current_user)]


async def released_user(user: CurrentUser, session: SessionDep) -> User:
    """The authenticated caller, with the request's transaction (which has only read them so
    far) ended, so the route can hash a password with no connection held; its writes start a new
    transaction, committed with the request as usual. The user stays loaded and attached."""
    await session.commit()
    return user


ReleasedUser = Annotated[User, Depends(released_user)]


def require_role(*roles: UserRole) -> Callable[[User], Awaitable[User]]:
    """A dependency admitting only callers with one of ``roles``; others get 403 FORBIDDEN."""
    allowed = frozenset(roles)

    async def has_role(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise ForbiddenError()
        return user

    return has_role


ReviewerUser = Annotated[User, Depends(require_role(UserRole.REVIEWER, UserRole.ADMIN))]
AdminUser = Annotated[User, Depends(require_role(UserRole.ADMIN))]


async def deferred_writes(request: Request) -> AsyncIterator[Deferred]:
    """Runs what services deferred once the request's session is closed (declare it first)."""
    deferred = Deferred()
    try:
        yield deferred
    finally:
        await deferred.run(request.app.state.sessionmaker)


DeferredDep = Annotated[Deferred, Depends(deferred_writes, scope="function")]


async def app_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """The application's session factory, for short sessions of their own (a login reads the
    password hash in one, closed before verifying it)."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(app_sessionmaker)]


def client_address(request: Request) -> str:
    """The client's IP; behind a proxy, uvicorn's proxy_headers has already resolved it."""
    return request.client.host if request.client else "unknown"


async def login_attempts(request: Request, auth: AuthStateDep) -> Attempts:
    """Failed logins are limited per account and client, and per client."""
    return attempts(
        auth.rate_limit_storage(request.app.state.sessionmaker),
        namespace="login",
        client=client_address(request),
        per_account=auth.config.login_rate_limit,
        per_client=auth.config.login_ip_rate_limit,
    )


async def register_attempts(request: Request, auth: AuthStateDep) -> Attempts:
    """Registrations are limited per email and per client."""
    return attempts(
        auth.rate_limit_storage(request.app.state.sessionmaker),
        namespace="register",
        client=client_address(request),
        per_account=auth.config.register_rate_limit,
        per_client=auth.config.register_rate_limit,
        per_account_includes_client=False,
    )


def account_lookups(namespace: str) -> Callable[..., Awaitable[None]]:
    """A dependency counting the caller's look-ups of accounts in ``namespace`` against
    LOOKUP_RATE_LIMIT; 429 TOO_MANY_ATTEMPTS with Retry-After beyond it.

    Declare it in the route decorator's ``dependencies``, which run before the parameters'
    dependencies: it counts, in its own transaction, before the request's session is used (on
    SQLite the request's transaction holds the write lock, which the count would wait for). The
    caller is the subject of the bearer token, read without the database; a request without a
    valid token is not counted here, and the caller's dependency refuses it with 401."""

    async def count_lookup(
        request: Request,
        auth: AuthStateDep,
        token: Annotated[str | None, Depends(oauth2_scheme)],
    ) -> None:
        if not token:
            return
        try:
            claims = auth.access_claims(token)
        except InvalidTokenError:
            return
        await throttle(
            auth.rate_limit_storage(request.app.state.sessionmaker),
            namespace=namespace,
            limit=auth.config.lookup_rate_limit,
        ).consume(str(claims.user_id))

    return count_lookup


LoginAttempts = Annotated[Attempts, Depends(login_attempts)]
RegisterAttempts = Annotated[Attempts, Depends(register_attempts)]


class EmailPasswordForm(OAuth2PasswordRequestForm):
    """The OAuth2 password form, its ``username`` documented as what it is: the email."""

    def __init__(
        self,
        *,
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        username: Annotated[
            str, Form(description="The account's email.", json_schema_extra={"format": "email"})
        ],
        password: Annotated[str, Form(json_schema_extra={"format": "password"})],
        scope: Annotated[str, Form()] = "",
        client_id: Annotated[str | None, Form()] = None,
        client_secret: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
        )


async def login_form(form: Annotated[EmailPasswordForm, Depends()]) -> LoginIn:
    """The OAuth2 password form (``username`` is the email), checked like a JSON login."""
    try:
        return LoginIn(email=form.username, password=form.password)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


LoginForm = Annotated[LoginIn, Depends(login_form)]


async def presented_refresh_token(
    data: Annotated[RefreshIn | None, Body()] = None,
    refresh_token: Annotated[str | None, Cookie(alias=REFRESH_COOKIE_NAME)] = None,
) -> str | None:
    """The refresh token from the body, else from the cookie."""
    if data is not None and data.refresh_token:
        return data.refresh_token
    if refresh_token and len(refresh_token) <= REFRESH_TOKEN_MAX_LENGTH:
        return refresh_token
    return None


async def required_refresh_token(
    token: Annotated[str | None, Depends(presented_refresh_token)],
) -> str:
    if token is None:
        raise InvalidRefreshTokenError("No refresh token was presented.")
    return token


PresentedRefreshToken = Annotated[str | None, Depends(presented_refresh_token)]
RequiredRefreshToken = Annotated[str, Depends(required_refresh_token)]


async def user_by_id(user_id: uuid.UUID, session: SessionDep) -> User:
    user = await auth_service.get(session, user_id=user_id)
    if user is None:
        raise UserNotFoundError()
    return user


UserById = Annotated[User, Depends(user_by_id)]
