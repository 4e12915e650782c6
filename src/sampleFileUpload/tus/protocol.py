"""The tus 1.0 protocol itself: the route class that speaks it (``Tus-Resumable`` on every
response, errors rendered by the app's own handlers as the standard envelope, 412 for other
versions), and the parsing of its headers: Upload-Metadata, Upload-Checksum, non-negative
integers, and the headers of an answer."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any, cast

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from src.exceptions import AppError
from src.sampleFileUpload.files.ingest import HASH_ALGORITHMS, new_hash
from src.sampleFileUpload.tus.constants import OFFSET_CONTENT_TYPE, TUS_VERSION
from src.sampleFileUpload.tus.exceptions import (
    InvalidUploadRequestError,
    TusVersionError,
    UnsupportedChecksumAlgorithmError,
)
from src.text import OWN_RULE, TextKind, refused_character


async def render_error(request: Request, exc: Exception) -> Response:
    """``exc`` rendered by the handler the app installed for it (``src/exceptions.py``), so a
    tus error is the same envelope as any other; re-raised if the app has none."""
    for kind in type(exc).__mro__:
        handler = request.app.exception_handlers.get(kind)
        if handler is not None:
            return cast("Response", await handler(request, exc))
    raise exc


def with_tus_resumable(send: Send) -> Send:
    """``send`` adding ``Tus-Resumable`` to the response, whoever rendered it: the route, the
    app's error handlers (a busy database, even at the commit after the route returned, is 503
    SERVICE_BUSY; a value the database refuses 422 INVALID_VALUE) or the body limit."""

    async def send_resumable(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(raw=list(message.get("headers", [])))
            headers["Tus-Resumable"] = TUS_VERSION
            message["headers"] = headers.raw
        await send(message)

    return send_resumable


class TusRoute(APIRoute):
    """Adds ``Tus-Resumable`` to every response (errors included, see ``with_tus_resumable``)
    and refuses requests that do not speak tus 1.0.0 (OPTIONS excepted) with 412 and
    ``Tus-Version``. Refusals raised by the route are rendered inside it, so the request's
    transaction still commits what the refusal did (a discarded upload)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().handle(scope, receive, with_tus_resumable(send))

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tus_handler(request: Request) -> Response:
            try:
                if (
                    request.method != "OPTIONS"
                    and request.headers.get("tus-resumable") != TUS_VERSION
                ):
                    raise TusVersionError(headers={"Tus-Version": TUS_VERSION})
                return await handler(request)
            except (AppError, RequestValidationError) as exc:
                return await render_error(request, exc)

        return tus_handler


def http_date(moment: datetime) -> str:
    """RFC 7231 IMF-fixdate, as Upload-Expires wants it."""
    return format_datetime(moment, usegmt=True)


def parse_metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated ``key base64value`` pairs (the value may be absent)."""
    metadata: dict[str, str] = {}
    if not header or not header.strip():
        return metadata
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if not parts[0] or len(parts) > 2 or parts[0] in metadata:
            raise InvalidUploadRequestError(f"Upload-Metadata has a malformed pair: {pair!r}.")
        value = ""
        if len(parts) == 2:
            try:
                value = base64.b64decode(parts[1], validate=True).decode("utf-8")
            except (binascii.Error, ValueError) as exc:
                raise InvalidUploadRequestError(
                    f"Upload-Metadata value of {parts[0]!r} is not base64 of UTF-8 text."
                ) from exc
        # The text rule (src/text.py), as for any parameter; the file name has its own
        # (INVALID_FILENAME, as for the other upload paths).
        kind = OWN_RULE if parts[0] == "filename" else TextKind.LINE
        problem = refused_character(value, kind)
        if problem is not None:
            raise InvalidUploadRequestError(
                f"Upload-Metadata value of {parts[0]!r}: {problem}.",
                errors=[{"field": parts[0], "message": problem}],
            )
        metadata[parts[0]] = value
    return metadata


def non_negative(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 19:
        raise InvalidUploadRequestError(f"{name} must be a non-negative integer.")
    return int(text)


@dataclass(frozen=True)
class ChunkChecksum:
    algorithm: str
    expected: bytes


def parse_checksum(header: str | None) -> ChunkChecksum | None:
    if header is None:
        return None
    algorithm, _, value = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in HASH_ALGORITHMS:
        raise UnsupportedChecksumAlgorithmError(
            f"Upload-Checksum algorithm {algorithm!r} is not one of md5, sha1, sha256."
        )
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != new_hash(algorithm).digest_size:
        raise InvalidUploadRequestError("Upload-Checksum is not a base64 digest.")
    return ChunkChecksum(algorithm, raw)


@dataclass
class ChunkResult:
    """Where an upload stands after a request: its offset, expiry and, once finished, its file."""

    offset: int
    expires_at: datetime
    file_id: uuid.UUID | None = None


def offset_headers(result: ChunkResult) -> dict[str, str]:
    headers = {"Upload-Offset": str(result.offset), "Upload-Expires": http_date(result.expires_at)}
    if result.file_id is not None:
        headers["Upload-File-Id"] = str(result.file_id)
    return headers


def wants_body(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == OFFSET_CONTENT_TYPE
