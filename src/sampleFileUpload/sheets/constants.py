"""Stable codes and fixed values of sample sheets: the codes of a SheetReport's errors and
warnings, the formats read and written, and the default parsing limits."""

from enum import StrEnum

FORMATS: tuple[str, ...] = ("csv", "tsv", "txt", "json", "xlsx")
WRITE_FORMATS: tuple[str, ...] = ("csv", "tsv", "xlsx", "json")
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

# Parsing limits; a request passes SHEET_MAX_BYTES and SHEET_MAX_ROWS from its settings.
DEFAULT_MAX_ROWS = 50_000
DEFAULT_MAX_COLUMNS = 200
DEFAULT_MAX_CELL_CHARS = 1024
DEFAULT_MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_ISSUES = 1000
# A zip member expanding more than this many times (and past 1 MiB) is treated as a bomb: real
# worksheet XML compresses 5-30 times.
MAX_COMPRESSION_RATIO = 200
MAX_ZIP_MEMBERS = 10_000


class SheetErrorCode(StrEnum):
    """Codes in a SheetReport's errors and warnings, and of sheet-level refusals."""

    # Refusals of the whole import.
    SHEET_INVALID = "SHEET_INVALID"
    SHEET_TOO_LARGE = "SHEET_TOO_LARGE"
    # The file as a whole.
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    EMPTY_FILE = "EMPTY_FILE"
    NO_DATA_ROWS = "NO_DATA_ROWS"
    UNKNOWN_FORMAT = "UNKNOWN_FORMAT"
    BINARY_FILE = "BINARY_FILE"
    UNDECODABLE_TEXT = "UNDECODABLE_TEXT"
    MALFORMED_CSV = "MALFORMED_CSV"
    INVALID_XLSX = "INVALID_XLSX"
    ZIP_BOMB = "ZIP_BOMB"
    INVALID_JSON = "INVALID_JSON"
    JSON_NOT_A_LIST = "JSON_NOT_A_LIST"
    TOO_MANY_ROWS = "TOO_MANY_ROWS"
    TOO_MANY_COLUMNS = "TOO_MANY_COLUMNS"
    # Header and cells.
    EMPTY_HEADER = "EMPTY_HEADER"
    DUPLICATE_HEADER = "DUPLICATE_HEADER"
    MISSING_COLUMN = "MISSING_COLUMN"
    RAGGED_ROW = "RAGGED_ROW"
    JSON_ROW_NOT_OBJECT = "JSON_ROW_NOT_OBJECT"
    NESTED_VALUE = "NESTED_VALUE"
    FORMULA_CELL = "FORMULA_CELL"
    CELL_TOO_LONG = "CELL_TOO_LONG"
    # Samples across rows, and against the study.
    DUPLICATE_SAMPLE_ID = "DUPLICATE_SAMPLE_ID"
    SAMPLE_ID_TAKEN = "SAMPLE_ID_TAKEN"
    # Warnings.
    ENCODING_FALLBACK = "ENCODING_FALLBACK"
    FORMAT_MISMATCH = "FORMAT_MISMATCH"
    EXTRA_SHEETS = "EXTRA_SHEETS"
    POSSIBLE_DUPLICATE_SAMPLE = "POSSIBLE_DUPLICATE_SAMPLE"
    ISSUES_TRUNCATED = "ISSUES_TRUNCATED"
