"""Input and output shapes of studies, samples, members, review and events (API.md)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, computed_field

from src.auth.schemas import UserRef
from src.schemas import Input
from src.study.constants import (
    AccessRole,
    FileStatus,
    MemberRole,
    ReadKind,
    ReviewDecision,
    StudyStatus,
)
from src.text import MULTI_LINE

# Text keeps the one rule of src/text.py (Input): one line, no control characters; a multi-line
# field keeps tab and line breaks (\r\n as browsers send it included).
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Author = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
# Multi-line text: a study's description, a review's comment.
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000), MULTI_LINE]
Description = LongText
# A calendar date as the document says: "YYYY-MM-DD" only, never a number read as a timestamp.
CalendarDate = Annotated[date, Field(strict=True)]
# Checklist fields arrive as written; src/study/checklist.py checks and normalises them (control
# characters included: INVALID_SAMPLE, as for a sheet's cell), so SampleFields is no Input.
Cell = Annotated[str, StringConstraints(max_length=4096)] | None

MAX_INLINE_SAMPLES = 5_000


class SampleFields(BaseModel):
    """The checklist fields of a sample as a client sends them (API field names)."""

    model_config = ConfigDict(extra="forbid")

    sample_id: Cell = None
    sample: Cell = None
    sample_group: Cell = None
    sample_project: Cell = None
    description: Cell = None
    organism: Cell = None
    tissue: Cell = None
    sex: Cell = None
    cell_line: Cell = None
    mouse_model: Cell = None
    biomaterial_provider: Cell = None
    date_sample_prep: Cell = None
    biological_repeat: int | Cell = None
    attributes: dict[str, Annotated[str, StringConstraints(max_length=1024)]] | None = None


CHECKLIST_REQUIRED = ("sample_id", "organism")


def _checklist_required(schema: dict[str, Any]) -> None:
    """The document shows ``sample_id`` and ``organism`` as required strings. The model keeps
    them optional so that a sample missing one is refused by the checklist, 422 INVALID_SAMPLE
    with every problem of the sample (code REQUIRED), like a sheet row, not by pydantic."""
    properties = schema["properties"]
    for name in CHECKLIST_REQUIRED:
        field = properties[name]
        properties[name] = {
            **{key: value for key, value in field.items() if key != "anyOf"},
            **next(option for option in field["anyOf"] if option.get("type") == "string"),
        }
    schema["required"] = [*schema.get("required", []), *CHECKLIST_REQUIRED]
    schema["example"] = {"sample_id": "LIV_M1", "organism": "Mus musculus", "sex": "female"}


class SampleCreate(SampleFields):
    """A new sample; ``sample_id`` and ``organism`` are required by the checklist."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_checklist_required)


class SampleUpdate(SampleFields):
    """Fields to change; absent fields keep their value, ``null`` clears an optional one."""


class StudyCreate(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "title": "Liver regeneration atlas",
                "description": "Single-cell RNA-seq of regenerating mouse liver.",
                "authors": ["Ada Lovelace", "Rosalind Franklin"],
            }
        },
    )

    title: Title
    description: Description = ""
    authors: list[Author] = Field(default_factory=list, max_length=500)
    release_date: CalendarDate | None = None
    samples: list[SampleCreate] | None = Field(default=None, max_length=MAX_INLINE_SAMPLES)


class StudyUpdate(Input):
    title: Title | None = None
    description: Description | None = None
    authors: list[Author] | None = Field(default=None, max_length=500)
    release_date: CalendarDate | None = None


class StudyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    accession: str
    title: str
    description: str
    authors: list[str]
    status: StudyStatus
    release_date: date | None
    review_comment: str | None
    owner: UserRef
    my_role: AccessRole
    sample_count: int
    file_count: int
    total_bytes: int
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    published_at: datetime | None


class FileIssue(BaseModel):
    line: int | None = None
    code: str
    message: str


class FileRead(BaseModel):
    """A sequence file: its state, checksums, read statistics and validation errors."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    sample_id: str
    filename: str
    read: ReadKind
    size: int
    md5: str | None
    sha256: str | None
    status: FileStatus
    read_count: int | None
    base_count: int | None
    min_length: int | None
    max_length: int | None
    mean_length: float | None
    errors: list[FileIssue] = Field(validation_alias="validation_errors")
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def download_url(self) -> str:
        return f"/api/v1/files/{self.id}/download"


class SampleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    sample_id: str
    sample: str
    sample_group: str | None
    sample_project: str | None
    description: str | None
    organism: str
    tissue: str | None
    sex: str | None
    cell_line: str | None
    mouse_model: str | None
    biomaterial_provider: str | None
    date_sample_prep: str | None
    biological_repeat: int | None
    attributes: dict[str, str]
    files: list[FileRead]
    created_at: datetime
    updated_at: datetime


class SampleIssue(BaseModel):
    """An item of INVALID_SAMPLE's ``errors``: a checklist field of a sample (``index``: its
    place in a list of samples, from 0) and the value as sent."""

    index: int | None = None
    field: str
    code: str
    message: str
    value: str | None = None


class ReadinessProblem(BaseModel):
    """What keeps a study from being submitted; ``sample_id`` None: the study as a whole."""

    sample_id: str | None
    code: str
    message: str


class Readiness(BaseModel):
    ready: bool
    problems: list[ReadinessProblem]


class ReviewIn(Input):
    decision: ReviewDecision
    comment: LongText | None = None


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    actor: UserRef | None
    action: str
    detail: dict[str, Any]


class MemberIn(Input):
    email: EmailStr
    role: MemberRole


class MemberUser(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str


class MemberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user: MemberUser
    role: MemberRole
