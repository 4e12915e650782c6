"""Settings of the study module."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StudyConfig(BaseSettings):
    """REVIEW_REQUIRED and ACCESSION_PREFIX; documented in .env.sample."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    review_required: bool = True
    accession_prefix: str = Field(default="MOSAIC", pattern=r"^[A-Z][A-Z0-9]{0,15}$")
