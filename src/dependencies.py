"""Shared dependencies: the request's database session, paging, and (from auth) the caller.

Routes declare what they need with these ``Annotated`` aliases; loading and authorising happen
here, once, never repeated in a route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth import service as auth_service
from src.auth.constants import TOKEN_URL
from src.auth.exceptions import ForbiddenError, InvalidTokenError
from src.auth.jwt import decode_access_token
from src.auth.models import User, UserRole
from src.auth.state import AuthState, auth_state
from src.database import get_session
from src.logging import user_id_var

MAX_PAGE_SIZE = 100

# scope="function": the transaction commits when the route returns, before the response is sent.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


@dataclass(frozen=True)
class Page:
    """Validated ``?page=&page_size=``, with the SQL offset it implies."""

    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


async def paging(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="items per page")] = 20,
) -> Page:
    return Page(page=page, page_size=page_size)


PageDep = Annotated[Page, Depends(paging)]


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
    auth: Annotated[AuthState, Depends(auth_state)],
    token: Annotated[str | None, Depends(optional_oauth2_scheme)],
) -> User | None:
    """The caller, or None without an Authorization header; any bad token is 401 INVALID_TOKEN.

    The user is loaded on every request, so deactivating or deleting an account (or changing its
    role) takes effect at once, whatever tokens it holds."""
    if "authorization" not in request.headers:
        return None
    if not token:
        raise InvalidTokenError()
    user_id = decode_access_token(token, secret=auth.secret, config=auth.config)
    user = await auth_service.get(session, user_id=user_id)
    if user is None or not user.is_active:
        raise InvalidTokenError("The account of this token no longer exists or is deactivated.")
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
