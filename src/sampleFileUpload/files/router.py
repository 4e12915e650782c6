"""Routes of sequence files: the multipart form (POST) and raw body (PUT) uploads, listing,
reading, downloading and deleting files. Upload routes take no body parameters, so FastAPI never
spools the file: the body is read as a stream by ``uploads.py``, after the dependencies have
authorised the caller.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response, status

from src.auth.dependencies import CurrentUser
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
from src.sampleFileUpload.files.utils import declared_length
from src.sampleFileUpload.utils import multipart_body
from src.study.constants import AccessRole
from src.study.dependencies import SampleDep, StudyDep
from src.study.models import SampleFile
from src.study.schemas import FileRead

files_router = APIRouter(tags=["files"])

SAMPLE_FILES = "/studies/{study}/samples/{sample_id}/files"


UPLOAD_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503)


@files_router.post(
    SAMPLE_FILES,
    response_model=FileRead,
    status_code=status.HTTP_201_CREATED,
    responses=UPLOAD_ERRORS,
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
    SAMPLE_FILES + "/{filename:path}",
    response_model=FileRead,
    status_code=status.HTTP_201_CREATED,
    responses=UPLOAD_ERRORS,
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
    filename: Annotated[str, Path(description="The file's name, e.g. S1_R1.fastq.gz.")],
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


@files_router.get(SAMPLE_FILES, response_model=list[FileRead], responses=error_responses(404))
async def list_files(view: StudyDep, sample: SampleDep, session: SessionDep) -> list[SampleFile]:
    """The files of a sample (the public sees valid files only)."""
    return await service.list_files(
        session, sample=sample, valid_only=view.my_role == AccessRole.PUBLIC
    )


@files_router.get("/files/{file_id}", response_model=FileRead, responses=error_responses(404))
async def get_file(access: VisibleFile) -> SampleFile:
    """One file: state, checksums, read statistics and validation errors."""
    return access.file


DOWNLOAD_RESPONSES: Responses = {
    200: {"content": {"application/octet-stream": {}}, "description": "The file"},
    206: {"description": "One byte range of the file"},
    **error_responses(404, 416),
}


@files_router.get(
    "/files/{file_id}/download", response_class=Response, responses=DOWNLOAD_RESPONSES
)
@files_router.head(
    "/files/{file_id}/download", response_class=Response, responses=DOWNLOAD_RESPONSES
)
async def download_file(
    request: Request, access: VisibleFile, storage: StorageDep, config: FilesConfigDep
) -> Response:
    """Download a file or one byte range of it (Range, If-Range, ETag, checksum headers);
    HEAD gives the same headers without the body."""
    return await downloads.download(request, file=access.file, storage=storage, config=config)


@files_router.delete(
    "/files/{file_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 409),
)
async def delete_file(
    access: EditableFile, user: CurrentUser, session: SessionDep, storage: StorageDep
) -> None:
    """Delete a file of a draft study and its stored bytes."""
    await service.delete_file(
        session, view=access.view, file=access.file, storage=storage, actor=user
    )
