"""Stable codes and fixed strings of the tus protocol: refusal codes, the version and extensions
announced, and the content type of a chunk."""

from enum import StrEnum

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
# Uploads handled per transaction by the clean-up task.
CLEANUP_BATCH = 100


class TusErrorCode(StrEnum):
    """Codes of tus upload refusals (the ``code`` of the error envelope)."""

    UPLOAD_NOT_FOUND = "UPLOAD_NOT_FOUND"
    UPLOAD_EXPIRED = "UPLOAD_EXPIRED"
    UPLOAD_LOCKED = "UPLOAD_LOCKED"
    OFFSET_MISMATCH = "OFFSET_MISMATCH"
    TUS_VERSION_UNSUPPORTED = "TUS_VERSION_UNSUPPORTED"
    INVALID_UPLOAD_REQUEST = "INVALID_UPLOAD_REQUEST"
    INVALID_CONTENT_TYPE = "INVALID_CONTENT_TYPE"
    CHUNK_CHECKSUM_MISMATCH = "CHUNK_CHECKSUM_MISMATCH"
    UNSUPPORTED_CHECKSUM_ALGORITHM = "UNSUPPORTED_CHECKSUM_ALGORITHM"
