"""Validation of a parsed sample sheet: the sample checklist (``src.study.checklist``) applied to
every row, sample_id uniqueness within the sheet and against the study, and possible duplicate
samples, collected in a :class:`SheetReport`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from typing import Any

from src.sampleFileUpload.sheets.cells import clip
from src.sampleFileUpload.sheets.constants import DEFAULT_MAX_ISSUES, SheetErrorCode
from src.sampleFileUpload.sheets.parse import ParsedSheet, SheetIssue
from src.study.checklist import (
    EXPLICIT_ATTRIBUTE,
    FIELDS,
    FIELDS_BY_NAME,
    ResolvedColumns,
    SampleCheck,
    SampleIds,
    header_key,
    match_header,
)
from src.study.constants import ChecklistCode


@dataclass(slots=True)
class SheetSample:
    """One row after the checklist: ``values`` is the sample as the report shows it, the
    checklist fields by API name and then ``attributes`` (the rest), which is also the
    ``attributes`` dict here: one dict per row, put in the report as it is."""

    row: int
    values: dict[str, Any]
    attributes: dict[str, str]
    valid: bool

    def as_dict(self) -> dict[str, Any]:
        """A copy of the sample as the API's Sample input: checklist fields plus
        ``attributes``."""
        return {**self.values, "attributes": dict(self.attributes)}


@dataclass(slots=True)
class SheetReport:
    """The checklist applied to a parsed sheet. Issues beyond ``max_issues`` of a kind are counted
    but not listed (an ``ISSUES_TRUNCATED`` warning says so)."""

    format: str | None
    row_count: int = 0
    errors: list[SheetIssue] = field(default_factory=list)
    warnings: list[SheetIssue] = field(default_factory=list)
    samples: list[SheetSample] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    error_count: int = 0
    warning_count: int = 0
    max_issues: int = DEFAULT_MAX_ISSUES
    too_large: bool = False

    @property
    def valid(self) -> bool:
        """True when no error was found (warnings allowed)."""
        return self.error_count == 0

    def column_for(self, field_name: str) -> str:
        """The user's header for a checklist field (the standard header if the sheet lacks it)."""
        return self.columns.get(field_name, FIELDS_BY_NAME[field_name].header)

    def add_error(
        self, row: int | None, column: str | None, code: str, message: str, value: str | None = None
    ) -> None:
        """Add an error in the report's shape (for the caller's own checks too)."""
        self.error_count += 1
        if len(self.errors) < self.max_issues:
            self.errors.append(SheetIssue(row, column, code, message, clip(value)))

    def add_warning(
        self, row: int | None, column: str | None, code: str, message: str, value: str | None = None
    ) -> None:
        """Add a warning in the report's shape."""
        self.warning_count += 1
        if len(self.warnings) < self.max_issues:
            self.warnings.append(SheetIssue(row, column, code, message, clip(value)))

    def as_dict(self) -> dict[str, Any]:
        """``{valid, format, row_count, error_count, warning_count, errors, warnings, samples}``;
        the caller adds ``mode``, ``created`` and ``replaced``. ``samples`` are the samples'
        own ``values`` dicts, not copies (50,000 rows would be 50,000 more dicts): read them,
        do not change them."""
        errors = [issue.as_dict() for issue in sorted(self.errors, key=_issue_order)]
        warnings = [issue.as_dict() for issue in sorted(self.warnings, key=_issue_order)]
        hidden_errors = self.error_count - len(self.errors)
        hidden_warnings = self.warning_count - len(self.warnings)
        if hidden_errors or hidden_warnings:
            warnings.append(
                SheetIssue(
                    None,
                    None,
                    SheetErrorCode.ISSUES_TRUNCATED,
                    f"{hidden_errors} more errors and {hidden_warnings} more warnings are not "
                    "listed",
                ).as_dict()
            )
        return {
            "valid": self.valid,
            "format": self.format,
            "row_count": self.row_count,
            "error_count": self.error_count,
            "warning_count": self.warning_count,
            "errors": errors,
            "warnings": warnings,
            "samples": [sample.values for sample in self.samples],
        }


def _issue_order(issue: SheetIssue) -> int:
    return issue.row or 0


_NOT_COMPARED = frozenset({"sample_id", "sample", "description"})
_compared = itemgetter(*(f.name for f in FIELDS if f.name not in _NOT_COMPARED))
_CELL_PROBLEMS = frozenset({SheetErrorCode.CELL_TOO_LONG, SheetErrorCode.FORMULA_CELL})


def validate_sheet(
    parsed: ParsedSheet, *, today: date | None = None, max_issues: int = DEFAULT_MAX_ISSUES
) -> SheetReport:
    """Apply the checklist to every row, check sample_id uniqueness (ignoring case) within the
    sheet and flag samples identical in everything but sample_id, sample and description."""
    report = SheetReport(
        format=parsed.format,
        row_count=len(parsed.rows),
        max_issues=max_issues,
        too_large=parsed.too_large,
    )
    for issue in parsed.errors:
        report.add_error(issue.row, issue.column, issue.code, issue.message, issue.value)
    for issue in parsed.warnings:
        report.add_warning(issue.row, issue.column, issue.code, issue.message, issue.value)
    if not parsed.headers:
        return report
    field_of = _map_headers(parsed, report)
    _require_columns(parsed, report)
    used = [(header, name) for header, name in field_of.items() if name != ""]
    cell_problems = {
        (issue.row, issue.column) for issue in parsed.errors if issue.code in _CELL_PROBLEMS
    }
    twins = _SampleTwins(report)
    columns = ResolvedColumns(
        [(name, header) for header, name in used], today=today, report_unknown=False
    )
    headers = [header for header, _ in used]
    rows = parsed.rows
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[start : start + _CHUNK_ROWS]
        checks = columns.check_rows(_cells(chunk, headers))
        for (number, row), check in zip(chunk, checks, strict=True):
            check.values["attributes"] = check.attributes  # the report's shape, without a copy
            row_valid = True
            if check.errors or check.warnings:
                row_valid = _report_checklist(report, check, number, row, cell_problems)
            row_valid = twins.check(number, check.values, check.attributes) and row_valid
            report.samples.append(SheetSample(number, check.values, check.attributes, row_valid))
    return report


