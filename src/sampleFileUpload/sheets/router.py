"""Routes of sample sheets: the template and checklist, import (validate, append, replace) with a
report that points at rows and columns, and export of a study's samples."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse, Response

from src.auth.dependencies import CurrentUser
from src.dependencies import SessionDep, StorageDep
from src.exceptions import ErrorOut, error_responses
from src.sampleFileUpload.sheets import service
from src.sampleFileUpload.sheets.dependencies import SheetConfigDep, SheetDep
from src.sampleFileUpload.sheets.exceptions import SheetInvalidError
from src.sampleFileUpload.sheets.schemas import (
    ChecklistFieldOut,
    ExportFormat,
    ReportFormat,
    SheetFormat,
    SheetMode,
    SheetReportOut,
    TemplateFormat,
)
from src.sampleFileUpload.sheets.utils import file_response
from src.sampleFileUpload.utils import multipart_body
from src.study.checklist import checklist_fields
from src.study.dependencies import DraftForEditor, StudyDep

sheet_router = APIRouter(tags=["sample-sheets"])


@sheet_router.get(
    "/sample-sheets/template",
    response_class=Response,
    responses={200: {"description": "The header row and one example row"}},
)
async def sheet_template(format: TemplateFormat = TemplateFormat.CSV) -> Response:
    """A sample-sheet template: the checklist headers and one example row."""
    data = await service.template(format=format)
    return file_response(data, format=format, filename=f"mosaic-sample-sheet.{format}")


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
    data = await service.export_samples(session, study=view.study, format=format)
    return file_response(data, format=format, filename=f"{view.study.accession}-samples.{format}")
