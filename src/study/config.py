"""Settings of the study module."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StudyConfig(BaseSettings):
    """REVIEW_REQUIRED, ACCESSION_PREFIX and SEARCH_TOTAL_LIMIT; documented in .env.sample."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    review_required: bool = True
    accession_prefix: str = Field(default="MOSAIC", pattern=r"^[A-Z][A-Z0-9]{0,15}$")
    # A search (``q``) counts its matches up to this many; past it the page's total is this
    # number, marked ``total_exact: false``, unless the caller asks for ``exact_total``.
    search_total_limit: int = Field(default=1_000, ge=1)
