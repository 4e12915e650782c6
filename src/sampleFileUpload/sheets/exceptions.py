"""Refusals of a sample-sheet import: an invalid sheet (with its whole report), a sheet over the
size limits, and a request without a sheet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from src.exceptions import AppError
from src.sampleFileUpload.sheets.constants import SheetErrorCode
from src.sampleFileUpload.sheets.schemas import SheetIssueOut

if TYPE_CHECKING:
    from src.sampleFileUpload.sheets.service import SheetOutcome


class SheetInvalidError(AppError):
    """The sheet has errors; its whole report travels in the error body (``report``)."""

    status_code = 422
    code = SheetErrorCode.SHEET_INVALID
    message = "The sheet has errors; nothing was saved."
    item = SheetIssueOut

    def __init__(self, outcome: SheetOutcome) -> None:
        self.outcome = outcome
        checked = outcome.checked
        super().__init__(
            f"The sheet has {checked.error_count} error(s); nothing was saved. "
            "Fix the rows named in errors and upload it again.",
            errors=outcome.report["errors"],
            extra={"report": outcome.report},
        )


class SheetTooLargeError(AppError):
    status_code = 413
    code = SheetErrorCode.SHEET_TOO_LARGE
    message = "The sheet is larger than the limits allow."
    item = SheetIssueOut


class MissingSheetError(AppError):
    status_code = 422
    code = SheetErrorCode.EMPTY_FILE
    message = "Send the sheet as a multipart form field named 'file'."
