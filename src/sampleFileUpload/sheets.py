"""Sample sheets: parse csv, tsv, txt, json and xlsx into rows, check them, and write them back.

:func:`parse_sheet` turns the bytes of an uploaded sheet into a :class:`ParsedSheet` (header, rows
numbered as a spreadsheet shows them, and every problem found as a :class:`SheetIssue` with a stable
:class:`SheetErrorCode`); bad input is reported, never raised. :func:`validate_sheet` applies the
sample checklist (``src.study.checklist``) to every row and checks sample_id uniqueness across the
sheet, giving a :class:`SheetReport`. :func:`write_sheet`, :func:`template` and
:func:`write_report` produce files that parse back to the same rows: in csv, tsv and xlsx a cell
starting with ``= + - @`` (or with ``'``, so that the escape itself round-trips) is written with a
leading ``'``, and the parser removes exactly that one quote. Everything here is synchronous and
CPU-bound; callers run it in a worker thread.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from src.sampleFileUpload.constants import SheetErrorCode
from src.study.checklist import (
    EXPLICIT_ATTRIBUTE,
    FIELDS,
    FIELDS_BY_NAME,
    SHEET_HEADERS,
    check_resolved,
    example_sample,
    header_key,
    match_header,
)
from src.study.constants import ChecklistCode

SheetFormat = Literal["csv", "tsv", "txt", "json", "xlsx"]
WriteFormat = Literal["csv", "tsv", "xlsx", "json"]
ReportFormat = Literal["csv", "xlsx"]
FORMATS: tuple[str, ...] = ("csv", "tsv", "txt", "json", "xlsx")
WRITE_FORMATS: tuple[str, ...] = ("csv", "tsv", "xlsx", "json")
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

DEFAULT_MAX_ROWS = 50_000
DEFAULT_MAX_COLUMNS = 200
DEFAULT_MAX_CELL_CHARS = 1024
DEFAULT_MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_ISSUES = 1000
# A zip member expanding more than this many times (and past 1 MiB) is treated as a bomb: real
# worksheet XML compresses 5-30 times.
MAX_COMPRESSION_RATIO = 200
MAX_ZIP_MEMBERS = 10_000

_EXTENSIONS: dict[str, str] = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "txt": "txt",
    "json": "json",
    "xlsx": "xlsx",
    "xlsm": "xlsx",
}
# Cells starting with these are written with a leading quote, and only a quote followed by one
# of them is removed on reading.
_ESCAPED_STARTS = ("=", "+", "-", "@", "'")
_BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls (or other OLE) file; save it as .xlsx"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"PK\x03\x04", "a zip archive"),
)
_MARKDOWN_RULE = re.compile(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?")
_TWO_OR_MORE_SPACES = re.compile(r" {2,}|\t")
_ILLEGAL_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True, slots=True)
class SheetIssue:
    """One error or warning: ``row`` as the spreadsheet numbers it (header = 1; None for the file
    as a whole), ``column`` as the user wrote the header."""

    row: int | None
    column: str | None
    code: str
    message: str
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The ``{row, column, code, message, value}`` shape of a SheetReport."""
        return {
            "row": self.row,
            "column": self.column,
            "code": str(self.code),
            "message": self.message,
            "value": self.value,
        }


