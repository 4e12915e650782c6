"""multipart/form-data read as a stream, for the file upload form: the ``file`` part's bytes
are handed on as they arrive (never spooled to memory or disk) and the small text fields
(``read``, ``md5``, ``sha256``) are collected whether they come before or after the file.

Built on python-multipart's push parser: each body chunk is parsed into events, and the events
are consumed in order by :meth:`MultipartForm.next_file`, :meth:`MultipartForm.file_data` and
:meth:`MultipartForm.finish`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from src.sampleFileUpload.files.exceptions import MalformedMultipartError

FILE_FIELD = "file"
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 32

_HEADERS, _DATA, _PART_END, _END = "headers", "data", "part_end", "end"


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


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
        self._headers[name] = _decode(bytes(self._header_value)).strip()
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
        disposition, options = parse_options_header(headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise MalformedMultipartError("A part has no Content-Disposition: form-data name.")
        name = options[b"name"].decode("latin-1")
        if name == FILE_FIELD:
            if self._file_seen:
                raise MalformedMultipartError("Send one file per request.")
            self._file_seen = True
            return options.get(b"filename", b"").decode("latin-1")
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
