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
    Issue,
    ResolvedColumns,
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

    @property
    def warnings_full(self) -> bool:
        """True when a further warning would be counted but not listed."""
        return len(self.warnings) >= self.max_issues

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
    checker = SheetChecker(parsed, today=today, max_issues=max_issues)
    checker.check_rest()
    return checker.finish()


class SheetChecker:
    """:func:`validate_sheet` a chunk of rows at a time, so that a caller can use the rows
    checked so far (insert them) while the next are checked. ``taken``: sample_ids already in
    the study (ignoring case), each a ``SAMPLE_ID_TAKEN`` error. The report is complete, and
    the same as the whole sheet's in one go, once :meth:`finish` has run: the taken sample_ids'
    errors are added last, as :func:`flag_taken_sample_ids` adds them after a whole check."""

    def __init__(
        self,
        parsed: ParsedSheet,
        *,
        today: date | None = None,
        max_issues: int = DEFAULT_MAX_ISSUES,
        taken: Iterable[str] = (),
    ) -> None:
        report = SheetReport(
            format=parsed.format,
            row_count=len(parsed.rows),
            max_issues=max_issues,
            too_large=parsed.too_large,
        )
        self.report = report
        self._rows = parsed.rows if parsed.headers else []
        self._next = 0
        self._taken_keys = {sample_id.casefold() for sample_id in taken}
        self._taken: list[SheetSample] = []
        for issue in parsed.errors:
            report.add_error(issue.row, issue.column, issue.code, issue.message, issue.value)
        for issue in parsed.warnings:
            report.add_warning(issue.row, issue.column, issue.code, issue.message, issue.value)
        if not parsed.headers:
            return
        field_of = _map_headers(parsed, report)
        _require_columns(parsed, report)
        used = [(header, name) for header, name in field_of.items() if name != ""]
        self._cell_problems = {
            (issue.row, issue.column) for issue in parsed.errors if issue.code in _CELL_PROBLEMS
        }
        self._twins = _SampleTwins(report)
        self._columns = ResolvedColumns(
            [(name, header) for header, name in used], today=today, report_unknown=False
        )
        self._headers = [header for header, _ in used]

    @property
    def valid(self) -> bool:
        """True while no error was found in the rows checked so far (nor before them)."""
        return self.report.valid and not self._taken

    @property
    def done(self) -> bool:
        """True once every row is checked."""
        return self._next >= len(self._rows)

    def check_next(self) -> list[SheetSample]:
        """Check the next chunk of rows (``_CHUNK_ROWS``) and return its samples ([] when every
        row is checked)."""
        chunk = self._rows[self._next : self._next + _CHUNK_ROWS]
        self._next += len(chunk)
        return self._check(chunk) if chunk else []

    def check_rest(self) -> None:
        """Check every row not checked yet."""
        while not self.done:
            self.check_next()

    def finish(self) -> SheetReport:
        """The report, once every row is checked: the taken sample_ids' errors added."""
        if not self.done:
            raise RuntimeError("rows are left to check")
        _add_taken_errors(self.report, self._taken)
        self._taken = []
        return self.report

    def _check(self, chunk: Sequence[tuple[int, dict[str, str]]]) -> list[SheetSample]:
        report, twins = self.report, self._twins
        checked = self._columns.check_columns(
            _cells(chunk, self._headers), attributes_key="attributes"
        )
        numbers = [number for number, _ in chunk]
        repeats = twins.find(numbers, checked.values, checked.attributes)
        valid = [True] * len(chunk)
        # Issues are added row by row, in the rows' order (the report keeps the first
        # max_issues); rows without any need nothing more.
        for index in sorted(checked.errors.keys() | checked.warnings.keys() | repeats.keys()):
            number, row = chunk[index]
            valid[index] = _report_checklist(
                report,
                checked.errors.get(index, ()),
                checked.warnings.get(index, ()),
                number,
                row,
                self._cell_problems,
            )
            if index in repeats:
                valid[index] = (
                    twins.add(number, checked.values[index], repeats[index]) and (valid[index])
                )
        samples = list(map(SheetSample, numbers, checked.values, checked.attributes, valid))
        report.samples.extend(samples)
        if self._taken_keys:
            self._taken.extend(_taken_samples(samples, self._taken_keys))
        return samples


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
    errors: Iterable[Issue],
    warnings: Iterable[Issue],
    number: int,
    row: dict[str, str],
    cell_problems: set[tuple[int | None, str | None]],
) -> bool:
    """Add a row's checklist errors and warnings, except those reported already (a missing
    column, a cell the parser refused); False when the row has any error."""
    valid = True
    for problem in errors:
        valid = False
        if problem.code == ChecklistCode.REQUIRED and problem.field not in row:
            continue  # the whole column is missing, reported once
        if (number, problem.field) in cell_problems:
            continue  # already reported by the parser for this cell
        report.add_error(number, problem.field, problem.code, problem.message, problem.value)
    for note in warnings:
        report.add_warning(number, note.field, note.code, note.message, note.value)
    return valid


