"""Parsing of sample sheets: csv, tsv, txt, json and xlsx bytes into a :class:`ParsedSheet`.

:func:`parse_sheet` gives the header, rows numbered as a spreadsheet shows them, and every problem
found as a :class:`SheetIssue` with a stable :class:`SheetErrorCode`; bad input is reported, never
raised. The format comes from the request, the content or the file name, in that order. It is
synchronous and CPU-bound; callers run it in a worker thread.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from src.sampleFileUpload.sheets.cells import cell_text, clip, column_letter, unneutralise
from src.sampleFileUpload.sheets.constants import (
    DEFAULT_MAX_CELL_CHARS,
    DEFAULT_MAX_COLUMNS,
    DEFAULT_MAX_ROWS,
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
    FORMATS,
    MAX_COMPRESSION_RATIO,
    MAX_ZIP_MEMBERS,
    SheetErrorCode,
)
from src.study.checklist import header_key

_EXTENSIONS: dict[str, str] = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "txt": "txt",
    "json": "json",
    "xlsx": "xlsx",
    "xlsm": "xlsx",
}
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
# A JSON sheet's "\\ud800" escape reads as a lone surrogate, which no UTF-8 response can carry.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _shown(text: str | None) -> str | None:
    """Text of an issue as a report shows it: a lone surrogate (refused as a value by the
    checklist, but named in an issue) becomes U+FFFD."""
    if text is None or text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


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
            "column": _shown(self.column),
            "code": str(self.code),
            "message": _shown(self.message),
            "value": _shown(self.value),
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
        self.errors.append(SheetIssue(row, column, code, message, clip(value)))

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
        self.warnings.append(SheetIssue(row, column, code, message, clip(value)))


@dataclass(frozen=True, slots=True)
class _Limits:
    max_rows: int
    max_columns: int
    max_cell_chars: int
    max_uncompressed_bytes: int


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


def _txt_mode(line: str) -> str:
    """How a plain-text table separates its cells, judged from its first non-blank line."""
    if "\t" in line:
        return "tab"
    if "|" in line:
        return "pipe"
    if "  " in line.strip():
        return "spaces"
    return "space"


def _txt_cells(line: str, mode: str) -> list[str]:
    """The cells of one non-blank line; a markdown rule line (``|---|---|``) has none."""
    if mode == "tab":
        return line.split("\t")
    if mode == "pipe":
        stripped = line.strip()
        if _MARKDOWN_RULE.fullmatch(stripped):
            return []
        if stripped.startswith("|"):
            stripped = stripped[1:]
        if stripped.endswith("|"):
            stripped = stripped[:-1]
        return stripped.split("|")
    if mode == "spaces":
        return _TWO_OR_MORE_SPACES.split(line.strip())
    return line.split()


def _txt_records(text: str) -> Iterator[tuple[int, list[str]]]:
    mode: str | None = None
    for number, raw_line in enumerate(io.StringIO(text, newline=""), start=1):
        line = raw_line.rstrip("\r\n")
        if not line.strip():
            yield number, []
            continue
        if mode is None:
            mode = _txt_mode(line)
        yield number, _txt_cells(line, mode)


@dataclass(slots=True)
class _Table:
    """The header being collected against: its cells, and the empty-header columns whose values
    were already reported."""

    header: list[str]
    empty_header_reported: set[int] = field(default_factory=set)
    # No empty header and no header repeated exactly: a row's values are simply its cells.
    plain: bool = False

    def __post_init__(self) -> None:
        self.plain = all(self.header) and len(set(self.header)) == len(self.header)

    @property
    def width(self) -> int:
        return len(self.header)


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
    table: _Table | None = None
    for number, raw_cells in records:
        cells = _clean_cells(raw_cells) if clean else list(raw_cells)
        if not any(cells):
            continue
        if table is None:
            table = _read_header(parsed, cells, number, limits)
            if table is None:
                return
            continue
        if len(parsed.rows) >= limits.max_rows:
            parsed.error(
                SheetErrorCode.TOO_MANY_ROWS,
                f"the sheet has more than {limits.max_rows} data rows",
                row=number,
            )
            return
        if len(cells) == table.width and table.plain:
            fitted: list[str] | None = cells
        else:
            fitted = _fit_to_header(parsed, cells, number, table.width, strict_width=strict_width)
        if fitted is None:
            continue
        if table.plain and max(map(len, fitted), default=0) <= limits.max_cell_chars:
            parsed.rows.append((number, dict(zip(table.header, fitted, strict=True))))
        else:
            parsed.rows.append((number, _row_values(parsed, table, fitted, number, limits)))


def _clean_cells(raw_cells: Sequence[str]) -> list[str]:
    """Cells trimmed, with the writers' formula neutralisation undone. A row with no cell
    starting with a quote (the common case) is seen as such on its joined text."""
    cells = list(map(str.strip, raw_cells))
    joined = "\n".join(cells)
    if joined.startswith("'") or "\n'" in joined:
        return [unneutralise(cell) for cell in cells]
    return cells


def _read_header(
    parsed: ParsedSheet, cells: list[str], number: int, limits: _Limits
) -> _Table | None:
    """The header row (trailing empty cells dropped), or None when it has too many columns."""
    while cells and not cells[-1]:
        cells.pop()
    if len(cells) > limits.max_columns:
        parsed.error(
            SheetErrorCode.TOO_MANY_COLUMNS,
            f"the header has {len(cells)} columns; at most {limits.max_columns} are accepted",
            row=number,
        )
        return None
    header = _check_header(parsed, cells, number)
    parsed.headers = header
    parsed.header_row = number
    return _Table(header)


def _fit_to_header(
    parsed: ParsedSheet, cells: list[str], number: int, width: int, *, strict_width: bool
) -> list[str] | None:
    """The row cut or padded to the header's width, or None when it is ragged (reported, and
    kept in ``rejected_rows``): values past the header, or too few cells where that counts."""
    if len(cells) > width:
        extra = [c for c in cells[width:] if c]
        if not extra:
            return cells[:width]
        parsed.error(
            SheetErrorCode.RAGGED_ROW,
            f"row {number} has {_last_filled(cells)} cells but the header has {width}",
            row=number,
            value=extra[0],
        )
    elif len(cells) < width:
        if not strict_width:
            return cells + [""] * (width - len(cells))
        parsed.error(
            SheetErrorCode.RAGGED_ROW,
            f"row {number} has {len(cells)} cells but the header has {width}",
            row=number,
        )
    else:
        return cells
    parsed.rejected_rows[number] = cells
    return None


def _row_values(
    parsed: ParsedSheet, table: _Table, cells: list[str], number: int, limits: _Limits
) -> dict[str, str]:
    """A row's cells by header; values under an empty header are reported once per column, and
    a duplicate header's cells are skipped (the header was reported)."""
    values: dict[str, str] = {}
    for index, (name, cell) in enumerate(zip(table.header, cells, strict=True)):
        if not name:
            if cell and index not in table.empty_header_reported:
                table.empty_header_reported.add(index)
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
            continue
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
    return values


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
    """A JSON value as cell text, or None for a nested object or list."""
    if isinstance(value, (dict, list)):
        return None
    return cell_text(value).strip()


