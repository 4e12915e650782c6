"""Stable error codes and fixed strings of the auth module."""

from enum import StrEnum

API_PREFIX = "/api/v1"
ROUTER_PREFIX = "/auth"
# Where the OAuth2 password form is posted (the /docs Authorize button) and the cookie's scope.
TOKEN_URL = f"{API_PREFIX}{ROUTER_PREFIX}/token"
REFRESH_COOKIE_PATH = f"{API_PREFIX}{ROUTER_PREFIX}"
REFRESH_COOKIE_NAME = "refresh_token"
WWW_AUTHENTICATE = {"WWW-Authenticate": "Bearer"}

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
# The bundled list of the most common passwords (src/auth/data/README.md says where it is from).
COMMON_PASSWORDS_FILE = "common-passwords.txt.gz"
# Password hashes waiting for a free hasher slot beyond those being computed; more are refused
# (503 SERVICE_BUSY). With 2 slots and ~40 ms per hash, the last waiter waits about 0.7 s.
PASSWORD_HASH_QUEUE = 32
EMAIL_MAX_LENGTH = 254
FULL_NAME_MAX_LENGTH = 200
# 32 random bytes: 256 bits, URL-safe base64 (43 characters).
REFRESH_TOKEN_BYTES = 32
REFRESH_TOKEN_MAX_LENGTH = 256


class AuthErrorCode(StrEnum):
    """Codes of the auth module's refusals."""

    EMAIL_TAKEN = "EMAIL_TAKEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    USER_INACTIVE = "USER_INACTIVE"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    INVALID_TOKEN = "INVALID_TOKEN"  # noqa: S105
    INVALID_REFRESH_TOKEN = "INVALID_REFRESH_TOKEN"  # noqa: S105
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"  # noqa: S105
    FORBIDDEN = "FORBIDDEN"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    WEAK_PASSWORD = "WEAK_PASSWORD"  # noqa: S105
    WRONG_PASSWORD = "WRONG_PASSWORD"  # noqa: S105
    OWN_ACCOUNT = "OWN_ACCOUNT"
