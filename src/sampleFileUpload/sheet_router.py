"""Routes of sample sheets: the template and checklist, import (validate, append, replace) with a
report that points at rows and columns, and export of a study's samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from src.auth.dependencies import CurrentUser
from src.dependencies import SessionDep, StorageDep
from src.exceptions import ErrorOut, error_responses
from src.sampleFileUpload import sheet_import
from src.sampleFileUpload.config import SheetConfig
from src.sampleFileUpload.exceptions import MissingSheetError, SheetInvalidError, SheetTooLargeError
from src.sampleFileUpload.sheet_import import (
    ExportFormat,
    ReportFormat,
    SheetFormat,
    SheetMode,
    TemplateFormat,
)
from src.sampleFileUpload.sheets import MEDIA_TYPES
from src.sampleFileUpload.utils import multipart_body
from src.storage import content_disposition
from src.study.checklist import checklist_fields
from src.study.dependencies import DraftForEditor, StudyDep

sheet_router = APIRouter(tags=["sample-sheets"])

# Room for the multipart envelope around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
MEDIA_TYPES_TXT = {**MEDIA_TYPES, "txt": "text/plain; charset=utf-8"}


class SheetIssueOut(BaseModel):
    row: int | None
    column: str | None
    code: str
    message: str
    value: str | None = None


class SheetReportOut(BaseModel):
    """What a sheet import found: errors and warnings point at a row (the header is row 1, as a
    spreadsheet shows it) and the column as the sheet names it."""

    valid: bool
    mode: SheetMode
    format: str | None
    row_count: int
    created: int
    replaced: int
    error_count: int
    warning_count: int
    errors: list[SheetIssueOut]
    warnings: list[SheetIssueOut]
    samples: list[dict[str, Any]]


class ChecklistFieldOut(BaseModel):
    name: str
    header: str
    aliases: list[str]
    required: bool
    type: str
    allowed_values: list[str] | None
    max_length: int
    description: str
    example: str


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


def _file_response(data: bytes, *, format: str, filename: str, status_code: int = 200) -> Response:
    return Response(
        data,
        status_code=status_code,
        media_type=MEDIA_TYPES_TXT[format],
        headers={"Content-Disposition": content_disposition(filename)},
    )


@sheet_router.get(
    "/sample-sheets/template",
    response_class=Response,
    responses={200: {"description": "The header row and one example row"}},
)
async def sheet_template(format: TemplateFormat = TemplateFormat.CSV) -> Response:
    """A sample-sheet template: the checklist headers and one example row."""
    data = await sheet_import.template(format=format)
    return _file_response(data, format=format, filename=f"mosaic-sample-sheet.{format}")


@sheet_router.get("/sample-sheets/checklist", response_model=list[ChecklistFieldOut])
async def sheet_checklist() -> list[dict[str, Any]]:
    """The sample checklist: fields, header aliases, types and allowed values."""
    return checklist_fields()


@sheet_router.post(
    "/studies/{study}/sample-sheet",
    response_model=SheetReportOut,
    openapi_extra=multipart_body("the sheet: csv, tsv, txt, json or xlsx"),
    responses={
        201: {"model": SheetReportOut, "description": "Applied (append or replace)"},
        **error_responses(401, 403, 404, 409, 413),
        422: {"model": ErrorOut, "description": "SHEET_INVALID, with the whole report"},
    },
)
async def import_sheet(
    view: DraftForEditor,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
    config: SheetConfigDep,
    sheet: Annotated[UploadedSheet, Depends(uploaded_sheet)],
    mode: SheetMode = SheetMode.VALIDATE,
    format: Annotated[SheetFormat | None, Query(description="override detection")] = None,
    report: Annotated[
        ReportFormat | None, Query(description="answer with your sheet plus an errors column")
    ] = None,
) -> Response:
    """Validate a sample sheet, or apply it (append or replace) in one transaction."""
    try:
        outcome = await sheet_import.import_sheet(
            session,
            study=view.study,
            data=sheet.data,
            filename=sheet.filename,
            format=format,
            mode=mode,
            limits=config.limits,
            storage=storage,
            actor=user,
        )
    except SheetInvalidError as refused:
        if report is None:
            raise
        annotated = await sheet_import.annotated_report(refused.outcome, format=report)
        return _file_response(
            annotated, format=report, filename=f"report.{report}", status_code=422
        )
    status_code = status.HTTP_201_CREATED if outcome.applied else status.HTTP_200_OK
    if report is not None:
        annotated = await sheet_import.annotated_report(outcome, format=report)
        return _file_response(
            annotated, format=report, filename=f"report.{report}", status_code=status_code
        )
    return JSONResponse(outcome.report, status_code=status_code)


@sheet_router.get(
    "/studies/{study}/samples/export",
    response_class=Response,
    tags=["samples"],
    responses={200: {"description": "The samples as a sheet"}, 404: {"model": ErrorOut}},
)
async def export_samples(
    view: StudyDep, session: SessionDep, format: ExportFormat = ExportFormat.CSV
) -> Response:
    """The study's samples as a sheet (csv, tsv, json, xlsx) that imports back unchanged."""
    data = await sheet_import.export_samples(session, study=view.study, format=format)
    return _file_response(data, format=format, filename=f"{view.study.accession}-samples.{format}")
