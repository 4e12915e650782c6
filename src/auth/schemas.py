"""Request and response bodies of the auth module. Inputs are strict: unknown fields, non-string
values and over-long strings are 422, never a 500."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)

from src.auth.constants import (
    FULL_NAME_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    REFRESH_TOKEN_MAX_LENGTH,
)
from src.auth.models import UserRole
from src.schemas import Input
from src.text import OWN_RULE

# A password being set. Its rules, length included, are the password policy's
# (src/auth/password_policy.py), refused as 422 WEAK_PASSWORD naming the reason; the document
# shows the length bounds all the same. A password is never stored as text, only hashed: the
# text rule refuses nothing in it but an unpaired surrogate.
NewPassword = Annotated[
    str,
    Field(json_schema_extra={"minLength": PASSWORD_MIN_LENGTH, "maxLength": PASSWORD_MAX_LENGTH}),
    OWN_RULE,
]
# Any length a stored password could have; longer input is refused before hashing.
PresentedPassword = Annotated[
    str, StringConstraints(min_length=1, max_length=PASSWORD_MAX_LENGTH), OWN_RULE
]
# One line of text, as every Input's strings (src/text.py).
FullName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=FULL_NAME_MAX_LENGTH)
]


class EmailInput(Input):
    email: EmailStr

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class RegisterIn(EmailInput):
    password: NewPassword
    full_name: FullName


class LoginIn(EmailInput):
    password: PresentedPassword


class RefreshIn(Input):
    refresh_token: Annotated[str, StringConstraints(max_length=REFRESH_TOKEN_MAX_LENGTH)] | None = (
        None
    )


class MeUpdate(Input):
    full_name: FullName


class PasswordChange(Input):
    current_password: PresentedPassword
    new_password: NewPassword


class UserAdminUpdate(Input):
    role: UserRole | None = None
    is_active: StrictBool | None = None


class UserRead(BaseModel):
    """A user as the API shows it: never a password or hash."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    role: UserRole
    is_active: bool
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires.")


class UserQuery(BaseModel):
    """``GET /users`` filters: ``q`` matches email or name (case-insensitive), ``role`` exact."""

    # Control characters are refused for every query parameter (src/text.py).
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    role: UserRole | None = None


# A user as other modules show them: who owns a study, who did something. (No docstring: it
# would become the schema's OpenAPI description.)
class UserRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    full_name: str
