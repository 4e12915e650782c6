"""Helpers of the sample-sheet routes: a sheet file, or a sheet's report, as the response."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from fastapi.responses import Response

from src.sampleFileUpload.sheets.constants import MEDIA_TYPES
from src.schemas import plain_json
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
    """A sheet's report as JSON, written by ``plain_json`` (orjson): the report of a 50,000-row
    sheet is about 20 MB, which orjson writes straight to UTF-8 bytes in a fraction of the
    standard encoder's time, and without its intermediate str. The bytes are those of the app's
    ``JSONResponse`` (compact, non-ASCII unescaped); report text never holds a lone surrogate
    (see ``SheetIssue.as_dict``), the one thing orjson refuses that json does not."""
    return Response(plain_json(report), status_code=status_code, media_type="application/json")


# Container allocations between two young collections while a sheet is imported (the default is
# 700): a 50,000-row sheet allocates about a million, and with the default the collector ran some
# 650 times per import, promoting the sheet's rows through the generations and walking them again
# in several full collections (15-20% of the request's CPU).
SHEET_GC_THRESHOLD = 50_000


class _FewerCollections:
    """The collector's first threshold raised while at least one import runs (imports overlap:
    the first one in raises it, the last one out puts back what it was)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved: tuple[int, int, int] | None = None

    @contextmanager
    def scope(self) -> Iterator[None]:
        with self._lock:
            if self._active == 0:
                saved = gc.get_threshold()
                if 0 < saved[0] < SHEET_GC_THRESHOLD:  # 0: the collector is switched off
                    self._saved = saved
                    gc.set_threshold(SHEET_GC_THRESHOLD, saved[1], saved[2])
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0 and self._saved is not None:
                    gc.set_threshold(*self._saved)
                    self._saved = None


_fewer_collections = _FewerCollections()


def fewer_collections() -> AbstractContextManager[None]:
    """A scope, around one sheet import, with young collections every SHEET_GC_THRESHOLD
    container allocations instead of 700. The setting is the process's, so other requests
    running meanwhile collect less often too: cyclic garbage waits for at most that many
    allocations (a few MB) before a collection finds it, and the default comes back when the
    last import ends. Nothing is disabled or frozen: full collections still run by the
    collector's own rule, and objects without cycles are freed by their reference counts as
    ever."""
    return _fewer_collections.scope()
