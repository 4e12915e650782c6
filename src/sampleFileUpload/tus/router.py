"""Routes of resumable uploads (tus 1.0) under /api/v1/uploads: discovery, creation (with its
first chunk, optionally), the offset, appending a chunk and termination. The dependencies check
the requests; the writer does the work. Every upload is a row of the ``upload`` table (offset,
storage writer state, lease, expiry), so any process can continue any upload and a restart loses
no acknowledged byte.

Why not tuspyserver: we evaluated it (a FastAPI router for tus) against what MOSAIC needs. Its
upload state is a JSON file beside the data on local disk, so several processes or replicas
cannot share an upload and S3 is not supported (file IO is blocking, in the request); auth is
one router-wide dependency, not a per-upload owner check returning 404 to anyone else; its hook
runs once an upload completes, with no per-chunk hook to hash and validate on the way through,
so a 50 GB file would have to be read again after the last byte. Adapting it would have meant
replacing its storage, its state and its hook points, i.e. most of it, so the protocol is
implemented here (about as long as the glue would have been) on top of src/storage.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from src.auth.dependencies import CurrentUser
from src.auth.exceptions import InvalidTokenError
from src.database import writes_on_read
from src.dependencies import SessionDep, StorageDep
from src.exceptions import AppError, ServiceUnavailableError, error_responses
from src.sampleFileUpload.files.dependencies import FilesConfigDep
from src.sampleFileUpload.files.exceptions import (
    ChecksumMismatchError,
    FileExistsInSampleError,
    FileTooLargeError,
    InvalidChecksumError,
    InvalidFilenameError,
    InvalidReadError,
    QuotaExceededError,
    StorageUnavailableError,
    UnsupportedFileTypeError,
    ValidatorUnavailableError,
)
from src.sampleFileUpload.files.ingest import HASH_ALGORITHMS, BodyInterrupted
from src.sampleFileUpload.tus import writer
from src.sampleFileUpload.tus.constants import OFFSET_CONTENT_TYPE, TUS_EXTENSIONS, TUS_VERSION
from src.sampleFileUpload.tus.dependencies import (
    ChunkRequestDep,
    OwnedUpload,
    TerminableUpload,
    UploadTargetDep,
)
from src.sampleFileUpload.tus.exceptions import (
    ChunkChecksumMismatchError,
    InvalidContentTypeError,
    InvalidUploadRequestError,
    OffsetMismatchError,
    TusVersionError,
    UnsupportedChecksumAlgorithmError,
    UploadExpiredError,
    UploadLockedError,
    UploadNotFoundError,
)
from src.sampleFileUpload.tus.protocol import (
    ChunkResult,
    TusRoute,
    offset_headers,
)
from src.study.exceptions import (
    ForbiddenError,
    SampleNotFoundError,
    StudyLockedError,
    StudyNotFoundError,
)

tus_router = APIRouter(prefix="/uploads", tags=["uploads"], route_class=TusRoute)

# ---------------------------------------------------------------------------------------------
# The document: tus speaks in headers, so the operations declare them (FastAPI does not read
# them as parameters: the protocol's own refusals, 400 and 412, stay what they are).

_DIGITS: dict[str, Any] = {"type": "string", "pattern": "^[0-9]+$"}


def _header(name: str, description: str, schema: dict[str, Any], *, required: bool = False) -> Any:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema,
    }


TUS_RESUMABLE = _header(
    "Tus-Resumable",
    "The protocol version; only 1.0.0 (412 TUS_VERSION_UNSUPPORTED otherwise).",
    {"type": "string", "enum": [TUS_VERSION]},
    required=True,
)
UPLOAD_LENGTH = _header(
    "Upload-Length",
    "The whole file's size in bytes (Upload-Defer-Length is not supported).",
    {"type": "integer", "minimum": 0},
    required=True,
)
UPLOAD_METADATA = _header(
    "Upload-Metadata",
    "Comma-separated `key base64(value)` pairs: `study` (UUID or accession), `sample_id`, "
    "`filename`, optional `read` (single, R1, R2), `md5`, `sha256` (hex, of the whole file).",
    {"type": "string"},
    required=True,
)
UPLOAD_OFFSET = _header(
    "Upload-Offset",
    "Where this chunk starts: the upload's current offset (409 otherwise).",
    {"type": "integer", "minimum": 0},
    required=True,
)
UPLOAD_CHECKSUM = _header(
    "Upload-Checksum",
    "The chunk's checksum, `<md5|sha1|sha256> <base64 digest>` (460 when it does not match).",
    {"type": "string"},
)
CHUNK_BODY = {
    "description": "The bytes of the chunk (Content-Type: application/offset+octet-stream).",
    "content": {OFFSET_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
}


def _out(description: str, *, required: bool = True, schema: dict[str, Any] | None = None) -> Any:
    return {"description": description, "required": required, "schema": schema or _DIGITS}


RESUMABLE_OUT = _out("1.0.0", schema={"type": "string"})
OFFSET_OUT = {
    "Tus-Resumable": RESUMABLE_OUT,
    "Upload-Offset": _out("The bytes the server has."),
    "Upload-Expires": _out(
        "When an unfinished upload is discarded (RFC 7231 date).", schema={"type": "string"}
    ),
    "Upload-File-Id": _out(
        "The finished file's id, once the last byte arrived.",
        required=False,
        schema={"type": "string", "format": "uuid"},
    ),
}


def _responses(
    status: int, description: str, headers: dict[str, Any], *errors: type[AppError]
) -> Any:
    responses: dict[int | str, dict[str, Any]] = dict(error_responses(*errors))
    responses[status] = {"description": description, "headers": headers}
    if TusVersionError in errors:
        responses[TusVersionError.status_code]["headers"] = {
            "Tus-Version": _out("The supported version.", schema={"type": "string"})
        }
    return responses


# Every route after the version check: the caller's token, a busy database.
COMMON = (TusVersionError, InvalidTokenError, ServiceUnavailableError)
# An upload of the caller's that they may still write (HEAD, PATCH).
OWNED = (
    UploadNotFoundError,
    UploadExpiredError,
    StudyNotFoundError,
    ForbiddenError,
    StudyLockedError,
)
# Writing bytes and finishing the file (POST with a body, PATCH).
WRITING = (
    FileTooLargeError,
    UnsupportedChecksumAlgorithmError,
    UploadLockedError,
    ChecksumMismatchError,
    SampleNotFoundError,
    StorageUnavailableError,
    ValidatorUnavailableError,
)


@tus_router.options(
    "",
    status_code=204,
    response_class=Response,
    responses={
        204: {
            "description": "What the server supports",
            "headers": {
                "Tus-Resumable": RESUMABLE_OUT,
                "Tus-Version": _out("1.0.0", schema={"type": "string"}),
                "Tus-Extension": _out(TUS_EXTENSIONS, schema={"type": "string"}),
                "Tus-Max-Size": _out("The largest upload, in bytes."),
                "Tus-Checksum-Algorithm": _out(
                    ",".join(HASH_ALGORITHMS), schema={"type": "string"}
                ),
            },
        }
    },
)
async def tus_options(config: FilesConfigDep) -> Response:
    """tus discovery: version, extensions, maximum size and checksum algorithms."""
    return Response(
        status_code=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(config.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(HASH_ALGORITHMS),
        },
    )


@tus_router.post(
    "",
    status_code=201,
    response_class=Response,
    responses=_responses(
        201,
        "Created, with no body; Location names the upload",
        {
            "Location": _out("/api/v1/uploads/{id}", schema={"type": "string"}),
            **OFFSET_OUT,
        },
        *COMMON,
        InvalidUploadRequestError,
        StudyNotFoundError,
        ForbiddenError,
        StudyLockedError,
        UnsupportedFileTypeError,
        InvalidFilenameError,
        InvalidReadError,
        InvalidChecksumError,
        QuotaExceededError,
        FileExistsInSampleError,
        *WRITING,
    ),
    openapi_extra={
        "parameters": [TUS_RESUMABLE, UPLOAD_LENGTH, UPLOAD_METADATA, UPLOAD_CHECKSUM],
        "requestBody": {
            **CHUNK_BODY,
            "required": False,
            "description": "Optionally the first chunk (creation-with-upload).",
        },
    },
)
async def create_upload(
    request: Request,
    target: UploadTargetDep,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
    config: FilesConfigDep,
) -> Response:
    """Create an upload (Upload-Length, Upload-Metadata: study, sample_id, filename, read?, md5?,
    sha256?); with an application/offset+octet-stream body, its first chunk too."""
    upload, result = await writer.start_upload(
        request, target=target, user=user, session=session, storage=storage, config=config
    )
    location = f"{request.url.path.rstrip('/')}/{upload.id}"
    return Response(status_code=201, headers={"Location": location, **offset_headers(result)})


# POST /api/v1/uploads/ (as tus-js-client's examples write the endpoint) is the same endpoint,
# never a redirect; it stays out of the document.
tus_router.add_api_route(
    "/", tus_options, methods=["OPTIONS"], status_code=204, include_in_schema=False
)
tus_router.add_api_route(
    "/", create_upload, methods=["POST"], status_code=201, include_in_schema=False
)


@tus_router.head(
    "/{upload_id}",
    status_code=200,
    # An expired upload is removed here (410): the session takes the write lock up front.
    dependencies=[Depends(writes_on_read)],
    response_class=Response,
    responses=_responses(
        200,
        "Where the upload stands (no body); a finished upload, until it expires, answers "
        "Upload-Offset = Upload-Length and Upload-File-Id",
        {
            **OFFSET_OUT,
            "Upload-Length": _out("The whole file's size."),
            "Upload-Metadata": _out(
                "Upload-Metadata as sent at creation.", required=False, schema={"type": "string"}
            ),
            "Cache-Control": _out("no-store", schema={"type": "string"}),
        },
        *COMMON,
        *OWNED,
    ),
    openapi_extra={"parameters": [TUS_RESUMABLE]},
)
async def upload_offset(upload: OwnedUpload) -> Response:
    """How much of the upload the server has (Upload-Offset) out of Upload-Length; for a
    finished upload, its file (Upload-File-Id)."""
    headers = offset_headers(
        ChunkResult(
            offset=upload.length if upload.finished_at is not None else upload.offset,
            expires_at=upload.expires_at,
            file_id=upload.file_id if upload.finished_at is not None else None,
        )
    )
    headers["Upload-Length"] = str(upload.length)
    if upload.upload_metadata:
        headers["Upload-Metadata"] = upload.upload_metadata
    headers["Cache-Control"] = "no-store"
    return Response(status_code=200, headers=headers)


@tus_router.patch(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    responses=_responses(
        204,
        "The chunk is stored; after the last byte Upload-File-Id names the file. On a finished "
        "upload at Upload-Offset = Upload-Length, the same answer (nothing written)",
        OFFSET_OUT,
        *COMMON,
        *OWNED,
        InvalidUploadRequestError,
        InvalidContentTypeError,
        OffsetMismatchError,
        ChunkChecksumMismatchError,
        *WRITING,
    ),
    openapi_extra={
        "parameters": [TUS_RESUMABLE, UPLOAD_OFFSET, UPLOAD_CHECKSUM],
        "requestBody": {**CHUNK_BODY, "required": True},
    },
)
async def append_chunk(
    request: Request, chunk: ChunkRequestDep, user: CurrentUser, session: SessionDep
) -> Response:
    """Append a chunk at Upload-Offset (409 if that is not the upload's offset; 460 if it does
    not match Upload-Checksum). After the last byte, Upload-File-Id names the finished file."""
    try:
        result = await writer.append_chunk(request, chunk=chunk, user=user, session=session)
    except BodyInterrupted:
        raise InvalidUploadRequestError("The chunk was interrupted.") from None
    return Response(status_code=204, headers=offset_headers(result))


@tus_router.delete(
    "/{upload_id}",
    status_code=204,
    response_class=Response,
    responses=_responses(
        204,
        "The upload is abandoned (a finished upload's file stays)",
        {"Tus-Resumable": RESUMABLE_OUT},
        *COMMON,
        UploadNotFoundError,
        UploadExpiredError,
        UploadLockedError,
    ),
    openapi_extra={"parameters": [TUS_RESUMABLE]},
)
async def terminate_upload(
    upload: TerminableUpload, session: SessionDep, storage: StorageDep
) -> Response:
    """Abandon the upload: its bytes and its unfinished file go."""
    await writer.discard_upload(session, storage, upload)
    return Response(status_code=204)
