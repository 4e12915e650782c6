"""Dependencies of the sample-sheet routes: the sheet settings and the uploaded sheet, read from
a multipart body and refused (413) past SHEET_MAX_BYTES before or while it is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from src.sampleFileUpload.config import SheetConfig
from src.sampleFileUpload.sheets.exceptions import MissingSheetError, SheetTooLargeError

# Room for the multipart envelope around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class UploadedSheet:
    data: bytes
    filename: str | None


def get_sheet_config(request: Request) -> SheetConfig:
    config: SheetConfig = request.app.state.sheet_config
    return config


SheetConfigDep = Annotated[SheetConfig, Depends(get_sheet_config)]


async def uploaded_sheet(request: Request, config: SheetConfigDep) -> UploadedSheet:
    """The ``file`` part of a multipart body, refused (413) past SHEET_MAX_BYTES before or while
    it is read, so an oversized body is never held whole."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > config.max_bytes + MULTIPART_OVERHEAD:
        raise SheetTooLargeError(f"The sheet is over the {config.max_bytes} byte limit.")
    form = await request.form(max_files=1, max_fields=20)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise MissingSheetError
    data = await upload.read(config.max_bytes + 1)
    await form.close()
    if len(data) > config.max_bytes:
        raise SheetTooLargeError(f"The sheet is over the {config.max_bytes} byte limit.")
    return UploadedSheet(data=data, filename=upload.filename)


SheetDep = Annotated[UploadedSheet, Depends(uploaded_sheet)]
