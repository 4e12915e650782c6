"""Refusals of the tus protocol: unknown, expired or busy uploads, offsets, versions, malformed
requests and chunk checksums."""

from __future__ import annotations

from src.exceptions import AppError, FieldProblem
from src.sampleFileUpload.tus.constants import TusErrorCode


class UploadNotFoundError(AppError):
    status_code = 404
    code = TusErrorCode.UPLOAD_NOT_FOUND
    message = "No such upload."


class UploadExpiredError(AppError):
    status_code = 410
    code = TusErrorCode.UPLOAD_EXPIRED
    message = "The upload has expired; its bytes were discarded."


class UploadLockedError(AppError):
    status_code = 423
    code = TusErrorCode.UPLOAD_LOCKED
    message = "Another request is writing to this upload; retry shortly."


class OffsetMismatchError(AppError):
    status_code = 409
    code = TusErrorCode.OFFSET_MISMATCH
    message = "Upload-Offset does not match the upload's offset."


class TusVersionError(AppError):
    status_code = 412
    code = TusErrorCode.TUS_VERSION_UNSUPPORTED
    message = "Only tus 1.0.0 is supported (send Tus-Resumable: 1.0.0)."


class InvalidUploadRequestError(AppError):
    status_code = 400
    code = TusErrorCode.INVALID_UPLOAD_REQUEST
    message = "The tus request is malformed."
    item = FieldProblem  # the Upload-Metadata keys that are missing or wrong


class InvalidContentTypeError(AppError):
    status_code = 415
    code = TusErrorCode.INVALID_CONTENT_TYPE
    message = "A PATCH body must be Content-Type: application/offset+octet-stream."


class ChunkChecksumMismatchError(AppError):
    status_code = 460
    code = TusErrorCode.CHUNK_CHECKSUM_MISMATCH
    message = "The chunk does not match Upload-Checksum; it was discarded."


class UnsupportedChecksumAlgorithmError(AppError):
    status_code = 400
    code = TusErrorCode.UNSUPPORTED_CHECKSUM_ALGORITHM
    message = "Upload-Checksum algorithm must be md5, sha1 or sha256."
