"""Routes of sample sheets: the template and checklist, import (validate, append, replace) with a
report that points at rows and columns, and export of a study's samples."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from src.auth.dependencies import CurrentUser
from src.auth.exceptions import InvalidTokenError
from src.dependencies import SessionDep, StorageDep
from src.exceptions import MalformedFormError, Responses, error_responses
from src.sampleFileUpload.sheets import service
from src.sampleFileUpload.sheets.constants import MEDIA_TYPES
from src.sampleFileUpload.sheets.dependencies import SheetConfigDep, SheetDep
from src.sampleFileUpload.sheets.exceptions import (
    MissingSheetError,
    SheetInvalidError,
    SheetTooLargeError,
)
from src.sampleFileUpload.sheets.schemas import (
    ChecklistFieldOut,
    ExportFormat,
    ReportFormat,
    SheetFormat,
    SheetMode,
    SheetReportOut,
    TemplateFormat,
)
from src.sampleFileUpload.sheets.utils import file_response, report_response
from src.sampleFileUpload.utils import multipart_body
from src.study.checklist import checklist_fields
from src.study.dependencies import DraftForEditor, StudyDep
from src.study.exceptions import ForbiddenError, StudyLockedError, StudyNotFoundError

sheet_router = APIRouter(tags=["sample-sheets"])


def _attachment(description: str) -> dict[str, Any]:
    return {"Content-Disposition": {"description": description, "schema": {"type": "string"}}}


def _sheet_content(formats: Iterable[str]) -> dict[str, Any]:
    """The media types of sheets in ``formats`` as file_response sets them (json: the JSON list
    of samples; the others: files)."""
    content: dict[str, Any] = {}
    for format in formats:
        media_type = MEDIA_TYPES[format].split(";")[0]
        if format == "json":
            schema: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
        elif format == "xlsx":
            schema = {"type": "string", "format": "binary"}
        else:
            schema = {"type": "string"}
        content[media_type] = {"schema": schema}
    return content


def _sheet_file(description: str, formats: Iterable[str]) -> dict[str, Any]:
    headers = _attachment("attachment, with the sheet's file name")
    return {"description": description, "content": _sheet_content(formats), "headers": headers}


@sheet_router.get(
    "/sample-sheets/template",
    response_class=Response,
    responses={
        200: _sheet_file("The header row and one example row, as ?format asks", TemplateFormat)
    },
)
async def sheet_template(format: TemplateFormat = TemplateFormat.CSV) -> Response:
    """A sample-sheet template: the checklist headers and one example row."""
    data = await service.template(format=format)
    return file_response(data, format=format, filename=f"mosaic-sample-sheet.{format}")


@sheet_router.get("/sample-sheets/checklist", response_model=list[ChecklistFieldOut])
async def sheet_checklist() -> list[dict[str, Any]]:
    """The sample checklist: fields, header aliases, types and allowed values."""
    return checklist_fields()


def _with_report(response: dict[str, Any]) -> dict[str, Any]:
    """An answer of the import that may instead be the caller's sheet with an errors column
    (``?report=csv|xlsx``)."""
    report = _sheet_content(ReportFormat)
    content = {**response.get("content", {"application/json": {}}), **report}
    headers = _attachment("attachment, report.csv or report.xlsx (with ?report= only)")
    return {**response, "content": content, "headers": headers}


IMPORT_ERRORS = error_responses(
    InvalidTokenError,
    ForbiddenError,
    StudyNotFoundError,
    StudyLockedError,
    SheetTooLargeError,
    MissingSheetError,
    MalformedFormError,
    SheetInvalidError,
    descriptions={
        422: "SHEET_INVALID with the whole report (as `report`), or a request without a sheet; "
        "with ?report=, SHEET_INVALID is your sheet with an errors column"
    },
)
IMPORT_RESPONSES: Responses = {
    200: _with_report({"description": "The report (validate: nothing saved)"}),
    201: _with_report({"model": SheetReportOut, "description": "Applied (append or replace)"}),
    **IMPORT_ERRORS,
    422: _with_report(IMPORT_ERRORS[422]),
}


@sheet_router.post(
    "/studies/{study}/sample-sheet",
    response_model=SheetReportOut,
    openapi_extra=multipart_body("the sheet: csv, tsv, txt, json or xlsx"),
    responses=IMPORT_RESPONSES,
)
async def import_sheet(
    view: DraftForEditor,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
    config: SheetConfigDep,
    sheet: SheetDep,
    mode: SheetMode = SheetMode.VALIDATE,
    format: Annotated[SheetFormat | None, Query(description="override detection")] = None,
    report: Annotated[
        ReportFormat | None, Query(description="answer with your sheet plus an errors column")
    ] = None,
) -> Response:
    """Validate a sample sheet, or apply it (append or replace) in one transaction."""
    try:
        outcome = await service.import_sheet(
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
        annotated = await service.annotated_report(refused.outcome, format=report)
        return file_response(annotated, format=report, filename=f"report.{report}", status_code=422)
    status_code = status.HTTP_201_CREATED if outcome.applied else status.HTTP_200_OK
    if report is not None:
        annotated = await service.annotated_report(outcome, format=report)
        return file_response(
            annotated, format=report, filename=f"report.{report}", status_code=status_code
        )
    return report_response(outcome.report, status_code=status_code)


@sheet_router.get(
    "/studies/{study}/samples/export",
    response_class=Response,
    tags=["samples"],
    responses={
        200: _sheet_file("The samples as a sheet, as ?format asks", ExportFormat),
        **error_responses(StudyNotFoundError),
    },
)
async def export_samples(
    view: StudyDep, session: SessionDep, format: ExportFormat = ExportFormat.CSV
) -> Response:
    """The study's samples as a sheet (csv, tsv, json, xlsx) that imports back unchanged."""
    data = await service.export_samples(session, study=view.study, format=format)
    return file_response(data, format=format, filename=f"{view.study.accession}-samples.{format}")
