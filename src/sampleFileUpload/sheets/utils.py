"""Helpers of the sample-sheet routes: a sheet file as the response."""

from __future__ import annotations

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
