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

import time
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
    return _decode(token, secret=secret, config=config)[0]


def _decode(token: str, *, secret: str, config: AuthConfig) -> tuple[AccessClaims, float]:
    """The claims of a valid token and when it expires (POSIX seconds)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[config.jwt_algorithm],
            audience=config.jwt_audience,
            issuer=config.jwt_issuer,
            options={"require": REQUIRED_CLAIMS},
        )
        access = AccessClaims(user_id=uuid.UUID(str(claims["sub"])), generation=_generation(claims))
        return access, float(claims["exp"])
    except (jwt.PyJWTError, ValueError) as exc:
        raise InvalidTokenError() from exc


class VerifiedTokens:
    """Access tokens this process has verified, with their claims, until they expire.

    A client sends the same token with every request for its whole lifetime; verifying it
    (base64, JSON, HMAC, five claim checks) was a tenth of a short list's CPU. A token is
    remembered only once it verified, by its exact text, and only until its ``exp``: after that
    it is verified again, and refused as expired. Whatever is remembered was verified with the
    secret and configuration asked with; another secret or configuration forgets it all. What a
    token says is all that is kept: whether its account is still active and its generation
    current is read from the database per request, as before. At most ``size`` tokens are
    kept; when full, the oldest is forgotten."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._verified: dict[str, tuple[AccessClaims, float]] = {}
        self._secret: str | None = None
        self._config: AuthConfig | None = None

    def claims(self, token: str, *, secret: str, config: AuthConfig) -> AccessClaims:
        """The claims of a valid token; ``InvalidTokenError`` for anything else."""
        if secret != self._secret or config is not self._config:
            self._verified.clear()
            self._secret, self._config = secret, config
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[1]:
                return known[0]
            del self._verified[token]
        access, expires_at = _decode(token, secret=secret, config=config)
        if len(self._verified) >= self._size:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (access, expires_at)
        return access