# What find() tells of a row: its sample_id repeats an earlier row's, or the sample is
# identical to an earlier one; and that row's number.
_REPEATED_ID, _TWIN = 0, 1


class _SampleTwins:
    """Samples seen so far in a sheet: a sample_id used again (ignoring case) is an error, a
    sample identical to an earlier one in all but sample_id, sample and description a warning.
    Rows without a sample_id (a missing or invalid one) take no part."""

    def __init__(self, report: SheetReport) -> None:
        self.report = report
        self.column = report.column_for("sample_id")
        self.first_row_of_id: dict[str, int] = {}
        self.first_row_of_signature: dict[tuple[object, ...], int] = {}

    def find(
        self,
        numbers: list[int],
        values: list[dict[str, Any]],
        attributes: list[dict[str, str]],
    ) -> dict[int, tuple[int, int]]:
        """The rows (by index) of the next rows of the sheet that repeat an earlier one, with
        what they repeat and where: the rows' keys go into dicts in C (the first row of each
        key wins), and only the rows that are not their key's first are looked at one by
        one."""
        taking_part = [i for i, value in enumerate(values) if type(value["sample_id"]) is str]
        keys = [values[i]["sample_id"].casefold() for i in taking_part]
        repeats: dict[int, tuple[int, int]] = {}
        first_ids = _first_rows(self.first_row_of_id, keys, [numbers[i] for i in taking_part])
        unique: list[int] = []
        for index, first in zip(taking_part, first_ids, strict=True):
            if first != numbers[index]:
                repeats[index] = (_REPEATED_ID, first)
            else:
                unique.append(index)
        # A row's attributes are in its sheet's column order, so equal ones give equal tuples.
        signatures = [_compared(values[i]) + tuple(attributes[i].items()) for i in unique]
        first_twins = _first_rows(
            self.first_row_of_signature, signatures, [numbers[i] for i in unique]
        )
        for index, first in zip(unique, first_twins, strict=True):
            if first != numbers[index]:
                repeats[index] = (_TWIN, first)
        return repeats

    def add(self, number: int, values: dict[str, Any], repeat: tuple[int, int]) -> bool:
        """Report what :meth:`find` found of a row; False when its sample_id repeats."""
        what, earlier = repeat
        sample_id = values["sample_id"]
        if what == _REPEATED_ID:
            self.report.add_error(
                number,
                self.column,
                SheetErrorCode.DUPLICATE_SAMPLE_ID,
                f"sample_id {sample_id!r} is already used on row {earlier} (sample_ids are "
                "compared ignoring case)",
                sample_id,
            )
            return False
        if self.report.warnings_full:
            self.report.warning_count += 1  # counted, not listed: no message to write
            return True
        self.report.add_warning(
            number,
            self.column,
            SheetErrorCode.POSSIBLE_DUPLICATE_SAMPLE,
            f"sample {sample_id!r} is identical to row {earlier} in every field but "
            "sample_id, sample and description",
            sample_id,
        )
        return True


def _first_rows(first_row: dict[Any, int], keys: list[Any], numbers: list[int]) -> list[int]:
    """The first row of each key among earlier rows (``first_row``, which learns the new
    keys) and these, in order: one row per key."""
    first_here = dict(zip(reversed(keys), reversed(numbers), strict=True))
    for key in first_here.keys() & first_row.keys():
        first_here[key] = first_row[key]
    first_row.update(first_here)
    return list(map(first_here.__getitem__, keys))


def flag_taken_sample_ids(report: SheetReport, taken: Iterable[str]) -> None:
    """Add ``SAMPLE_ID_TAKEN`` errors for rows whose sample_id (ignoring case) is in ``taken``,
    e.g. the study's existing samples when appending."""
    taken_keys = {sample_id.casefold() for sample_id in taken}
    if taken_keys:  # a study without samples: nothing to look up, row by row
        _add_taken_errors(report, _taken_samples(report.samples, taken_keys))


def _taken_samples(samples: Iterable[SheetSample], taken_keys: set[str]) -> list[SheetSample]:
    """The samples whose sample_id (ignoring case) is among ``taken_keys``, now invalid."""
    found = []
    for sample in samples:
        sample_id = sample.values.get("sample_id")
        if isinstance(sample_id, str) and sample_id.casefold() in taken_keys:
            sample.valid = False
            found.append(sample)
    return found


def _add_taken_errors(report: SheetReport, samples: Iterable[SheetSample]) -> None:
    column = report.column_for("sample_id")
    for sample in samples:
        sample_id = sample.values["sample_id"]
        report.add_error(
            sample.row,
            column,
            SheetErrorCode.SAMPLE_ID_TAKEN,
            f"sample_id {sample_id!r} is already in the study",
            sample_id,
        )
