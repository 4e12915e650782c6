"""Input and output shapes of the sample-sheet routes: the formats and modes a request may ask
for, the import report, and the checklist as the API describes it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class SheetMode(StrEnum):
    VALIDATE = "validate"
    APPEND = "append"
    REPLACE = "replace"


class SheetFormat(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    TXT = "txt"
    JSON = "json"
    XLSX = "xlsx"


class ExportFormat(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    JSON = "json"
    XLSX = "xlsx"


class TemplateFormat(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    XLSX = "xlsx"


class ReportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


class SheetIssueOut(BaseModel):
    row: int | None
    column: str | None
    code: str
    message: str
    value: str | None = None


class SheetReportOut(BaseModel):
    """What a sheet import found: errors and warnings point at a row (the header is row 1, as a
    spreadsheet shows it) and the column as the sheet names it."""

    valid: bool
    mode: SheetMode
    format: str | None
    row_count: int
    created: int
    replaced: int
    error_count: int
    warning_count: int
    errors: list[SheetIssueOut]
    warnings: list[SheetIssueOut]
    samples: list[dict[str, Any]]


class ChecklistFieldOut(BaseModel):
    name: str
    header: str
    aliases: list[str]
    required: bool
    type: str
    allowed_values: list[str] | None
    max_length: int
    description: str
    example: str
