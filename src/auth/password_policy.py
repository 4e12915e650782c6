"""What a new password must be: 8 to 128 characters, not blank or one character repeated, not the
account's email, and not among the 10,000 most common passwords (compared ignoring case).

The same rules hold wherever a password is set: registration, a password change, the
``create-admin`` command and FIRST_ADMIN_PASSWORD. ``weakness`` is pure and cheap once the list is
loaded; the list is read once per process (``load_common_passwords``, called at start-up) and
kept as a frozenset.
"""

from __future__ import annotations

import gzip
from enum import StrEnum
from functools import cache
from importlib.resources import files

from src.auth.constants import COMMON_PASSWORDS_FILE, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH


class Weakness(StrEnum):
    """Why a new password is refused: the ``code`` of WEAK_PASSWORD's ``errors`` item."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    BLANK = "blank"
    REPEATED = "repeated"
    SAME_AS_EMAIL = "same_as_email"
    TOO_COMMON = "too_common"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Weakness.TOO_SHORT: f"The password must have at least {PASSWORD_MIN_LENGTH} characters.",
    Weakness.TOO_LONG: f"The password must have at most {PASSWORD_MAX_LENGTH} characters.",
    Weakness.BLANK: "The password must not be only spaces.",
    Weakness.REPEATED: "The password must not be one character repeated.",
    Weakness.SAME_AS_EMAIL: "The password must not be the account's email.",
    Weakness.TOO_COMMON: "This password is among the 10,000 most common ones; choose another.",
}


@cache
def load_common_passwords() -> frozenset[str]:
    """The bundled list, lower-cased (read and decompressed once; blocking, a few milliseconds)."""
    data = files("src.auth").joinpath("data", COMMON_PASSWORDS_FILE).read_bytes()
    return frozenset(gzip.decompress(data).decode("utf-8").splitlines())


def weakness(password: str, *, email: str) -> Weakness | None:
    """Why ``password`` may not be set for the account ``email``, or None when it may."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return Weakness.TOO_SHORT
    if len(password) > PASSWORD_MAX_LENGTH:
        return Weakness.TOO_LONG
    stripped = password.strip()
    if not stripped:
        return Weakness.BLANK
    if len(set(password)) == 1:
        return Weakness.REPEATED
    folded = stripped.lower()
    if folded == email.strip().lower():
        return Weakness.SAME_AS_EMAIL
    if folded in load_common_passwords():
        return Weakness.TOO_COMMON
    return None
