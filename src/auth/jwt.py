"""Access tokens: short-lived HS256 (configurable) JWTs with ``sub``, ``exp``, ``iat``, ``jti``,
``iss`` and ``aud``. Decoding pins the configured algorithm and requires and checks every claim, so
``alg: none``, another algorithm, another audience or issuer, or an expired token is refused."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import jwt

from src.auth.config import AuthConfig
from src.auth.exceptions import InvalidTokenError
from src.database import utcnow

REQUIRED_CLAIMS = ["sub", "exp", "iat", "jti", "iss", "aud"]


def encode_access_token(
    *, user_id: uuid.UUID, secret: str, config: AuthConfig, now: datetime | None = None
) -> str:
    issued_at = now or utcnow()
    claims = {
        "sub": str(user_id),
        "iat": issued_at,
        "exp": issued_at + timedelta(minutes=config.access_token_minutes),
        "jti": uuid.uuid4().hex,
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
    }
    return jwt.encode(claims, secret, algorithm=config.jwt_algorithm)


def decode_access_token(token: str, *, secret: str, config: AuthConfig) -> uuid.UUID:
    """The user id of a valid token; ``InvalidTokenError`` for anything else."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[config.jwt_algorithm],
            audience=config.jwt_audience,
            issuer=config.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        return uuid.UUID(str(claims["sub"]))
    except (jwt.PyJWTError, ValueError) as exc:
        raise InvalidTokenError() from exc
