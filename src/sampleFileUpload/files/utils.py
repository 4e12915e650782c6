"""Helpers of the sequence-file routes: client file names (only ever metadata), read guessing,
declared checksums in the forms clients send them, declared lengths and HTTP Range parsing."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

from src.sampleFileUpload.files.exceptions import (
    InvalidChecksumError,
    InvalidFilenameError,
    InvalidReadError,
    UnsupportedFileTypeError,
)
from src.study.constants import ReadKind

MAX_FILENAME_LENGTH = 255
FASTQ_SUFFIXES = (".fastq.gz", ".fq.gz", ".fastq", ".fq")

_ILLUMINA_READ = re.compile(r"(?:^|[._-])R([12])(?=[._-])", re.IGNORECASE)
_NUMBERED_READ = re.compile(r"_([12])\.f(?:ast)?q(?:\.gz)?$", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]+")
_DIGEST_SIZES = {"md5": 16, "sha1": 20, "sha256": 32}


# Format characters a name may hold: zero-width (non-)joiners, which Persian and Indic scripts
# and emoji sequences need, and emoji tag characters. Other format characters (bidirectional
# overrides that disguise a suffix, byte-order marks, soft hyphens) are refused.
_ALLOWED_FORMAT = frozenset({"\u200c", "\u200d", *map(chr, range(0xE0020, 0xE0080))})
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def check_filename(filename: str | None) -> str:
    """The client's file name as it is kept, if it is acceptable as metadata; 422 or 415
    otherwise. The one rule of every upload path (PUT, multipart, tus): each decodes the name
    from its transport (URL path, Content-Disposition, Upload-Metadata) and calls this.

    Never used to build a path: storage keys are generated. The name is kept in Unicode NFC, so
    the same name typed on macOS (NFD) and elsewhere is one name. Refused: empty, white space
    at either end, longer than 255 characters, control, format (except joiners), surrogate or
    line-separator characters, path separators, ``..`` or a leading dot (422
    INVALID_FILENAME), and names that do not end in a FASTQ suffix (415)."""
    if filename is None or not filename.strip():
        raise InvalidFilenameError("The file has no name.")
    filename = unicodedata.normalize("NFC", filename)
    if filename != filename.strip():
        raise InvalidFilenameError("The file name starts or ends with white space.")
    if len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidFilenameError(
            f"The file name has {len(filename)} characters; at most {MAX_FILENAME_LENGTH}."
        )
    if any(
        unicodedata.category(c) in _REFUSED_CATEGORIES and c not in _ALLOWED_FORMAT
        for c in filename
    ):
        raise InvalidFilenameError("The file name contains control or invisible format characters.")
    if "/" in filename or "\\" in filename or filename in (".", "..") or filename.startswith("."):
        raise InvalidFilenameError(
            "The file name must be a plain name: no folders, no leading dot."
        )
    if not filename.lower().endswith(FASTQ_SUFFIXES):
        raise UnsupportedFileTypeError(
            f"{filename!r} is not named as a FASTQ file (.fastq, .fq, .fastq.gz or .fq.gz)."
        )
    return filename


def parse_read(value: str | None, filename: str) -> ReadKind:
    """The declared read kind, or one guessed from ``_R1``/``_R2``/``_1``/``_2`` in the name."""
    if value is not None and value.strip():
        text = value.strip()
        for kind in ReadKind:
            if text.lower() == kind.value.lower():
                return kind
        raise InvalidReadError(f"read must be single, R1 or R2, not {text!r}.")
    match = _ILLUMINA_READ.search(filename) or _NUMBERED_READ.search(filename)
    if match is None:
        return ReadKind.SINGLE
    return ReadKind.R1 if match.group(1) == "1" else ReadKind.R2


def decode_digest(value: str, algorithm: str, *, source: str) -> bytes:
    """A digest given as hex or base64 (``Content-MD5`` is base64 by RFC 1864) as raw bytes."""
    size = _DIGEST_SIZES[algorithm]
    text = value.strip()
    if len(text) == 2 * size and _HEX.fullmatch(text):
        return bytes.fromhex(text)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise InvalidChecksumError(
            f"{source} is not a {algorithm} digest (hex or base64 of {size} bytes)."
        )
    return raw


def declared_hex(value: str | None, algorithm: str, *, source: str) -> str | None:
    """A declared whole-file digest as lower-case hex, or None when absent or blank."""
    if value is None or not value.strip():
        return None
    return decode_digest(value, algorithm, source=source).hex()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range ``(start, end)`` (inclusive) asked for, or None to send everything.

    Malformed headers and several ranges are ignored (RFC 9110 allows serving the whole
    representation); a well-formed range outside the file raises ``ValueError`` (416)."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
        return None
    if not first:  # a suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - length), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise ValueError("range starts past the end")
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


def declared_length(value: str | None) -> int | None:
    """A Content-Length header as a number of bytes, or None when absent or not a number."""
    return int(value) if value is not None and value.strip().isdigit() else None
