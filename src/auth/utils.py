"""Helpers of the auth router: the refresh-token cookie."""

from __future__ import annotations

from fastapi import Response

from src.auth.config import AuthConfig
from src.auth.constants import REFRESH_COOKIE_NAME, REFRESH_COOKIE_PATH
from src.auth.schemas import TokenPair


def set_refresh_cookie(response: Response, pair: TokenPair, config: AuthConfig) -> None:
    """The refresh token also as an httpOnly, SameSite=Strict cookie sent only to /api/v1/auth."""
    response.set_cookie(
        REFRESH_COOKIE_NAME,
        pair.refresh_token,
        max_age=config.refresh_token_days * 24 * 3600,
        path=REFRESH_COOKIE_PATH,
        secure=config.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def clear_refresh_cookie(response: Response, config: AuthConfig) -> None:
    response.delete_cookie(
        REFRESH_COOKIE_NAME,
        path=REFRESH_COOKIE_PATH,
        secure=config.cookie_secure,
        httponly=True,
        samesite="strict",
    )
