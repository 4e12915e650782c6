"""Global settings, read from the environment or ``.env``, typed and validated at start-up.

With nothing set, the service runs for a developer: SQLite and local storage under ``./data``,
127.0.0.1:8000, readable console logs, and a JWT secret generated once and kept in the data folder.
Outside development a missing or placeholder secret refuses to start. Module-specific settings live
in ``<module>/config.py`` the same way.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from src.database import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    DEFAULT_POOL_TIMEOUT,
)

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "please-change-me"})
MIN_SECRET_LENGTH = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; start-up stops with this message."""


class Settings(BaseSettings):
    """Settings every module shares. Each field is documented in .env.sample."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    database_url: str = ""
    # Connections: pool per process, and how long a request waits for the database before it is
    # answered 503 SERVICE_BUSY (a pooled connection; on SQLite, the write lock).
    database_pool_size: int = Field(default=DEFAULT_POOL_SIZE, ge=1, le=1000)
    database_max_overflow: int = Field(default=DEFAULT_MAX_OVERFLOW, ge=0, le=1000)
    database_pool_timeout: float = Field(default=DEFAULT_POOL_TIMEOUT, gt=0, le=300)
    database_busy_timeout: float = Field(default=DEFAULT_BUSY_TIMEOUT, ge=0, le=300)
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: SecretStr = SecretStr("")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Object storage.
    storage_backend: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None
    s3_bucket: str = "mosaic"
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_presign_expires: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            secret = self.secret_key.get_secret_value()
            if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    "SECRET_KEY must be set to a random value of at least "
                    f"{MIN_SECRET_LENGTH} characters when ENVIRONMENT=production "
                    '(for example: python -c "import secrets; print(secrets.token_urlsafe(48))")'
                )
        return self

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @cached_property
    def effective_database_url(self) -> str:
        """DATABASE_URL, or the embedded SQLite database under DATA_DIR."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'mosaic.db').as_posix()}"

    @cached_property
    def jwt_secret(self) -> str:
        """SECRET_KEY, or in development a secret generated once and kept under DATA_DIR."""
        secret = self.secret_key.get_secret_value()
        if secret and secret.lower() not in PLACEHOLDER_SECRETS:
            return secret
        if self.is_production:  # unreachable after validation; kept as a guard
            raise ConfigError("SECRET_KEY is required in production")
        path = self.data_dir / ".secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        generated = secrets.token_urlsafe(48)
        path.write_text(generated)
        path.chmod(0o600)
        return generated
