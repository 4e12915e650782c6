"""Routes of sequence files: the multipart form (POST) and raw body (PUT) uploads, listing,
reading, downloading and deleting files. Upload routes take no body parameters, so FastAPI never
spools the file: the body is read as a stream by ``uploads.py``, after the dependencies have
authorised the caller.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from starlette.convertors import PathConvertor, register_url_convertor

from src.auth.dependencies import CurrentUser
from src.auth.exceptions import InvalidTokenError
from src.dependencies import SessionDep, StorageDep
from src.exceptions import Responses, error_responses
from src.sampleFileUpload.files import downloads, service, uploads
from src.sampleFileUpload.files.dependencies import (
    EditableFile,
    FilesConfigDep,
    ReceiverDep,
    VisibleFile,
    request_body,
)
from src.sampleFileUpload.files.exceptions import (
    ChecksumMismatchError,
    FileExistsInSampleError,
    FileNotFoundInStudyError,
    FileTooLargeError,
    IncompleteBodyError,
    InvalidChecksumError,
    InvalidFilenameError,
    InvalidReadError,
    MalformedMultipartError,
    MissingFileError,
    QuotaExceededError,
    RangeNotSatisfiableError,
    UnsupportedFileTypeError,
    ValidatorUnavailableError,
)
from src.sampleFileUpload.files.utils import declared_length
from src.sampleFileUpload.utils import multipart_body
from src.study.constants import AccessRole
from src.study.dependencies import SampleDep, StudyDep
from src.study.exceptions import (
    ForbiddenError,
    SampleNotFoundError,
    StudyLockedError,
    StudyNotFoundError,
)
from src.study.models import SampleFile
from src.study.schemas import FileRead
from src.text import OWN_RULE

files_router = APIRouter(tags=["files"])


class FileNameConvertor(PathConvertor):
    """The rest of the path, line breaks included (``path`` stops at them): a name holding one
    reaches the name rule and is refused like on the other upload paths (422), not a 404."""

    regex = r"[\s\S]*"


register_url_convertor("filename", FileNameConvertor())

SAMPLE_FILES = "/studies/{study}/samples/{sample_id}/files"


# A whole-file upload: the caller edits a draft holding the sample (checked again once the body
# is in), the name, read and checksums are allowed, the size fits, the bytes match the checksums.
UPLOAD_ERRORS = (
    IncompleteBodyError,
    InvalidTokenError,
    ForbiddenError,
    StudyNotFoundError,
    SampleNotFoundError,
    StudyLockedError,
    FileExistsInSampleError,
    FileTooLargeError,
    QuotaExceededError,
    UnsupportedFileTypeError,
    InvalidFilenameError,
    InvalidReadError,
    InvalidChecksumError,
    ChecksumMismatchError,
    ValidatorUnavailableError,
)


@files_router.post(
    SAMPLE_FILES,
    response_model=FileRead,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(*UPLOAD_ERRORS, MissingFileError, MalformedMultipartError),
    openapi_extra=multipart_body(
        "a FASTQ file: .fastq, .fq, .fastq.gz or .fq.gz",
        read={"type": "string", "enum": ["single", "R1", "R2"]},
        md5={"type": "string", "description": "the file's MD5, to be checked"},
        sha256={"type": "string", "description": "the file's SHA-256, to be checked"},
    ),
)
async def upload_file(request: Request, receiver: ReceiverDep) -> SampleFile:
    """Upload a FASTQ file as a multipart form (field ``file``; optional read, md5, sha256)."""
    return await uploads.receive_form(
        receiver,
        content_type=request.headers.get("content-type"),
        body=request_body(request),
        length=declared_length(request.headers.get("content-length")),
    )


@files_router.put(
    SAMPLE_FILES + "/{filename:filename}",
    response_model=FileRead,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(*UPLOAD_ERRORS),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_file(
    request: Request,
    # Checked by check_filename (INVALID_FILENAME, as on every upload path), not the text rule.
    filename: Annotated[str, Path(description="The file's name, e.g. S1_R1.fastq.gz."), OWN_RULE],
    receiver: ReceiverDep,
    read: Annotated[str | None, Query(description="single, R1 or R2 (else guessed)")] = None,
    content_md5: Annotated[str | None, Header(alias="Content-MD5")] = None,
    checksum_sha256: Annotated[str | None, Header(alias="X-Checksum-SHA256")] = None,
) -> SampleFile:
    """Upload a FASTQ file as the raw request body (``curl -T``)."""
    return await uploads.receive_raw(
        receiver,
        filename=filename,
        body=request_body(request),
        length=declared_length(request.headers.get("content-length")),
        content_md5=content_md5,
        content_sha256=checksum_sha256,
        read=read,
    )


@files_router.get(
    SAMPLE_FILES,
    response_model=list[FileRead],
    responses=error_responses(StudyNotFoundError, SampleNotFoundError),
)
async def list_files(view: StudyDep, sample: SampleDep, session: SessionDep) -> list[SampleFile]:
    """The files of a sample (the public sees valid files only)."""
    return await service.list_files(
        session, sample=sample, valid_only=view.my_role == AccessRole.PUBLIC
    )


@files_router.get(
    "/files/{file_id}",
    response_model=FileRead,
    responses=error_responses(FileNotFoundInStudyError),
)
async def get_file(access: VisibleFile) -> SampleFile:
    """One file: state, checksums, read statistics and validation errors."""
    return access.file


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


# What downloads.file_headers sets on every answer about a file's bytes.
FILE_HEADERS = {
    "ETag": _header("The file's SHA-256 (else MD5) in quotes; for If-None-Match and If-Range"),
    "Accept-Ranges": _header("bytes"),
    "Content-Disposition": _header("attachment, with the file's name"),
    "X-Checksum-SHA256": _header("The file's SHA-256, hex (when known)"),
    "X-Checksum-MD5": _header("The file's MD5, hex (when known)"),
    "Repr-Digest": _header("RFC 9530: sha-256=:<base64>: (when known)"),
}
# downloads._media_type: gzip for .gz names, else plain bytes.
FILE_CONTENT = {
    "application/gzip": {"schema": {"type": "string", "format": "binary"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}
DOWNLOAD_RESPONSES: Responses = {
    200: {"description": "The whole file", "content": FILE_CONTENT, "headers": FILE_HEADERS},
    206: {
        "description": "One byte range of the file (Range)",
        "content": FILE_CONTENT,
        "headers": {
            **FILE_HEADERS,
            "Content-Range": _header("bytes <first>-<last>/<size>"),
        },
    },
    302: {
        "description": "Fetch the file from the object store (DOWNLOAD_REDIRECT, GET only)",
        "headers": {**FILE_HEADERS, "Location": _header("A presigned, short-lived address")},
    },
    304: {"description": "Unchanged (If-None-Match matches the ETag)", "headers": FILE_HEADERS},
    **error_responses(FileNotFoundInStudyError, RangeNotSatisfiableError),
}
DOWNLOAD_PARAMETERS = {
    "parameters": [
        {
            "name": "Range",
            "in": "header",
            "required": False,
            "description": "One byte range, e.g. bytes=0-1023 or bytes=-1024 (else 416)",
            "schema": {"type": "string"},
        },
        {
            "name": "If-Range",
            "in": "header",
            "required": False,
            "description": "The ETag the range applies to; another ETag: the whole file",
            "schema": {"type": "string"},
        },
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "ETags already held: 304 when one matches",
            "schema": {"type": "string"},
        },
    ]
}


@files_router.get(
    "/files/{file_id}/download",
    response_class=Response,
    responses=DOWNLOAD_RESPONSES,
    openapi_extra=DOWNLOAD_PARAMETERS,
)
async def download_file(
    request: Request, access: VisibleFile, storage: StorageDep, config: FilesConfigDep
) -> Response:
    """Download a file or one byte range of it (Range, If-Range, ETag, checksum headers)."""
    return await downloads.download(request, file=access.file, storage=storage, config=config)


@files_router.head(
    "/files/{file_id}/download",
    response_class=Response,
    responses=DOWNLOAD_RESPONSES,
    openapi_extra=DOWNLOAD_PARAMETERS,
)
async def download_file_head(
    request: Request, access: VisibleFile, storage: StorageDep, config: FilesConfigDep
) -> Response:
    """The headers of a download (size, ETag, checksums) without the body."""
    return await downloads.download(request, file=access.file, storage=storage, config=config)


@files_router.delete(
    "/files/{file_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        InvalidTokenError, FileNotFoundInStudyError, ForbiddenError, StudyLockedError
    ),
)
async def delete_file(
    access: EditableFile, user: CurrentUser, session: SessionDep, storage: StorageDep
) -> None:
    """Delete a file of a draft study and its stored bytes."""
    await service.delete_file(
        session, view=access.view, file=access.file, storage=storage, actor=user
    )
