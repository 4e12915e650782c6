"""The auth module's refusals, rendered by the one handler in src/exceptions.py."""

from __future__ import annotations

import math

from src.auth.constants import WWW_AUTHENTICATE, AuthErrorCode
from src.auth.password_policy import Weakness
from src.exceptions import AppError, ValidationIssue


class EmailTakenError(AppError):
    status_code = 409
    code = AuthErrorCode.EMAIL_TAKEN
    message = "An account with this email already exists."
    description = "EMAIL_TAKEN"


class InvalidCredentialsError(AppError):
    status_code = 401
    code = AuthErrorCode.INVALID_CREDENTIALS
    message = "Incorrect email or password."
    description = "INVALID_CREDENTIALS"


class UserInactiveError(AppError):
    status_code = 403
    code = AuthErrorCode.USER_INACTIVE
    message = "This account is deactivated."
    description = "USER_INACTIVE"


class TooManyAttemptsError(AppError):
    status_code = 429
    code = AuthErrorCode.TOO_MANY_ATTEMPTS
    message = "Too many attempts; try again later."
    description = "TOO_MANY_ATTEMPTS (see Retry-After)"

    def __init__(self, *, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            f"Too many attempts; try again in {seconds} seconds.",
            headers={"Retry-After": str(seconds)},
        )
        self.retry_after = seconds


class InvalidTokenError(AppError):
    """A missing, malformed, forged or expired access token, or one whose user is gone."""

    status_code = 401
    code = AuthErrorCode.INVALID_TOKEN
    message = "The access token is missing, invalid or expired."
    description = "Missing or invalid access token"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers=WWW_AUTHENTICATE)


class InvalidRefreshTokenError(AppError):
    status_code = 401
    code = AuthErrorCode.INVALID_REFRESH_TOKEN
    message = "The refresh token is missing, invalid, expired or revoked."
    description = "INVALID_REFRESH_TOKEN"


class RefreshTokenReusedError(AppError):
    status_code = 401
    code = AuthErrorCode.REFRESH_TOKEN_REUSED
    message = "This refresh token was already used; the session has been revoked."
    description = "REFRESH_TOKEN_REUSED (family revoked)"


class ForbiddenError(AppError):
    status_code = 403
    code = AuthErrorCode.FORBIDDEN
    message = "Your role does not allow this."
    description = "FORBIDDEN"


class UserNotFoundError(AppError):
    status_code = 404
    code = AuthErrorCode.USER_NOT_FOUND
    message = "No such user."
    description = "USER_NOT_FOUND"


class WeakPasswordError(AppError):
    """A new password the policy refuses (src/auth/password_policy.py); ``errors`` names the
    field and the reason (``too_short``, ``too_long``, ``blank``, ``repeated``,
    ``same_as_email``, ``too_common``)."""

    status_code = 422
    code = AuthErrorCode.WEAK_PASSWORD
    message = "The password is too weak; see errors."
    description = "WEAK_PASSWORD"
    item = ValidationIssue

    def __init__(self, weakness: Weakness, *, field: str) -> None:
        super().__init__(
            weakness.message,
            errors=[{"loc": ["body", field], "code": weakness.value, "message": weakness.message}],
        )
        self.weakness = weakness


class WrongPasswordError(AppError):
    status_code = 400
    code = AuthErrorCode.WRONG_PASSWORD
    message = "The current password is incorrect."
    description = "WRONG_PASSWORD"


class OwnAccountError(AppError):
    status_code = 409
    code = AuthErrorCode.OWN_ACCOUNT
    message = "Admins cannot remove their own admin role or deactivate themselves."
    description = "OWN_ACCOUNT"
