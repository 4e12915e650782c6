"""Refusals of the module: sample sheets, uploads, downloads and tus."""

from __future__ import annotations

from typing import TYPE_CHECKING

from src.exceptions import AppError
from src.sampleFileUpload.constants import FileErrorCode, SheetErrorCode

if TYPE_CHECKING:
    from src.sampleFileUpload.sheet_import import SheetOutcome


class ChecksumMismatchError(AppError):
    status_code = 422
    code = FileErrorCode.CHECKSUM_MISMATCH
    message = "The file does not match its declared checksum; nothing was kept."


class InvalidChecksumError(AppError):
    status_code = 422
    code = FileErrorCode.INVALID_CHECKSUM
    message = "A declared checksum is malformed (md5: 32 hex digits, sha256: 64)."


class FileTooLargeError(AppError):
    status_code = 413
    code = FileErrorCode.FILE_TOO_LARGE
    message = "The file is larger than the largest accepted upload."


class QuotaExceededError(AppError):
    status_code = 413
    code = FileErrorCode.QUOTA_EXCEEDED
    message = "This upload would exceed your storage quota."


class UnsupportedFileTypeError(AppError):
    status_code = 415
    code = FileErrorCode.UNSUPPORTED_FILE_TYPE
    message = "Only FASTQ files are accepted: .fastq, .fq, .fastq.gz or .fq.gz."


class InvalidFilenameError(AppError):
    status_code = 422
    code = FileErrorCode.INVALID_FILENAME
    message = "The file name is not allowed."


class InvalidReadError(AppError):
    status_code = 422
    code = FileErrorCode.INVALID_READ
    message = "read must be single, R1 or R2."


class FileExistsInSampleError(AppError):
    status_code = 409
    code = FileErrorCode.FILE_EXISTS
    message = "The sample already has a file of this name; delete it first."


class FileNotFoundInStudyError(AppError):
    status_code = 404
    code = FileErrorCode.FILE_NOT_FOUND
    message = "No such file."


class MissingFileError(AppError):
    status_code = 422
    code = FileErrorCode.MISSING_FILE
    message = "The multipart body has no 'file' part."


class MalformedMultipartError(AppError):
    status_code = 422
    code = FileErrorCode.MALFORMED_MULTIPART
    message = "The body is not a well-formed multipart/form-data message."


class IncompleteBodyError(AppError):
    status_code = 400
    code = FileErrorCode.INCOMPLETE_BODY
    message = "The request body ended before it was complete; nothing was kept."


class RangeNotSatisfiableError(AppError):
    status_code = 416
    code = FileErrorCode.RANGE_NOT_SATISFIABLE
    message = "The requested range is outside the file."


class StorageUnavailableError(AppError):
    status_code = 503
    code = FileErrorCode.STORAGE_UNAVAILABLE
    message = "The file storage failed; try again."


class ValidatorUnavailableError(AppError):
    status_code = 503
    code = FileErrorCode.VALIDATOR_UNAVAILABLE
    message = "The FASTQ validator stopped during the upload; nothing was kept. Send it again."


class UploadNotFoundError(AppError):
    status_code = 404
    code = FileErrorCode.UPLOAD_NOT_FOUND
    message = "No such upload."


class UploadExpiredError(AppError):
    status_code = 410
    code = FileErrorCode.UPLOAD_EXPIRED
    message = "The upload has expired; its bytes were discarded."


class UploadLockedError(AppError):
    status_code = 423
    code = FileErrorCode.UPLOAD_LOCKED
    message = "Another request is writing to this upload; retry shortly."


class OffsetMismatchError(AppError):
    status_code = 409
    code = FileErrorCode.OFFSET_MISMATCH
    message = "Upload-Offset does not match the upload's offset."


class TusVersionError(AppError):
    status_code = 412
    code = FileErrorCode.TUS_VERSION_UNSUPPORTED
    message = "Only tus 1.0.0 is supported (send Tus-Resumable: 1.0.0)."


class InvalidUploadRequestError(AppError):
    status_code = 400
    code = FileErrorCode.INVALID_UPLOAD_REQUEST
    message = "The tus request is malformed."


class InvalidContentTypeError(AppError):
    status_code = 415
    code = FileErrorCode.INVALID_CONTENT_TYPE
    message = "A PATCH body must be Content-Type: application/offset+octet-stream."


class ChunkChecksumMismatchError(AppError):
    status_code = 460
    code = FileErrorCode.CHUNK_CHECKSUM_MISMATCH
    message = "The chunk does not match Upload-Checksum; it was discarded."


class UnsupportedChecksumAlgorithmError(AppError):
    status_code = 400
    code = FileErrorCode.UNSUPPORTED_CHECKSUM_ALGORITHM
    message = "Upload-Checksum algorithm must be md5, sha1 or sha256."


class SheetInvalidError(AppError):
    """The sheet has errors; its whole report travels in the error body (``report``)."""

    status_code = 422
    code = SheetErrorCode.SHEET_INVALID
    message = "The sheet has errors; nothing was saved."

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


class MissingSheetError(AppError):
    status_code = 422
    code = SheetErrorCode.EMPTY_FILE
    message = "Send the sheet as a multipart form field named 'file'."
