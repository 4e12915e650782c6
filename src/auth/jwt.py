"""Access tokens: short-lived HS256 (configurable) JWTs with ``sub``, ``exp``, ``iat``, ``jti``,
``iss``, ``aud`` and ``gen``. Decoding pins the configured algorithm and requires and checks every
standard claim, so ``alg: none``, another algorithm, another audience or issuer, or an expired token
is refused.

``gen`` is the account's token generation when the token was issued (``User.token_generation``);
the caller's dependency refuses a token whose generation is not the account's current one. A token
without ``gen`` (issued before the claim existed, at most ACCESS_TOKEN_MINUTES before the upgrade)
is read as generation 0, the generation every account started at: it keeps working until the
account's first logout, password change or deactivation, exactly like a token issued at 0."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from src.auth.config import AuthConfig
from src.auth.exceptions import InvalidTokenError
from src.database import utcnow

REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud"]
GENERATION_CLAIM = "gen"


@dataclass(frozen=True)
class AccessClaims:
    """What a valid access token says: whose it is, and the token generation it was issued at."""

    user_id: uuid.UUID
    generation: int


def encode_access_token(
    *,
    user_id: uuid.UUID,
    secret: str,
    config: AuthConfig,
    generation: int = 0,
    now: datetime | None = None,
) -> str:
    issued_at = now or utcnow()
    claims = {
        "sub": str(user_id),
        "iat": issued_at,
        "exp": issued_at + timedelta(minutes=config.access_token_minutes),
        "jti": uuid.uuid4().hex,
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
        GENERATION_CLAIM: generation,
    }
    return jwt.encode(claims, secret, algorithm=config.jwt_algorithm)


def _generation(claims: dict[str, object]) -> int:
    generation = claims.get(GENERATION_CLAIM, 0)
    # bool is an int in Python, and JSON's true must not pass for generation 1.
    if type(generation) is not int or generation < 0:
        raise ValueError("the gen claim is not a non-negative integer")
    return generation


def decode_access_token(token: str, *, secret: str, config: AuthConfig) -> AccessClaims:
    """The claims of a valid token; ``InvalidTokenError`` for anything else."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[config.jwt_algorithm],
            audience=config.jwt_audience,
            issuer=config.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        return AccessClaims(user_id=uuid.UUID(str(claims["sub"])), generation=_generation(claims))
    except (jwt.PyJWTError, ValueError) as exc:
        raise InvalidTokenError() from exc
