"""multipart/form-data read as a stream, for the file upload form: the ``file`` part's bytes
are handed on as they arrive (never spooled to memory or disk) and the small text fields
(``read``, ``md5``, ``sha256``) are collected whether they come before or after the file.

Built on python-multipart's push parser: each body chunk is parsed into events, and the events
are consumed in order by :meth:`MultipartForm.next_file`, :meth:`MultipartForm.file_data` and
:meth:`MultipartForm.finish`.

File names are read as clients send them (:func:`part_filename`): ``filename="..."`` as a
quoted string of raw UTF-8 (what browsers send, with ``"``, CR and LF written ``%22``, ``%0D``,
``%0A``), percent-encoded as RFC 7578 allows, or ``filename*=UTF-8''...`` (RFC 5987/8187), which
wins when both are present. The name is then checked by the one rule every upload path uses
(``utils.check_filename``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any
from urllib.parse import unquote_to_bytes

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from src.sampleFileUpload.files.exceptions import InvalidFilenameError, MalformedMultipartError

FILE_FIELD = "file"
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 32

_HEADERS, _DATA, _PART_END, _END = "headers", "data", "part_end", "end"


# A %XX escape; a name is percent-encoded only if every % in it starts one.
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# RFC 8187 ext-value: charset ' [language] ' value-chars.
_EXT_VALUE = re.compile(r"([A-Za-z0-9!#$&+^_`{}~-]+)'([A-Za-z0-9-]*)'(.*)", re.DOTALL)
_EXT_CHARSETS = {"utf-8": "utf-8", "iso-8859-1": "latin-1"}


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _quoted(text: str, start: int, *, escapes: bool = True) -> tuple[str, int] | None:
    """The quoted string opening at ``text[start]``, unescaped, and the index after it (None
    if unterminated). Only ``\\"`` and ``\\\\`` are escapes: browsers send other
    backslashes as they are."""
    value: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if escapes and char == "\\" and index + 1 < len(text) and text[index + 1] in '"\\':
            value.append(text[index + 1])
            index += 2
        elif char == '"':
            return "".join(value), index + 1
        else:
            value.append(char)
            index += 1
    return None


def _quoted_value(text: str, start: int) -> tuple[str, int]:
    # A browser's name ending in a backslash (``"a\\"``) reads as unterminated with escapes:
    # then the backslashes were the name's own.
    found = _quoted(text, start) or _quoted(text, start, escapes=False)
    if found is None:
        raise MalformedMultipartError("A part's Content-Disposition has an unterminated quote.")
    return found


def parse_disposition(header: str) -> tuple[str, dict[str, str]]:
    """A Content-Disposition value: its type (lower-cased) and its parameters (names
    lower-cased, values unquoted). ``;`` inside quotes is part of the value."""
    kind, _, rest = header.partition(";")
    parameters: dict[str, str] = {}
    index = 0
    while index < len(rest):
        if rest[index] in " \t;":
            index += 1
            continue
        equals = rest.find("=", index)
        semicolon = rest.find(";", index)
        if equals < 0 or 0 <= semicolon < equals:
            raise MalformedMultipartError("A part's Content-Disposition has a malformed parameter.")
        name = rest[index:equals].strip().lower()
        index = equals + 1
        while index < len(rest) and rest[index] in " \t":
            index += 1
        if index < len(rest) and rest[index] == '"':
            value, index = _quoted_value(rest, index)
        else:
            end = rest.find(";", index)
            end = len(rest) if end < 0 else end
            value, index = rest[index:end].strip(), end
        if not name or name in parameters:
            raise MalformedMultipartError(
                "A part's Content-Disposition has an empty or repeated parameter."
            )
        parameters[name] = value
    return kind.strip().lower(), parameters


def _ext_value(value: str) -> str:
    """An RFC 8187 ``filename*`` value decoded; 422 INVALID_FILENAME when malformed."""
    match = _EXT_VALUE.fullmatch(value.strip())
    charset = _EXT_CHARSETS.get(match.group(1).lower()) if match else None
    if match is None or charset is None:
        raise InvalidFilenameError(
            "filename* must be UTF-8''<percent-encoded name> (RFC 5987) or ISO-8859-1''..."
        )
    encoded = match.group(3)
    if not encoded.isascii() or encoded.count("%") != len(_PERCENT.findall(encoded)):
        raise InvalidFilenameError("filename* is not correctly percent-encoded.")
    try:
        return unquote_to_bytes(encoded).decode(charset)
    except UnicodeDecodeError:
        raise InvalidFilenameError(f"filename* is not {match.group(1)} text.") from None


def _percent_decoded(name: str) -> str:
    """A ``filename`` with its %XX escapes decoded (RFC 7578 section 4.2, and browsers' %22,
    %0D, %0A), when every % in it starts one and the result is UTF-8; else as it came."""
    if "%" not in name or name.count("%") != len(_PERCENT.findall(name)):
        return name
    try:
        return unquote_to_bytes(name).decode("utf-8")
    except UnicodeError:  # not UTF-8 once decoded, or bytes that were not UTF-8 to begin with
        return name


def part_filename(parameters: dict[str, str]) -> str:
    """The file name of a part: ``filename*`` if present, else ``filename``, decoded ("" when
    there is none, which the name rule refuses)."""
    if "filename*" in parameters:
        return _ext_value(parameters["filename*"])
    return _percent_decoded(parameters.get("filename", ""))


class MultipartForm:
    """One multipart body with at most one file part named ``file``."""

    def __init__(self, content_type: str | None, source: AsyncIterable[bytes]) -> None:
        media, options = parse_options_header(content_type or "")
        boundary = options.get(b"boundary")
        if media != b"multipart/form-data" or not boundary:
            raise MalformedMultipartError(
                "Send the file as multipart/form-data with a boundary (or use PUT with the raw "
                "file as the body)."
            )
        self.fields: dict[str, str] = {}
        self._source = source.__aiter__()
        self._events: list[tuple[str, Any]] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._ended = False
        self._field_name: str | None = None
        self._field_value = bytearray()
        self._file_seen = False
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    # -- parser callbacks (synchronous, called from write())

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = bytes(self._header_name).decode("latin-1").strip().lower()
        # UTF-8, as browsers send names; bytes that are not become lone surrogates, which the
        # name rule refuses (422), rather than a guess at another charset.
        self._headers[name] = bytes(self._header_value).decode("utf-8", "surrogateescape").strip()
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        self._events.append((_HEADERS, self._headers))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append((_DATA, data[start:end]))

    def _on_part_end(self) -> None:
        self._events.append((_PART_END, None))

    def _on_end(self) -> None:
        self._events.append((_END, None))

    # -- consuming events

    async def _next_events(self) -> list[tuple[str, Any]]:
        """Parse body chunks until there are events; raise if the body ends unfinished."""
        while not self._events:
            if self._ended:
                raise MalformedMultipartError("The multipart body ended before its last boundary.")
            try:
                chunk = await self._source.__anext__()
            except StopAsyncIteration:
                self._ended = True
                try:
                    self._parser.finalize()
                except MultipartParseError as exc:
                    raise MalformedMultipartError(str(exc)) from exc
                continue
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise MalformedMultipartError(str(exc)) from exc
        events, self._events = self._events, []
        return events

    def _begin_part(self, headers: dict[str, str]) -> str | None:
        """Start a part; return the file name if it is the file part."""
        disposition, options = parse_disposition(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in options:
            raise MalformedMultipartError("A part has no Content-Disposition: form-data name.")
        name = options["name"]
        if name == FILE_FIELD:
            if self._file_seen:
                raise MalformedMultipartError("Send one file per request.")
            self._file_seen = True
            return part_filename(options)
        if len(self.fields) >= MAX_FIELDS:
            raise MalformedMultipartError(f"At most {MAX_FIELDS} form fields are accepted.")
        self._field_name = name
        self._field_value.clear()
        return None

    def _field_event(self, kind: str, payload: Any) -> None:
        if kind == _DATA:
            self._field_value += payload
            if len(self._field_value) > MAX_FIELD_BYTES:
                raise MalformedMultipartError(
                    f"Form field {self._field_name!r} is longer than {MAX_FIELD_BYTES} bytes."
                )
        elif kind == _PART_END and self._field_name is not None:
            self.fields[self._field_name] = _decode(bytes(self._field_value))
            self._field_name = None

    async def next_file(self) -> str | None:
        """Read fields up to the file part; its file name, or None if the body has no file."""
        while True:
            events = await self._next_events()
            for index, (kind, payload) in enumerate(events):
                if kind == _HEADERS:
                    filename = self._begin_part(payload)
                    if filename is not None:
                        self._events = events[index + 1 :]
                        return filename
                elif kind == _END:
                    return None
                else:
                    self._field_event(kind, payload)

    async def file_data(self) -> AsyncIterator[bytes]:
        """The file part's bytes, as they arrive; call after :meth:`next_file`."""
        while True:
            events = await self._next_events()
            for index, (kind, payload) in enumerate(events):
                if kind == _DATA:
                    yield payload
                elif kind == _PART_END:
                    self._events = events[index + 1 :]
                    return
                else:  # pragma: no cover - the parser always ends a part before the next
                    raise MalformedMultipartError("The file part is not terminated.")

    async def finish(self) -> dict[str, str]:
        """Read the fields after the file; return every field."""
        while True:
            events = await self._next_events()
            for kind, payload in events:
                if kind == _HEADERS:
                    if self._begin_part(payload) is not None:  # pragma: no cover
                        raise MalformedMultipartError("Send one file per request.")
                elif kind == _END:
                    return self.fields
                else:
                    self._field_event(kind, payload)
