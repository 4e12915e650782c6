"""Stable codes of sequence files: FASTQ and gzip validation errors, and refusals of whole-file
uploads and downloads (also raised by tus, which stores files the same way)."""

from enum import StrEnum


class FastqErrorCode(StrEnum):
    """Codes of FASTQ and gzip validation errors, reported with a line number."""

    # The container: gzip framing and decompression limits (no line number).
    GZIP_TRUNCATED = "GZIP_TRUNCATED"
    GZIP_BAD_CRC = "GZIP_BAD_CRC"
    GZIP_CORRUPT = "GZIP_CORRUPT"
    GZIP_TRAILING_GARBAGE = "GZIP_TRAILING_GARBAGE"
    GZIP_BOMB = "GZIP_BOMB"
    # The file as a whole.
    NOT_FASTQ = "NOT_FASTQ"
    FASTQ_EMPTY = "FASTQ_EMPTY"
    CRLF_LINE_ENDINGS = "CRLF_LINE_ENDINGS"
    RECORD_TOO_LONG = "RECORD_TOO_LONG"
    TRUNCATED_RECORD = "TRUNCATED_RECORD"
    # Record framing: validation stops at the first of these.
    MISSING_AT = "MISSING_AT"
    MISSING_PLUS = "MISSING_PLUS"
    # One record: validation continues after these.
    PLUS_NAME_MISMATCH = "PLUS_NAME_MISMATCH"
    EMPTY_READ = "EMPTY_READ"
    BAD_SEQUENCE = "BAD_SEQUENCE"
    LENGTH_MISMATCH = "LENGTH_MISMATCH"
    BAD_QUALITY = "BAD_QUALITY"


class FileErrorCode(StrEnum):
    """Codes of sequence-file and tus upload refusals (the ``code`` of the error envelope)."""

    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    INVALID_CHECKSUM = "INVALID_CHECKSUM"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    UNSUPPORTED_FILE_TYPE = "UNSUPPORTED_FILE_TYPE"
    INVALID_FILENAME = "INVALID_FILENAME"
    INVALID_READ = "INVALID_READ"
    FILE_EXISTS = "FILE_EXISTS"
    FILE_NOT_FOUND = "FILE_NOT_FOUND"
    MISSING_FILE = "MISSING_FILE"
    MALFORMED_MULTIPART = "MALFORMED_MULTIPART"
    INCOMPLETE_BODY = "INCOMPLETE_BODY"
    RANGE_NOT_SATISFIABLE = "RANGE_NOT_SATISFIABLE"
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    VALIDATOR_UNAVAILABLE = "VALIDATOR_UNAVAILABLE"
