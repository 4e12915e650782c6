"""Accounts, logins and token rotation. Plain async functions over an AsyncSession: they flush,
never commit, and refuse with the module's AppError subclasses."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from src.auth.constants import REFRESH_TOKEN_BYTES
from src.auth.deferred import Deferred
from src.auth.exceptions import (
    EmailTakenError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    OwnAccountError,
    RefreshTokenReusedError,
    UserInactiveError,
    WeakPasswordError,
    WrongPasswordError,
)
from src.auth.jwt import encode_access_token
from src.auth.models import RefreshToken, User, UserRole
from src.auth.passwords import PasswordHasher
from src.auth.ratelimit import Attempts
from src.auth.schemas import (
    MeUpdate,
    PasswordChange,
    RegisterIn,
    TokenPair,
    UserAdminUpdate,
    UserQuery,
)
from src.database import contains, utcnow
from src.schemas import Page, PageOf, paginate

if TYPE_CHECKING:
    from src.auth.state import AuthState


def hash_refresh_token(token: str) -> str:
    """Refresh tokens carry 256 random bits, so a plain SHA-256 is a safe lookup key."""
    return hashlib.sha256(token.encode()).hexdigest()


async def get(session: AsyncSession, *, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_by_email(session: AsyncSession, *, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    full_name: str,
    passwords: PasswordHasher,
    role: UserRole = UserRole.RESEARCHER,
) -> User:
    email = email.strip().lower()
    if await get_by_email(session, email=email) is not None:
        raise EmailTakenError()
    user = User(
        email=email,
        full_name=full_name,
        password_hash=await passwords.hash(password),
        role=role,
        is_active=True,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # the same email registered concurrently
        raise EmailTakenError() from exc
    return user


async def register(
    session: AsyncSession, *, data: RegisterIn, passwords: PasswordHasher, attempts: Attempts
) -> User:
    await attempts.consume(data.email)
    return await create_user(
        session,
        email=data.email,
        password=data.password,
        full_name=data.full_name,
        passwords=passwords,
    )


async def ensure_first_admin(
    session: AsyncSession, *, email: str, password: str, passwords: PasswordHasher
) -> bool:
    """Create the configured first admin unless that account exists (it is never overwritten)."""
    if await get_by_email(session, email=email) is not None:
        return False
    await create_user(
        session,
        email=email,
        password=password,
        full_name="Administrator",
        passwords=passwords,
        role=UserRole.ADMIN,
    )
    return True


async def _issue_tokens(
    session: AsyncSession, *, user: User, auth: AuthState, family_id: uuid.UUID | None = None
) -> tuple[TokenPair, RefreshToken]:
    now = utcnow()
    raw = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    stored = RefreshToken(
        id=uuid.uuid4(),
        user_id=user.id,
        family_id=family_id or uuid.uuid4(),
        token_hash=hash_refresh_token(raw),
        created_at=now,
        expires_at=now + timedelta(days=auth.config.refresh_token_days),
    )
    session.add(stored)
    await session.flush()
    access = encode_access_token(
        user_id=user.id,
        secret=auth.secret,
        config=auth.config,
        generation=user.token_generation,
        now=now,
    )
    pair = TokenPair(
        access_token=access,
        refresh_token=raw,
        expires_in=auth.config.access_token_minutes * 60,
    )
    return pair, stored


async def login(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    auth: AuthState,
    attempts: Attempts,
    deferred: Deferred,
) -> TokenPair:
    """Check the password (against a dummy hash for an unknown email) and open a session."""
    # Counted first, in its own transaction, before this request's session is used.
    await attempts.consume(email)
    user = await get_by_email(session, email=email)
    stored_hash = user.password_hash if user is not None else await auth.passwords.dummy_hash()
    matches, new_hash = await auth.passwords.verify(password, stored_hash)
    if user is None or not matches:
        raise InvalidCredentialsError()

    async def refund(_: AsyncSession) -> None:
        await attempts.refund()

    deferred.add(refund)
    if not user.is_active:
        raise UserInactiveError()
    if new_hash is not None:  # the cost parameters changed since this password was hashed
        user.password_hash = new_hash
    pair, _ = await _issue_tokens(session, user=user, auth=auth)
    return pair


async def revoke_family(session: AsyncSession, *, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def revoke_all(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def end_access_tokens(session: AsyncSession, *, user: User) -> None:
    """End every access token of ``user`` issued so far: raise their token generation.

    One atomic ``UPDATE ... SET token_generation = token_generation + 1``, so concurrent calls
    each count; it also takes the user's row lock until the request commits, which a concurrent
    ``refresh`` waits for (see there). Call it before revoking refresh tokens in the same
    transaction, so that revocation sees what a refresh that held the lock committed."""
    generation = await session.scalar(
        update(User)
        .where(User.id == user.id)
        .values(token_generation=User.token_generation + 1)
        .returning(User.token_generation)
        .execution_options(synchronize_session=False)
    )
    if generation is not None:
        set_committed_value(user, "token_generation", generation)


async def end_all_sessions(session: AsyncSession, *, user: User) -> None:
    """Every refresh token and every access token of ``user`` stop working."""
    await end_access_tokens(session, user=user)
    await revoke_all(session, user_id=user.id)


async def refresh(
    session: AsyncSession, *, token: str, auth: AuthState, deferred: Deferred
) -> TokenPair:
    """Rotate a refresh token. A rotated token presented again revokes its whole family."""
    now = utcnow()
    stored = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token))
    )
    if stored is None:
        raise InvalidRefreshTokenError()
    reuse = partial(revoke_family, family_id=stored.family_id)
    if stored.revoked_at is not None:
        if stored.replaced_by_id is not None:
            deferred.add(reuse)
            raise RefreshTokenReusedError()
        raise InvalidRefreshTokenError()
    if stored.expires_at <= now:
        raise InvalidRefreshTokenError()
    # Locked (FOR NO KEY UPDATE on PostgreSQL, the lock an UPDATE takes), so a logout or password
    # change of this user (which raises the token generation first) waits for this rotation to
    # commit and then revokes its new token too, or this rotation waits for it and finds its token
    # revoked: an ended session never keeps a live token.
    user = await session.get(
        User, stored.user_id, with_for_update={"key_share": True}, populate_existing=True
    )
    if user is None:
        raise InvalidRefreshTokenError()
    if not user.is_active:
        raise UserInactiveError()
    pair, replacement = await _issue_tokens(
        session, user=user, auth=auth, family_id=stored.family_id
    )
    # Conditional, so of two concurrent refreshes with one token only one rotates it.
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == stored.id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now, replaced_by_id=replacement.id)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:
        deferred.add(reuse)
        raise RefreshTokenReusedError()
    return pair


async def logout(session: AsyncSession, *, user: User, token: str | None) -> None:
    """End the caller's access tokens and revoke the session (token family) the refresh token
    belongs to, if it is theirs.

    Access tokens carry no session, so all of the user's access tokens end (the token generation
    is per user): the user's other sessions keep their refresh tokens and get a new access token
    on their next refresh."""
    await end_access_tokens(session, user=user)
    if token is None:
        return
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(
            RefreshToken.token_hash == hash_refresh_token(token),
            RefreshToken.user_id == user.id,
        )
    )
    if family_id is not None:
        await revoke_family(session, family_id=family_id)


async def logout_all(session: AsyncSession, *, user: User) -> None:
    """End every session of the caller: all refresh tokens and all access tokens."""
    await end_all_sessions(session, user=user)


async def update_me(session: AsyncSession, *, user: User, data: MeUpdate) -> User:
    user.full_name = data.full_name
    await session.flush()
    return user


async def change_password(
    session: AsyncSession, *, user: User, data: PasswordChange, passwords: PasswordHasher
) -> None:
    """Set a new password and sign out every session of the user (refresh and access tokens)."""
    matches, _ = await passwords.verify(data.current_password, user.password_hash)
    if not matches:
        raise WrongPasswordError()
    if data.new_password.lower() == user.email:
        raise WeakPasswordError()
    user.password_hash = await passwords.hash(data.new_password)
    await end_all_sessions(session, user=user)
    await session.flush()


async def list_users(session: AsyncSession, *, query: UserQuery, page: Page) -> PageOf[User]:
    conditions = []
    if query.q:
        text = query.q.lower()
        conditions.append(
            or_(contains(User.email, text), contains(func.lower(User.full_name), text))
        )
    if query.role is not None:
        conditions.append(User.role == query.role)
    statement = select(User).where(*conditions).order_by(User.created_at, User.id)
    return await paginate(session, statement, page=page)


async def admin_update(
    session: AsyncSession, *, user: User, data: UserAdminUpdate, actor: User
) -> User:
    """Change a user's role or active flag; deactivation also ends their refresh and access
    tokens (so reactivating the account does not bring its old tokens back)."""
    if user.id == actor.id and (
        (data.role is not None and data.role != UserRole.ADMIN) or data.is_active is False
    ):
        raise OwnAccountError()
    if data.role is not None:
        user.role = data.role
    if data.is_active is not None:
        user.is_active = data.is_active
        if not data.is_active:
            await end_all_sessions(session, user=user)
    await session.flush()
    return user
