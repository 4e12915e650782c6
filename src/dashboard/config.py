"""Settings of the dashboard module."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardConfig(BaseSettings):
    """STATS_MAX_AGE_SECONDS; documented in .env.sample."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # How old the public totals of GET /stats may be: each process recounts them at most this
    # often, so a publication shows there within this many seconds.
    stats_max_age_seconds: float = Field(default=5.0, ge=0, le=3600)
