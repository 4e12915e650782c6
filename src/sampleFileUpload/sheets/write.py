"""Writing sample sheets: samples as csv, tsv, xlsx or json, the template, and a user's own sheet
with its errors and warnings added row by row. What is written parses back to the same rows: a
cell a spreadsheet could run as a formula is written with a leading ``'`` (see ``cells.py``).
Synchronous and CPU-bound; callers run it in a worker thread."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from src.sampleFileUpload.sheets.cells import cell_text, neutralise
from src.sampleFileUpload.sheets.constants import WRITE_FORMATS
from src.sampleFileUpload.sheets.parse import ParsedSheet
from src.sampleFileUpload.sheets.validate import SheetReport
from src.study.checklist import FIELDS, SHEET_HEADERS, example_sample, header_key

_ILLEGAL_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _sheet_table(samples: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    attribute_names: dict[str, None] = {}
    rows: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for sample in samples:
        attributes = sample.get("attributes") or {}
        for name in attributes:
            attribute_names.setdefault(str(name), None)
        rows.append((sample, attributes))
    headers = [*SHEET_HEADERS, *attribute_names]
    table = [
        [cell_text(sample.get(spec.name)) for spec in FIELDS]
        + [cell_text(attributes.get(name)) for name in attribute_names]
        for sample, attributes in rows
    ]
    return headers, table


def write_sheet(samples: Iterable[Mapping[str, Any]], *, format: str) -> bytes:
    """Write samples (API field names plus an ``attributes`` mapping, e.g.
    ``SheetSample.as_dict()``) as csv, tsv, xlsx or json. Checklist headers come first, then the
    attributes in first-seen order. Raises ValueError for another format."""
    if format == "json":
        document = [_json_sample(sample) for sample in samples]
        return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
    headers, table = _sheet_table(samples)
    return _write_table(headers, table, format=format)


def _json_sample(sample: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in FIELDS:
        value = sample.get(spec.name)
        if value is None or value == "":
            continue
        out[spec.name] = value if isinstance(value, (str, int)) else cell_text(value)
    attributes = sample.get("attributes") or {}
    if attributes:
        out["attributes"] = {str(k): cell_text(v) for k, v in attributes.items()}
    return out


def _write_table(
    headers: Sequence[str],
    table: Iterable[Sequence[str]],
    *,
    format: str,
    bold_header: bool = True,
) -> bytes:
    if format in ("csv", "tsv"):
        buffer = io.StringIO(newline="")
        writer = csv.writer(
            buffer, delimiter="," if format == "csv" else "\t", lineterminator="\r\n"
        )
        # The header is fully quoted so that the reader's delimiter sniffing, which reads the
        # header, never counts a ";" or tab inside a header name.
        header_writer = csv.writer(
            buffer,
            delimiter="," if format == "csv" else "\t",
            lineterminator="\r\n",
            quoting=csv.QUOTE_ALL,
        )
        header_writer.writerow([neutralise(h) for h in headers])
        for row in table:
            writer.writerow([neutralise(cell) for cell in row])
        # A BOM, so that Excel reads the csv as UTF-8.
        return buffer.getvalue().encode("utf-8-sig")
    if format == "xlsx":
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("samples")
        sheet.freeze_panes = "A2"
        bold = Font(bold=True)
        header_cells = []
        for header in headers:
            cell = WriteOnlyCell(sheet, value=_xlsx_safe(header))
            if bold_header:
                cell.font = bold
            header_cells.append(cell)
        sheet.append(header_cells)
        for row in table:
            sheet.append([_xlsx_safe(cell) or None for cell in row])
        output = io.BytesIO()
        workbook.save(output)
        return output.getvalue()
    raise ValueError(f"cannot write format {format!r}; use one of {', '.join(WRITE_FORMATS)}")


def _xlsx_safe(value: str) -> str:
    return _ILLEGAL_XLSX.sub("", neutralise(value))


def template(format: str) -> bytes:
    """The template: the checklist headers and one example row (csv, tsv, xlsx or json)."""
    return write_sheet([example_sample()], format=format)


def write_report(parsed: ParsedSheet, report: SheetReport, *, format: str) -> bytes:
    """The user's own sheet with ``errors`` and ``warnings`` columns added row by row (csv or
    xlsx), rows where the spreadsheet had them; file-level issues follow the last row."""
    if format not in ("csv", "xlsx"):
        raise ValueError(f"cannot write a report as {format!r}; use csv or xlsx")
    headers = list(parsed.headers)
    errors_header = _free_name("errors", headers)
    warnings_header = _free_name("warnings", [*headers, errors_header])
    by_row: dict[int | None, tuple[list[str], list[str]]] = {}
    for issue in report.errors:
        by_row.setdefault(issue.row, ([], []))[0].append(f"{issue.code}: {issue.message}")
    for issue in report.warnings:
        by_row.setdefault(issue.row, ([], []))[1].append(f"{issue.code}: {issue.message}")
    table: list[list[str]] = []
    width = len(headers)
    sheet_rows = dict(parsed.rows)
    last_row = max([parsed.header_row, *sheet_rows, *parsed.rejected_rows], default=1)
    header_issues = by_row.pop(parsed.header_row, ([], []))
    for number in range(parsed.header_row + 1, last_row + 1):
        if number in sheet_rows:
            values = sheet_rows[number]
            cells = [values.get(h, "") if h else "" for h in headers]
        elif number in parsed.rejected_rows:
            cells = parsed.rejected_rows[number][:width]
            cells += [""] * (width - len(cells))
        else:
            cells = [""] * width
        errors, warnings = by_row.pop(number, ([], []))
        table.append([*cells, "\n".join(errors), "\n".join(warnings)])
    for issue_row, (errors, warnings) in sorted(
        [*by_row.items(), (parsed.header_row, header_issues)], key=lambda item: item[0] or 0
    ):
        if not errors and not warnings:
            continue
        where = f"row {issue_row}: " if issue_row is not None else ""
        table.append(
            [
                *([""] * width),
                "\n".join(where + e for e in errors),
                "\n".join(where + w for w in warnings),
            ]
        )
    return _write_table([*headers, errors_header, warnings_header], table, format=format)


def _free_name(name: str, taken: Sequence[str]) -> str:
    keys = {header_key(h) for h in taken}
    candidate = name
    while header_key(candidate) in keys:
        candidate = f"mosaic_{candidate}"
    return candidate
