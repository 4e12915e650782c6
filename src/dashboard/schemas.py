"""Response shapes of the dashboard, with examples a frontend can draw charts from."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from src.auth.schemas import UserRef
from src.dashboard.constants import DashboardScope

_STUDY_ID = "6f1c2a4e-8b0d-4e4b-9a51-3c7d2f0e9a11"
_USER_ID = "0b7e5c2d-1f3a-4c6e-8d9b-2a4f6e8c0d13"


class PublicStats(BaseModel):
    """Totals over public studies only (published, release date null or past)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "studies": 42,
                    "samples": 1310,
                    "files": 2604,
                    "bytes": 5_368_709_120_000,
                    "organisms": 7,
                }
            ]
        }
    )

    studies: int = Field(description="Public studies.")
    samples: int = Field(description="Samples of public studies.")
    files: int = Field(description="Valid files of public studies.")
    bytes: int = Field(description="Total size of those files, in bytes.")
    organisms: int = Field(description="Distinct organisms among the samples of public studies.")


class StudiesByStatus(BaseModel):
    draft: int
    in_review: int
    published: int


class StudyCounts(BaseModel):
    total: int
    by_status: StudiesByStatus
    embargoed: int = Field(
        description="Published studies whose release date is still in the future (not public)."
    )


class FileCounts(BaseModel):
    total: int
    valid: int
    invalid: int
    uploading: int


class StudyRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    accession: str
    title: str


class RecentEvent(BaseModel):
    """One entry of the audit trail, with the study it concerns."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    action: str
    detail: dict[str, Any]
    actor: UserRef | None = Field(description="Who did it; null if the account was deleted.")
    study: StudyRef


class UsersByRole(BaseModel):
    researcher: int
    reviewer: int
    admin: int


class UserCounts(BaseModel):
    total: int
    active: int
    by_role: UsersByRole


class QueuedStudy(BaseModel):
    """A study waiting for review."""

    id: uuid.UUID
    accession: str
    title: str
    owner: UserRef
    submitted_at: datetime
    waiting_seconds: int = Field(description="Time since submission, in seconds.")


class Summary(BaseModel):
    """Where the scoped studies stand. ``users`` and ``review_queue`` are null unless scope=all."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "scope": "all",
                    "studies": {
                        "total": 12,
                        "by_status": {"draft": 7, "in_review": 2, "published": 3},
                        "embargoed": 1,
                    },
                    "samples": 180,
                    "files": {"total": 350, "valid": 340, "invalid": 6, "uploading": 4},
                    "bytes": 912_680_550_400,
                    "reads": 3_400_000_000,
                    "bases": 510_000_000_000,
                    "recent_events": [
                        {
                            "id": "9d4f1b7a-2c3e-4a5b-8c6d-7e8f9a0b1c2d",
                            "at": "2026-11-25T14:03:11Z",
                            "action": "study.submitted",
                            "detail": {},
                            "actor": {"id": _USER_ID, "full_name": "Ada Lovelace"},
                            "study": {
                                "id": _STUDY_ID,
                                "accession": "MOSAIC-0012",
                                "title": "Liver regeneration atlas",
                            },
                        }
                    ],
                    "users": {
                        "total": 31,
                        "active": 30,
                        "by_role": {"researcher": 27, "reviewer": 3, "admin": 1},
                    },
                    "review_queue": [
                        {
                            "id": _STUDY_ID,
                            "accession": "MOSAIC-0012",
                            "title": "Liver regeneration atlas",
                            "owner": {"id": _USER_ID, "full_name": "Ada Lovelace"},
                            "submitted_at": "2026-11-25T14:03:11Z",
                            "waiting_seconds": 86400,
                        }
                    ],
                }
            ]
        }
    )

    scope: DashboardScope
    studies: StudyCounts
    samples: int
    files: FileCounts
    bytes: int = Field(description="Total size of the valid files, in bytes.")
    reads: int = Field(description="Reads in the valid files.")
    bases: int = Field(description="Bases in the valid files.")
    recent_events: list[RecentEvent] = Field(description="The latest events, newest first.")
    users: UserCounts | None = Field(default=None, description="Accounts (scope=all only).")
    review_queue: list[QueuedStudy] | None = Field(
        default=None,
        description="Studies in review, longest waiting first (scope=all only; at most 50).",
    )


class TimeseriesPoint(BaseModel):
    period_start: date = Field(description="First day of the day, week (Monday) or month.")
    value: int


class BreakdownRow(BaseModel):
    value: str | None = Field(description="The field's value; null where it was not given.")
    samples: int
    studies: int = Field(description="Studies with at least one sample of this value.")


TIMESERIES_EXAMPLE = [
    {"period_start": "2026-09-01", "value": 4},
    {"period_start": "2026-10-01", "value": 0},
    {"period_start": "2026-11-01", "value": 7},
]
BREAKDOWN_EXAMPLE = [
    {"value": "Mus musculus", "samples": 120, "studies": 9},
    {"value": "Homo sapiens", "samples": 48, "studies": 3},
    {"value": None, "samples": 12, "studies": 2},
]
