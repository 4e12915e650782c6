"""Accounts, logins and token rotation. Plain async functions over an AsyncSession: they flush,
never commit, and refuse with the module's AppError subclasses.

Password hashing never runs while a database connection or transaction is held: what it needs is
read in a short session of its own (or before the request's transaction is ended), and the
writes follow in the request's transaction, conditional on the verified hash being still the
stored one."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
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
from src.auth.password_policy import weakness
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
from src.exceptions import ServiceBusyError
from src.schemas import Page, PageOf, paginate

if TYPE_CHECKING:
    from src.auth.state import AuthState


def hash_refresh_token(token: str) -> str:
    """Refresh tokens carry 256 random bits, so a plain SHA-256 is a safe lookup key."""
    return hashlib.sha256(token.encode()).hexdigest()


async def get(session: AsyncSession, *, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


# The caller's row, read on every authenticated request: one statement built once (its cache
# key computed once), rather than ``session.get``'s, built per call.
_CALLER = select(User).where(User.id == bindparam("user_id"))


async def get_caller(session: AsyncSession, *, user_id: uuid.UUID) -> User | None:
    """The account of a request's token, read from the database (what ``get`` gives, in a
    fresh session, at two thirds of its cost)."""
    return (await session.execute(_CALLER, {"user_id": user_id})).scalar_one_or_none()


async def get_by_email(session: AsyncSession, *, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


def check_new_password(password: str, *, email: str, field: str) -> None:
    """Refuse a password the policy forbids (WEAK_PASSWORD naming ``field`` and the reason)."""
    reason = weakness(password, email=email)
    if reason is not None:
        raise WeakPasswordError(reason, field=field)


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str,
    full_name: str,
    role: UserRole = UserRole.RESEARCHER,
) -> User:
    """Insert an account whose password the caller has hashed (with no connection held)."""
    email = email.strip().lower()
    if await get_by_email(session, email=email) is not None:
        raise EmailTakenError()
    user = User(
        email=email,
        full_name=full_name,
        password_hash=password_hash,
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
    """Create a researcher. The password is hashed before the request's session is first used,
    so no connection or transaction is held while hashing."""
    check_new_password(data.password, email=data.email, field="password")
    await attempts.consume(data.email)
    try:
        password_hash = await passwords.hash(data.password)
    except ServiceBusyError:
        await attempts.refund()  # turned away before anything was done: no attempt
        raise
    return await create_user(
        session, email=data.email, password_hash=password_hash, full_name=data.full_name
    )


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


async def _stored_hash(
    sessionmaker: async_sessionmaker[AsyncSession], *, email: str
) -> tuple[uuid.UUID, str] | None:
    """An account's id and password hash, read in a short session of its own and closed before
    the caller hashes."""
    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(User.id, User.password_hash).where(User.email == email.strip().lower())
            )
        ).first()
    return None if row is None else (row.id, row.password_hash)


async def login(
    session: AsyncSession,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    email: str,
    password: str,
    auth: AuthState,
    attempts: Attempts,
    deferred: Deferred,
) -> TokenPair:
    """Check the password (against a dummy hash for an unknown email) and open a session.

    The hash is read in a short session of its own and verified with no connection held; the
    request's session (its transaction) is first used after, for the writes."""
    # Counted first, in its own transaction, before anything else.
    await attempts.consume(email)
    found = await _stored_hash(sessionmaker, email=email)
    try:
        stored_hash = found[1] if found is not None else await auth.passwords.dummy_hash()
        matches, new_hash = await auth.passwords.verify(password, stored_hash)
    except ServiceBusyError:
        await attempts.refund()  # turned away before any password was checked: no attempt
        raise
    if found is None or not matches:
        raise InvalidCredentialsError()
    user = await get(session, user_id=found[0])
    if user is None or user.password_hash != stored_hash:  # gone, or the password changed since
        raise InvalidCredentialsError()

    async def refund(_: AsyncSession) -> None:
        await attempts.refund()

    deferred.add(refund)
    if not user.is_active:
        raise UserInactiveError()
    # The cost parameters changed since this password was hashed: store the new hash, unless a
    # password change got in first.
    if new_hash is not None and not await _replace_hash(
        session, user=user, old=stored_hash, new=new_hash
    ):
        raise InvalidCredentialsError()
    pair, _ = await _issue_tokens(session, user=user, auth=auth)
    return pair


async def _replace_hash(session: AsyncSession, *, user: User, old: str, new: str) -> bool:
    """Set the user's password hash to ``new`` if it is still ``old`` (what was verified), so a
    concurrent change is never overwritten. False when it was no longer ``old``."""
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(User)
            .where(User.id == user.id, User.password_hash == old)
            .values(password_hash=new)
        ),
    )
    return result.rowcount == 1


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
    """Set a new password and sign out every session of the user (refresh and access tokens).

    The caller must hold no transaction in ``session`` (the route's ``ReleasedUser`` ends the
    one that loaded the user): both hashes run with no connection held, and the writes start a
    new transaction, storing the new hash only if the verified one is still current."""
    check_new_password(data.new_password, email=user.email, field="new_password")
    current_hash = user.password_hash
    matches, _ = await passwords.verify(data.current_password, current_hash)
    if not matches:
        raise WrongPasswordError()
    new_hash = await passwords.hash(data.new_password)
    if not await _replace_hash(session, user=user, old=current_hash, new=new_hash):
        raise WrongPasswordError()  # changed by another request since it was verified
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