def _parse_json(parsed: ParsedSheet, text: str, limits: _Limits) -> None:
    items = _json_items(parsed, text)
    if items is None:
        return
    columns = _JsonColumns()
    for index, item in enumerate(items):
        number = index + 2
        if not isinstance(item, dict):
            parsed.error(
                SheetErrorCode.JSON_ROW_NOT_OBJECT,
                f"item {index + 1} is {type(item).__name__}, not an object",
                row=number,
            )
            continue
        values = _json_row(parsed, _json_cells(parsed, item), number, columns, limits)
        if values is None:
            return
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
    parsed.headers = columns.headers
    for _, values in parsed.rows:
        for key in columns.headers:
            values.setdefault(key, "")


def _json_items(parsed: ParsedSheet, text: str) -> list[object] | None:
    """The samples of a JSON document: a list, or the list under ``"samples"``."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        parsed.error(
            SheetErrorCode.INVALID_JSON,
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
        )
        return None
    except RecursionError:
        parsed.error(SheetErrorCode.INVALID_JSON, "the JSON is nested too deeply")
        return None
    if isinstance(document, dict) and isinstance(document.get("samples"), list):
        items: list[object] = document["samples"]
        return items
    if isinstance(document, list):
        return document
    parsed.error(
        SheetErrorCode.JSON_NOT_A_LIST,
        'the JSON must be a list of objects, or {"samples": [...]}',
    )
    return None


def _json_cells(parsed: ParsedSheet, item: dict[Any, Any]) -> list[tuple[str, object]]:
    """An object's keys and values, with an ``"attributes"`` object's entries flattened in (and
    their names remembered as attributes)."""
    cells: list[tuple[str, object]] = []
    for key, value in item.items():
        if key == "attributes" and isinstance(value, dict):
            names = [str(k).strip() for k in value]
            parsed.attribute_headers.update(names)
            cells.extend(zip(names, value.values(), strict=True))
        else:
            cells.append((key.strip(), value))
    return cells


@dataclass(slots=True)
class _JsonColumns:
    """The columns of a JSON sheet, in first-seen order, by normalised key."""

    headers: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)


def _json_row(
    parsed: ParsedSheet,
    cells: list[tuple[str, object]],
    number: int,
    columns: _JsonColumns,
    limits: _Limits,
) -> dict[str, str] | None:
    """One object's values as cell text by column, or None when it brings the sheet past
    ``max_columns`` (reported; reading stops)."""
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
        known = columns.keys.get(header_key(key))
        if known is None:
            if len(columns.headers) >= limits.max_columns:
                parsed.error(
                    SheetErrorCode.TOO_MANY_COLUMNS,
                    f"the objects have more than {limits.max_columns} distinct keys",
                    row=number,
                )
                return None
            columns.keys[header_key(key)] = key
            columns.headers.append(key)
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
    return values


# -- xlsx


def _parse_xlsx(parsed: ParsedSheet, data: bytes, limits: _Limits) -> None:
    if _safe_workbook_archive(parsed, data, limits):
        _read_first_worksheet(parsed, data, limits)


def _safe_workbook_archive(parsed: ParsedSheet, data: bytes, limits: _Limits) -> bool:
    """True when ``data`` is a zip holding a workbook and no zip bomb: few enough parts, a
    declared expanded size within limits, no part expanding suspiciously much."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        parsed.error(
            SheetErrorCode.INVALID_XLSX,
            "the file is not an xlsx workbook (not a zip archive: an old .xls, a "
            "password-protected workbook or another file renamed .xlsx?)",
        )
        return False
    with archive:
        members = archive.infolist()
        if "xl/workbook.xml" not in archive.namelist():
            parsed.error(
                SheetErrorCode.INVALID_XLSX, "the file is a zip archive but not an xlsx workbook"
            )
            return False
        if len(members) > MAX_ZIP_MEMBERS:
            parsed.error(SheetErrorCode.ZIP_BOMB, f"the workbook has {len(members)} parts")
            return False
        declared = sum(member.file_size for member in members)
        if declared > limits.max_uncompressed_bytes:
            parsed.error(
                SheetErrorCode.ZIP_BOMB,
                f"the workbook would expand to {declared} bytes; at most "
                f"{limits.max_uncompressed_bytes} are accepted",
            )
            return False
        for member in members:
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > 1024 * 1024 and ratio > MAX_COMPRESSION_RATIO:
                parsed.error(
                    SheetErrorCode.ZIP_BOMB,
                    f"{member.filename} expands {ratio:.0f} times; refused as a zip bomb",
                )
                return False
    return True


def _read_first_worksheet(parsed: ParsedSheet, data: bytes, limits: _Limits) -> None:
    """The first worksheet's cells, read with openpyxl in read-only mode; formulas refused."""
    from openpyxl import load_workbook  # only here and in write.py: ~5 MiB per process

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
                cells.append(unneutralise(cell_text(value).strip()))
        if headers is None and any(cells):
            headers = cells
        yield number, cells
