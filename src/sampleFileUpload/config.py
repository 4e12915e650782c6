"""Settings of the module: sample-sheet limits and sequence files (size limits, quotas,
downloads, tus), documented in .env.sample under "Sample sheets" and "Sequence files". Built once
in ``create_app`` as ``app.state.sheet_config`` and ``app.state.files_config``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GIB = 1024**3
MIB = 1024**2


class FilesConfig(BaseSettings):
    """Limits and behaviour of uploads and downloads."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # Largest sequence file accepted on any path (413 FILE_TOO_LARGE above it).
    max_upload_bytes: int = Field(default=50 * GIB, ge=1)
    # Bytes a user may hold in stored files and uploads in progress; 0 = unlimited.
    storage_quota_bytes: int = Field(default=0, ge=0)
    # Seconds a whole-file upload's quota reservation counts after its last renewal (renewed
    # every third of it while the body streams); a process killed mid-upload leaks it this long.
    upload_reservation_seconds: float = Field(default=300.0, gt=0)
    # none: the API streams downloads itself; nginx: local files are handed to nginx with
    # X-Accel-Redirect to DOWNLOAD_ACCEL_PREFIX + storage key.
    download_accel: Literal["none", "nginx"] = "none"
    download_accel_prefix: str = Field(default="/_protected/", pattern=r"^/([A-Za-z0-9_.-]+/)+$")
    # With S3 storage, answer GET downloads with a redirect to a presigned URL.
    download_redirect: bool = False
    # Processes that run the FASTQ validator for this API process's uploads (0: a thread of the
    # API process instead). Each takes about 25 MiB and keeps a core busy validating.
    fastq_workers: int = Field(default=1, ge=0, le=64)
    # Bytes hashed, validated and written per step of the streaming pipeline.
    ingest_block_bytes: int = Field(default=MIB, ge=64 * 1024, le=64 * MIB)
    # tus: hours an unfinished upload lives after its last chunk; how long one PATCH holds an
    # upload (renewed while it streams); how often expired uploads are removed (0: never).
    tus_expiry_hours: float = Field(default=24.0, gt=0)
    tus_lease_seconds: float = Field(default=60.0, gt=0)
    tus_cleanup_interval_seconds: float = Field(default=600.0, ge=0)
    # tus: upload states of this many uploads are kept in a process to continue without
    # re-reading the stored bytes when the next chunk comes back to the same process.
    tus_cached_uploads: int = Field(default=32, ge=0)
    # fsck and the orphan sweep: stored data with no row is removed only once it is this many
    # hours old (younger temporary data may belong to an upload still running); how often each
    # process sweeps orphans (0: never; `python main.py fsck --repair` does it by hand).
    orphan_grace_hours: float = Field(default=24.0, gt=0)
    orphan_sweep_interval_seconds: float = Field(default=3600.0, ge=0)


@dataclass(frozen=True)
class SheetLimits:
    max_bytes: int
    max_rows: int


class SheetConfig(BaseSettings):
    """SHEET_MAX_BYTES and SHEET_MAX_ROWS; documented in .env.sample."""

    model_config = SettingsConfigDict(
        env_file=".env", env_prefix="SHEET_", extra="ignore", frozen=True
    )

    max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_rows: int = Field(default=50_000, ge=1)

    @property
    def limits(self) -> SheetLimits:
        return SheetLimits(max_bytes=self.max_bytes, max_rows=self.max_rows)