@dataclass(slots=True)
class ParsedSheet:
    """A sheet read into text cells, before the checklist."""

    format: str | None = None
    headers: list[str] = field(default_factory=list)
    header_row: int = 1
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    errors: list[SheetIssue] = field(default_factory=list)
    warnings: list[SheetIssue] = field(default_factory=list)
    encoding: str | None = None
    # Rows refused as ragged, as read, so a report can show them.
    rejected_rows: dict[int, list[str]] = field(default_factory=dict)
    # Headers that came from a JSON object's "attributes": attributes whatever their name.
    attribute_headers: set[str] = field(default_factory=set)

    @property
    def too_large(self) -> bool:
        """True when the file was over ``max_bytes`` (the caller answers 413)."""
        return any(e.code == SheetErrorCode.FILE_TOO_LARGE for e in self.errors)

    def error(
        self,
        code: SheetErrorCode,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        """Record an error."""
        self.errors.append(SheetIssue(row, column, code, message, _clip(value)))

    def warn(
        self,
        code: SheetErrorCode,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        """Record a warning."""
        self.warnings.append(SheetIssue(row, column, code, message, _clip(value)))


def column_letter(number: int) -> str:
    """A spreadsheet's name for the 1-based column ``number``: A, B, ..., Z, AA, AB, ..."""
    letters = ""
    while number > 0:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def _clip(value: str | None, limit: int = 200) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class _Limits:
    max_rows: int
    max_columns: int
    max_cell_chars: int
    max_uncompressed_bytes: int


# --------------------------------------------------------------------------------------------
# Parsing


def parse_sheet(
    data: bytes,
    *,
    filename: str | None,
    format: str | None = None,
    max_bytes: int | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
    max_cell_chars: int = DEFAULT_MAX_CELL_CHARS,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> ParsedSheet:
    """Read a sheet. The format comes from ``format`` if given, else from the content and the
    file name. Never raises for bad input: problems are in ``errors`` and ``warnings``."""
    parsed = ParsedSheet()
    limits = _Limits(max_rows, max_columns, max_cell_chars, max_uncompressed_bytes)
    if max_bytes is not None and len(data) > max_bytes:
        parsed.error(
            SheetErrorCode.FILE_TOO_LARGE,
            f"the file has {len(data)} bytes; at most {max_bytes} are accepted",
        )
        return parsed
    if not data.strip():
        parsed.error(SheetErrorCode.EMPTY_FILE, "the file is empty")
        return parsed
    sheet_format = _detect_format(parsed, data, filename, format)
    if sheet_format is None:
        return parsed
    parsed.format = sheet_format
    if sheet_format == "xlsx":
        _parse_xlsx(parsed, data, limits)
    else:
        text = _decode(parsed, data)
        if text is None:
            return parsed
        if sheet_format == "json":
            _parse_json(parsed, text, limits)
        elif sheet_format == "txt":
            _collect(parsed, _txt_records(text), limits, strict_width=True)
        else:
            _parse_delimited(parsed, text, "\t" if sheet_format == "tsv" else None, limits)
    if not parsed.errors:
        if not parsed.headers:
            parsed.error(SheetErrorCode.EMPTY_FILE, "the file has no header row")
        elif not parsed.rows:
            parsed.error(SheetErrorCode.NO_DATA_ROWS, "the sheet has a header but no data rows")
    return parsed


def _extension(filename: str | None) -> str:
    if not filename or "." not in filename:
        return ""
    return filename.rsplit(".", 1)[1].strip().lower()


def _detect_format(
    parsed: ParsedSheet, data: bytes, filename: str | None, requested: str | None
) -> str | None:
    is_zip = data.startswith(b"PK\x03\x04")
    if requested:
        wanted = requested.strip().lower()
        if wanted not in FORMATS:
            parsed.error(
                SheetErrorCode.UNKNOWN_FORMAT,
                f"format {requested!r} is not one of {', '.join(FORMATS)}",
                value=requested,
            )
            return None
        if wanted != "xlsx" and is_zip and _is_workbook(data):
            parsed.warn(
                SheetErrorCode.FORMAT_MISMATCH,
                f"the file is an xlsx workbook, not {wanted}; read as xlsx",
            )
            return "xlsx"
        return wanted
    extension = _extension(filename)
    known = _EXTENSIONS.get(extension)
    if is_zip:
        if known is not None and known != "xlsx" and _is_workbook(data):
            parsed.warn(
                SheetErrorCode.FORMAT_MISMATCH,
                f"the file is named .{extension} but is an xlsx workbook; read as xlsx",
            )
        if known in (None, "xlsx") or _is_workbook(data):
            return "xlsx"
    if known == "xlsx":
        return "xlsx"  # _parse_xlsx reports what it is instead
    for magic, what in _BINARY_MAGIC:
        if data.startswith(magic):
            parsed.error(SheetErrorCode.BINARY_FILE, f"the file is {what}, not a sample sheet")
            return None
    if known is not None:
        return known
    if extension:
        parsed.error(
            SheetErrorCode.UNKNOWN_FORMAT,
            f"files named .{extension} are not sample sheets; send csv, tsv, txt, json or xlsx",
            value=filename,
        )
        return None
    return _sniff_text_format(data)


def _sniff_text_format(data: bytes) -> str:
    head = data[:4096].lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n")
    if head[:1] in (b"[", b"{"):
        return "json"
    first_line = head.split(b"\n", 1)[0].replace(b"\x00", b"")
    return "tsv" if b"\t" in first_line else "csv"


def _is_workbook(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _decode(parsed: ParsedSheet, data: bytes) -> str | None:
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        encoding = "utf-32"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"
    elif data.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
        if b"\x00" in data:
            parsed.error(
                SheetErrorCode.BINARY_FILE,
                "the file contains NUL bytes: it is binary (or UTF-16 without a byte-order "
                "mark), not a text sheet",
            )
            return None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding != "utf-8":
            parsed.error(
                SheetErrorCode.UNDECODABLE_TEXT,
                f"the file starts with a {encoding} byte-order mark but is not valid {encoding} "
                f"(byte {exc.start})",
            )
            return None
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            parsed.error(
                SheetErrorCode.UNDECODABLE_TEXT,
                f"the file is neither UTF-8 nor Windows-1252 text (byte {exc.start}); save it "
                "as UTF-8",
            )
            return None
        encoding = "cp1252"
        parsed.warn(
            SheetErrorCode.ENCODING_FALLBACK,
            "the file is not UTF-8; it was read as Windows-1252. Check accented characters, "
            "or save it as UTF-8",
        )
    if "\x00" in text:
        parsed.error(SheetErrorCode.BINARY_FILE, "the file contains NUL characters")
        return None
    parsed.encoding = encoding
    return text


def unneutralise(value: str) -> str:
    """Undo the writers' formula neutralisation: drop one ``'`` before ``= + - @ '``."""
    if len(value) > 1 and value[0] == "'" and value[1] in _ESCAPED_STARTS:
        return value[1:]
    return value


def neutralise(value: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet could run as a formula (and to one starting with
    ``'``, so that :func:`unneutralise` restores it exactly)."""
    if value and value[0] in _ESCAPED_STARTS:
        return "'" + value
    return value


def _parse_delimited(
    parsed: ParsedSheet, text: str, delimiter: str | None, limits: _Limits
) -> None:
    if delimiter is None:
        delimiter = _sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)

    def records() -> Iterator[tuple[int, list[str]]]:
        number = 0
        try:
            for number, cells in enumerate(reader, start=1):
                yield number, cells
        except csv.Error as exc:
            parsed.error(
                SheetErrorCode.MALFORMED_CSV,
                f"row {number + 1} (line {reader.line_num}) cannot be read: {exc}",
                row=number + 1,
            )

    _collect(parsed, records(), limits, strict_width=True)


def _sniff_delimiter(text: str) -> str:
    sample = text[:65536]
    best, best_count = ",", 0
    for candidate in (",", ";", "\t"):
        try:
            first = next(csv.reader(io.StringIO(sample, newline=""), delimiter=candidate), [])
        except csv.Error:
            continue
        if len(first) > best_count:
            best, best_count = candidate, len(first)
    return best


def _txt_records(text: str) -> Iterator[tuple[int, list[str]]]:
    mode: str | None = None
    for number, raw_line in enumerate(io.StringIO(text, newline=""), start=1):
        line = raw_line.rstrip("\r\n")
        if not line.strip():
            yield number, []
            continue
        if mode is None:
            if "\t" in line:
                mode = "tab"
            elif "|" in line:
                mode = "pipe"
            elif "  " in line.strip():
                mode = "spaces"
            else:
                mode = "space"
        if mode == "tab":
            yield number, line.split("\t")
        elif mode == "pipe":
            stripped = line.strip()
            if _MARKDOWN_RULE.fullmatch(stripped):
                yield number, []
                continue
            if stripped.startswith("|"):
                stripped = stripped[1:]
            if stripped.endswith("|"):
                stripped = stripped[:-1]
            yield number, stripped.split("|")
        elif mode == "spaces":
            yield number, _TWO_OR_MORE_SPACES.split(line.strip())
        else:
            yield number, line.split()


def _collect(
    parsed: ParsedSheet,
    records: Iterable[tuple[int, Sequence[str]]],
    limits: _Limits,
    *,
    strict_width: bool,
    clean: bool = True,
) -> None:
    """Turn numbered records of text cells into the header and rows, checking shape and limits.

    ``strict_width``: a row with fewer cells than the header is ragged (csv, tsv, txt); xlsx rows
    simply omit trailing empty cells.
    """
    header: list[str] | None = None
    width = 0
    empty_header_reported: set[int] = set()
    for number, raw_cells in records:
        cells = [unneutralise(c.strip()) for c in raw_cells] if clean else list(raw_cells)
        if not any(cells):
            continue
        if header is None:
            while cells and not cells[-1]:
                cells.pop()
            if len(cells) > limits.max_columns:
                parsed.error(
                    SheetErrorCode.TOO_MANY_COLUMNS,
                    f"the header has {len(cells)} columns; at most {limits.max_columns} are "
                    "accepted",
                    row=number,
                )
                return
            header = _check_header(parsed, cells, number)
            parsed.headers = header
            parsed.header_row = number
            width = len(header)
            continue
        if len(parsed.rows) >= limits.max_rows:
            parsed.error(
                SheetErrorCode.TOO_MANY_ROWS,
                f"the sheet has more than {limits.max_rows} data rows",
                row=number,
            )
            return
        if len(cells) > width:
            extra = [c for c in cells[width:] if c]
            if extra:
                parsed.error(
                    SheetErrorCode.RAGGED_ROW,
                    f"row {number} has {_last_filled(cells)} cells but the header has {width}",
                    row=number,
                    value=extra[0],
                )
                parsed.rejected_rows[number] = cells
                continue
            cells = cells[:width]
        elif len(cells) < width:
            if strict_width:
                parsed.error(
                    SheetErrorCode.RAGGED_ROW,
                    f"row {number} has {len(cells)} cells but the header has {width}",
                    row=number,
                )
                parsed.rejected_rows[number] = cells
                continue
            cells = cells + [""] * (width - len(cells))
        values: dict[str, str] = {}
        for index, (name, cell) in enumerate(zip(header, cells, strict=True)):
            if not name:
                if cell and index not in empty_header_reported:
                    empty_header_reported.add(index)
                    letter = column_letter(index + 1)
                    parsed.error(
                        SheetErrorCode.EMPTY_HEADER,
                        f"column {letter} has values but no header",
                        row=number,
                        column=letter,
                        value=cell,
                    )
                continue
            if name in values:
                continue  # a duplicate header, already reported
            if len(cell) > limits.max_cell_chars:
                parsed.error(
                    SheetErrorCode.CELL_TOO_LONG,
                    f"{name}: the cell has {len(cell)} characters; at most "
                    f"{limits.max_cell_chars} are accepted",
                    row=number,
                    column=name,
                    value=cell,
                )
            values[name] = cell
        parsed.rows.append((number, values))


def _last_filled(cells: Sequence[str]) -> int:
    count = len(cells)
    while count and not cells[count - 1]:
        count -= 1
    return count


def _check_header(parsed: ParsedSheet, cells: list[str], number: int) -> list[str]:
    seen: dict[str, str] = {}
    for index, name in enumerate(cells):
        if not name:
            continue
        key = header_key(name)
        if key in seen:
            parsed.error(
                SheetErrorCode.DUPLICATE_HEADER,
                f"column {column_letter(index + 1)} {name!r} repeats {seen[key]!r}; only the "
                "first is read",
                row=number,
                column=name,
                value=name,
            )
        else:
            seen[key] = name
    return cells


# -- json


def _json_scalar(value: object) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.strip()
    return None


def _parse_json(parsed: ParsedSheet, text: str, limits: _Limits) -> None:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        parsed.error(
            SheetErrorCode.INVALID_JSON,
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
        )
        return
    except RecursionError:
        parsed.error(SheetErrorCode.INVALID_JSON, "the JSON is nested too deeply")
        return
    if isinstance(document, dict) and isinstance(document.get("samples"), list):
        items: list[object] = document["samples"]
    elif isinstance(document, list):
        items = document
    else:
        parsed.error(
            SheetErrorCode.JSON_NOT_A_LIST,
            'the JSON must be a list of objects, or {"samples": [...]}',
        )
        return
    headers: list[str] = []
    keys: dict[str, str] = {}
    for index, item in enumerate(items):
        number = index + 2
        if not isinstance(item, dict):
            parsed.error(
                SheetErrorCode.JSON_ROW_NOT_OBJECT,
                f"item {index + 1} is {type(item).__name__}, not an object",
                row=number,
            )
            continue
        cells: list[tuple[str, object]] = []
        for key, value in item.items():
            if key == "attributes" and isinstance(value, dict):
                names = [str(k).strip() for k in value]
                parsed.attribute_headers.update(names)
                cells.extend(zip(names, value.values(), strict=True))
            else:
                cells.append((key.strip(), value))
        values: dict[str, str] = {}
        for key, value in cells:
            text_value = _json_scalar(value)
            if text_value is None:
                parsed.error(
                    SheetErrorCode.NESTED_VALUE,
                    f"{key}: nested objects and lists are not accepted",
                    row=number,
                    column=key,
                    value=json.dumps(value)[:200],
                )
                continue
            normalised_key = header_key(key)
            known = keys.get(normalised_key)
            if known is None:
                if len(headers) >= limits.max_columns:
                    parsed.error(
                        SheetErrorCode.TOO_MANY_COLUMNS,
                        f"the objects have more than {limits.max_columns} distinct keys",
                        row=number,
                    )
                    return
                keys[normalised_key] = key
                headers.append(key)
                known = key
            if known != key or key in values:
                parsed.error(
                    SheetErrorCode.DUPLICATE_HEADER,
                    f"key {key!r} repeats {known!r}",
                    row=number,
                    column=key,
                )
                continue
            if len(text_value) > limits.max_cell_chars:
                parsed.error(
                    SheetErrorCode.CELL_TOO_LONG,
                    f"{key}: the value has {len(text_value)} characters; at most "
                    f"{limits.max_cell_chars} are accepted",
                    row=number,
                    column=key,
                    value=text_value,
                )
            values[key] = text_value
        if not any(values.values()):
            continue
        if len(parsed.rows) >= limits.max_rows:
            parsed.error(
                SheetErrorCode.TOO_MANY_ROWS,
                f"the file has more than {limits.max_rows} samples",
                row=number,
            )
            return
        parsed.rows.append((number, values))
    parsed.headers = headers
    for _, values in parsed.rows:
        for key in headers:
            values.setdefault(key, "")


# -- xlsx


def _parse_xlsx(parsed: ParsedSheet, data: bytes, limits: _Limits) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        parsed.error(
            SheetErrorCode.INVALID_XLSX,
            "the file is not an xlsx workbook (not a zip archive: an old .xls, a "
            "password-protected workbook or another file renamed .xlsx?)",
        )
        return
    with archive:
        members = archive.infolist()
        if "xl/workbook.xml" not in archive.namelist():
            parsed.error(
                SheetErrorCode.INVALID_XLSX, "the file is a zip archive but not an xlsx workbook"
            )
            return
        if len(members) > MAX_ZIP_MEMBERS:
            parsed.error(SheetErrorCode.ZIP_BOMB, f"the workbook has {len(members)} parts")
            return
        declared = sum(member.file_size for member in members)
        if declared > limits.max_uncompressed_bytes:
            parsed.error(
                SheetErrorCode.ZIP_BOMB,
                f"the workbook would expand to {declared} bytes; at most "
                f"{limits.max_uncompressed_bytes} are accepted",
            )
            return
        for member in members:
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > 1024 * 1024 and ratio > MAX_COMPRESSION_RATIO:
                parsed.error(
                    SheetErrorCode.ZIP_BOMB,
                    f"{member.filename} expands {ratio:.0f} times; refused as a zip bomb",
                )
                return
    from openpyxl import load_workbook  # only here and in render: ~5 MiB per process

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises anything from KeyError to XML errors
        parsed.error(
            SheetErrorCode.INVALID_XLSX,
            f"the workbook cannot be read ({type(exc).__name__})",
        )
        return
    try:
        if not workbook.worksheets:
            parsed.error(SheetErrorCode.INVALID_XLSX, "the workbook has no worksheet")
            return
        sheet = workbook.worksheets[0]
        if len(workbook.worksheets) > 1:
            parsed.warn(
                SheetErrorCode.EXTRA_SHEETS,
                f"only the first worksheet, {sheet.title!r}, was read; the workbook has "
                f"{len(workbook.worksheets)}",
            )
        # Trust no declared dimension: a forged A1:XFD1048576 would pad every row.
        sheet.reset_dimensions()
        _collect(parsed, _xlsx_records(parsed, sheet), limits, strict_width=False, clean=False)
    except Exception as exc:  # malformed XML inside a valid zip surfaces while iterating
        parsed.error(
            SheetErrorCode.INVALID_XLSX,
            f"the worksheet cannot be read ({type(exc).__name__})",
        )
    finally:
        workbook.close()


def _xlsx_records(parsed: ParsedSheet, sheet: Any) -> Iterator[tuple[int, list[str]]]:
    headers: list[str] | None = None
    for number, row in enumerate(sheet.iter_rows(), start=1):
        cells: list[str] = []
        for index, cell in enumerate(row):
            value = cell.value
            if value is None:
                cells.append("")
            elif getattr(cell, "data_type", None) == "f":
                column = (
                    headers[index]
                    if headers is not None and index < len(headers) and headers[index]
                    else column_letter(index + 1)
                )
                parsed.error(
                    SheetErrorCode.FORMULA_CELL,
                    f"{column}: formulas are not accepted; paste the values instead",
                    row=number,
                    column=column,
                    value=str(value),
                )
                cells.append("")
            else:
                cells.append(unneutralise(_xlsx_text(value).strip()))
        if headers is None and any(cells):
            headers = cells
        yield number, cells


def _xlsx_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        if value.time() == time():
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


# --------------------------------------------------------------------------------------------
# Validation


@dataclass(slots=True)
class SheetSample:
    """One row after the checklist: ``values`` by API field name, ``attributes`` the rest."""

    row: int
    values: dict[str, Any]
    attributes: dict[str, str]
    valid: bool

    def as_dict(self) -> dict[str, Any]:
        """The sample as the API's Sample input: checklist fields plus ``attributes``."""
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
            self.errors.append(SheetIssue(row, column, code, message, _clip(value)))

    def add_warning(
        self, row: int | None, column: str | None, code: str, message: str, value: str | None = None
    ) -> None:
        """Add a warning in the report's shape."""
        self.warning_count += 1
        if len(self.warnings) < self.max_issues:
            self.warnings.append(SheetIssue(row, column, code, message, _clip(value)))

    def as_dict(self) -> dict[str, Any]:
        """``{valid, format, row_count, error_count, warning_count, errors, warnings, samples}``;
        the caller adds ``mode``, ``created`` and ``replaced``."""
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
            "samples": [sample.as_dict() for sample in self.samples],
        }


def _issue_order(issue: SheetIssue) -> int:
    return issue.row or 0


_NOT_COMPARED = frozenset({"sample_id", "sample", "description"})
_COMPARED = tuple(f.name for f in FIELDS if f.name not in _NOT_COMPARED)
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
    for spec in FIELDS:
        if spec.required and spec.name not in report.columns:
            report.add_error(
                parsed.header_row,
                spec.header,
                SheetErrorCode.MISSING_COLUMN,
                f"the required column {spec.header} is missing",
            )
    used = [(header, name) for header, name in field_of.items() if name != ""]
    cell_problems = {
        (issue.row, issue.column) for issue in parsed.errors if issue.code in _CELL_PROBLEMS
    }
    when = today
    first_row_of_id: dict[str, int] = {}
    first_row_of_signature: dict[tuple[object, ...], int] = {}
    sample_id_column = report.column_for("sample_id")
    for number, row in parsed.rows:
        check = check_resolved(
            [(name, header, row.get(header, "")) for header, name in used],
            today=when,
            report_unknown=False,
        )
        row_valid = True
        for problem in check.errors:
            row_valid = False
            if problem.code == ChecklistCode.REQUIRED and problem.field not in row:
                continue  # the whole column is missing, reported once
            if (number, problem.field) in cell_problems:
                continue  # already reported by the parser for this cell
            report.add_error(number, problem.field, problem.code, problem.message, problem.value)
        for note in check.warnings:
            report.add_warning(number, note.field, note.code, note.message, note.value)
        values = check.values
        sample_id = values["sample_id"]
        if isinstance(sample_id, str):
            key = sample_id.casefold()
            earlier = first_row_of_id.get(key)
            if earlier is not None:
                row_valid = False
                report.add_error(
                    number,
                    sample_id_column,
                    SheetErrorCode.DUPLICATE_SAMPLE_ID,
                    f"sample_id {sample_id!r} is already used on row {earlier} (sample_ids are "
                    "compared ignoring case)",
                    sample_id,
                )
            else:
                first_row_of_id[key] = number
                signature = (
                    *(values[name] for name in _COMPARED),
                    *sorted(check.attributes.items()),
                )
                twin = first_row_of_signature.setdefault(signature, number)
                if twin != number:
                    report.add_warning(
                        number,
                        sample_id_column,
                        SheetErrorCode.POSSIBLE_DUPLICATE_SAMPLE,
                        f"sample {sample_id!r} is identical to row {twin} in every field but "
                        "sample_id, sample and description",
                        sample_id,
                    )
        report.samples.append(SheetSample(number, values, check.attributes, row_valid))
    return report


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


# --------------------------------------------------------------------------------------------
# Writing


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _xlsx_text(value)


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
        [_cell_text(sample.get(spec.name)) for spec in FIELDS]
        + [_cell_text(attributes.get(name)) for name in attribute_names]
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
        out[spec.name] = value if isinstance(value, (str, int)) else _cell_text(value)
    attributes = sample.get("attributes") or {}
    if attributes:
        out["attributes"] = {str(k): _cell_text(v) for k, v in attributes.items()}
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
