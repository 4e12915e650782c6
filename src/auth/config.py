"""Settings of the auth module: token lifetimes and claims, cookies, rate limits, password cost,
and the first admin. Each is documented in .env.sample."""

from __future__ import annotations

from typing import Literal

from limits import parse
from pydantic import EmailStr, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from src.auth.constants import PASSWORD_HASH_QUEUE
from src.auth.password_policy import weakness


class AuthConfig(BaseSettings):
    """Read from the environment or ``.env`` at start-up; tests build one with cheap values."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    # Symmetric algorithms only: the key is SECRET_KEY. Decoding accepts this one algorithm alone.
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = Field(default="mosaic", min_length=1)
    jwt_audience: str = Field(default="mosaic-api", min_length=1)
    cookie_secure: bool = True
    # `limits` notation: "5/15minutes", "10/hour", "3 per 2 seconds".
    login_rate_limit: str = "5/15minutes"
    login_ip_rate_limit: str = "100/15minutes"
    register_rate_limit: str = "10/hour"
    # Look-ups of accounts per caller: members added by email, the admin's user search.
    lookup_rate_limit: str = "30/minute"
    redis_url: SecretStr | None = None
    first_admin_email: EmailStr | None = None
    first_admin_password: SecretStr | None = None
    # argon2id cost; the defaults are OWASP's first recommendation (19 MiB, 2 passes, 1 lane).
    argon2_time_cost: int = Field(default=2, ge=1, le=20)
    argon2_memory_cost: int = Field(default=19456, ge=8, le=4 * 1024 * 1024)  # KiB
    argon2_parallelism: int = Field(default=1, ge=1, le=64)
    # Hashes computed at once per process (None: one per CPU), and how many more may wait.
    password_hash_concurrency: int | None = Field(default=None, ge=1, le=1024)
    password_hash_queue: int = Field(default=PASSWORD_HASH_QUEUE, ge=0, le=100_000)

    @field_validator(
        "login_rate_limit", "login_ip_rate_limit", "register_rate_limit", "lookup_rate_limit"
    )
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        parse(value)  # raises ValueError on a malformed limit
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "first_admin_email", "first_admin_password", "password_hash_concurrency", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _first_admin_complete(self) -> AuthConfig:
        email, password = self.first_admin_email, self.first_admin_password
        if (email is None) != (password is None):
            raise ValueError("FIRST_ADMIN_EMAIL and FIRST_ADMIN_PASSWORD are set together")
        if email is not None and password is not None:
            reason = weakness(password.get_secret_value(), email=email)
            if reason is not None:
                raise ValueError(f"FIRST_ADMIN_PASSWORD is refused ({reason}): {reason.message}")
        if self.argon2_memory_cost < 8 * self.argon2_parallelism:
            raise ValueError("ARGON2_MEMORY_COST must be at least 8 * ARGON2_PARALLELISM")
        return self

    @property
    def async_redis_url(self) -> str | None:
        """REDIS_URL in the ``async+redis://`` form `limits` expects."""
        if self.redis_url is None:
            return None
        url = self.redis_url.get_secret_value()
        return url if url.startswith("async+") else f"async+{url}"
