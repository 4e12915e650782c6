"""Helpers of the sample-sheet routes: a sheet file, or a sheet's report, as the response."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from src.sampleFileUpload.sheets.constants import MEDIA_TYPES
from src.storage import content_disposition

MEDIA_TYPES_TXT = {**MEDIA_TYPES, "txt": "text/plain; charset=utf-8"}


def file_response(data: bytes, *, format: str, filename: str, status_code: int = 200) -> Response:
    """``data`` as a download named ``filename``, with the format's media type."""
    return Response(
        data,
        status_code=status_code,
        media_type=MEDIA_TYPES_TXT[format],
        headers={"Content-Disposition": content_disposition(filename)},
    )


def report_response(report: dict[str, Any], *, status_code: int) -> Response:
    """A sheet's report as JSON, encoded by orjson: the report of a 50,000-row sheet is about
    20 MB, which orjson writes straight to UTF-8 bytes in a fraction of the standard encoder's
    time, and without its intermediate str. The bytes are those of the app's ``JSONResponse``
    (compact, non-ASCII unescaped); report text never holds a lone surrogate (see
    ``SheetIssue.as_dict``), the one thing orjson refuses that json does not."""
    return Response(orjson.dumps(report), status_code=status_code, media_type="application/json")
