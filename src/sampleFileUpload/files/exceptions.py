"""Refusals of sequence files: checks of names, reads and checksums, size limits and quotas,
malformed bodies, downloads, and storage or validator failures."""

from __future__ import annotations

from src.exceptions import AppError
from src.sampleFileUpload.files.constants import FileErrorCode
from src.sampleFileUpload.files.schemas import ChecksumProblem


class ChecksumMismatchError(AppError):
    status_code = 422
    code = FileErrorCode.CHECKSUM_MISMATCH
    message = "The file does not match its declared checksum; nothing was kept."
    item = ChecksumProblem


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