# Rows checked at once, column by column: bounds the columns' copies the check makes.
_CHUNK_ROWS = 8192


def _cells(rows: Sequence[tuple[int, dict[str, str]]], headers: list[str]) -> list[Sequence[str]]:
    """Each row's cells under ``headers``, in that order ("" where a row has none)."""
    if len(headers) > 1:
        pick = itemgetter(*headers)
        try:
            return [pick(row) for _, row in rows]
        except KeyError:
            pass  # a row without some header: a short xlsx row
    return [[row.get(header, "") for header in headers] for _, row in rows]


def _map_headers(parsed: ParsedSheet, report: SheetReport) -> dict[str, str | None]:
    """Each header's checklist field (None: an attribute; "": ignored, a second header for a
    field already given). Fills ``report.columns`` and reports duplicates and unknown columns."""
    field_of: dict[str, str | None] = {}
    header_keys: set[str] = set()
    for header in parsed.headers:
        key = header_key(header)
        if not header or key in header_keys:
            continue  # a duplicate: the parser reported it
        header_keys.add(key)
        if header in parsed.attribute_headers:
            field_of[header] = EXPLICIT_ATTRIBUTE
            continue
        name = match_header(header)
        if name is not None and name in report.columns:
            report.add_error(
                parsed.header_row,
                header,
                SheetErrorCode.DUPLICATE_HEADER,
                f"{header!r} and {report.columns[name]!r} both give {name}; only the first is read",
                header,
            )
            field_of[header] = ""
            continue
        field_of[header] = name
        if name is None:
            report.add_warning(
                parsed.header_row,
                header,
                ChecklistCode.UNKNOWN_COLUMN,
                f"{header!r} is not a checklist field; its values are kept as attributes",
            )
        else:
            report.columns[name] = header
    return field_of


def _require_columns(parsed: ParsedSheet, report: SheetReport) -> None:
    for spec in FIELDS:
        if spec.required and spec.name not in report.columns:
            report.add_error(
                parsed.header_row,
                spec.header,
                SheetErrorCode.MISSING_COLUMN,
                f"the required column {spec.header} is missing",
            )


def _report_checklist(
    report: SheetReport,
    check: SampleCheck,
    number: int,
    row: dict[str, str],
    cell_problems: set[tuple[int | None, str | None]],
) -> bool:
    """Add a row's checklist errors and warnings, except those reported already (a missing
    column, a cell the parser refused); False when the row has any error."""
    for problem in check.errors:
        if problem.code == ChecklistCode.REQUIRED and problem.field not in row:
            continue  # the whole column is missing, reported once
        if (number, problem.field) in cell_problems:
            continue  # already reported by the parser for this cell
        report.add_error(number, problem.field, problem.code, problem.message, problem.value)
    for note in check.warnings:
        report.add_warning(number, note.field, note.code, note.message, note.value)
    return not check.errors


class _SampleTwins:
    """Samples seen so far in a sheet: a sample_id used again (ignoring case) is an error, a
    sample identical to an earlier one in all but sample_id, sample and description a warning."""

    def __init__(self, report: SheetReport) -> None:
        self.report = report
        self.column = report.column_for("sample_id")
        self.sample_ids = SampleIds()
        self.first_row_of_signature: dict[tuple[object, ...], int] = {}

    def check(self, number: int, values: dict[str, Any], attributes: dict[str, str]) -> bool:
        """False when the row's sample_id repeats an earlier row's."""
        sample_id = values["sample_id"]
        if not isinstance(sample_id, str):
            return True
        earlier = self.sample_ids.earlier_use(sample_id, number)
        if earlier is not None:
            self.report.add_error(
                number,
                self.column,
                SheetErrorCode.DUPLICATE_SAMPLE_ID,
                f"sample_id {sample_id!r} is already used on row {earlier} (sample_ids are "
                "compared ignoring case)",
                sample_id,
            )
            return False
        signature = _compared(values)
        if attributes:
            signature += tuple(sorted(attributes.items()))
        twin = self.first_row_of_signature.setdefault(signature, number)
        if twin != number:
            self.report.add_warning(
                number,
                self.column,
                SheetErrorCode.POSSIBLE_DUPLICATE_SAMPLE,
                f"sample {sample_id!r} is identical to row {twin} in every field but "
                "sample_id, sample and description",
                sample_id,
            )
        return True


def flag_taken_sample_ids(report: SheetReport, taken: Iterable[str]) -> None:
    """Add ``SAMPLE_ID_TAKEN`` errors for rows whose sample_id (ignoring case) is in ``taken``,
    e.g. the study's existing samples when appending."""
    taken_keys = {sample_id.casefold() for sample_id in taken}
    column = report.column_for("sample_id")
    for sample in report.samples:
        sample_id = sample.values.get("sample_id")
        if isinstance(sample_id, str) and sample_id.casefold() in taken_keys:
            sample.valid = False
            report.add_error(
                sample.row,
                column,
                SheetErrorCode.SAMPLE_ID_TAKEN,
                f"sample_id {sample_id!r} is already in the study",
                sample_id,
            )
