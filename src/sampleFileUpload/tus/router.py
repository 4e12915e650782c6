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

from fastapi import APIRouter, Request, Response

from src.auth.dependencies import CurrentUser
from src.dependencies import SessionDep, StorageDep
from src.exceptions import error_responses
from src.sampleFileUpload.files.dependencies import FilesConfigDep
from src.sampleFileUpload.files.ingest import HASH_ALGORITHMS, BodyInterrupted
from src.sampleFileUpload.tus import writer
from src.sampleFileUpload.tus.constants import TUS_EXTENSIONS, TUS_VERSION
from src.sampleFileUpload.tus.dependencies import (
    ChunkRequestDep,
    OwnedUpload,
    TerminableUpload,
    UploadTargetDep,
)
from src.sampleFileUpload.tus.exceptions import InvalidUploadRequestError
from src.sampleFileUpload.tus.protocol import TusRoute, http_date, offset_headers

tus_router = APIRouter(prefix="/uploads", tags=["uploads"], route_class=TusRoute)

TUS_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 412, 413, 415, 423, 460, 503)


@tus_router.options("", status_code=204)
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


@tus_router.post("", status_code=201, responses=TUS_ERRORS)
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


@tus_router.head("/{upload_id}", status_code=200, responses=TUS_ERRORS)
async def upload_offset(upload: OwnedUpload) -> Response:
    """How much of the upload the server has (Upload-Offset) out of Upload-Length."""
    return Response(
        status_code=200,
        headers={
            "Upload-Offset": str(upload.offset),
            "Upload-Length": str(upload.length),
            "Upload-Expires": http_date(upload.expires_at),
            "Cache-Control": "no-store",
        },
    )


@tus_router.patch("/{upload_id}", status_code=204, responses=TUS_ERRORS)
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


@tus_router.delete("/{upload_id}", status_code=204, responses=TUS_ERRORS)
async def terminate_upload(
    upload: TerminableUpload, session: SessionDep, storage: StorageDep
) -> Response:
    """Abandon the upload: its bytes and its unfinished file go."""
    await writer.discard_upload(session, storage, upload)
    return Response(status_code=204)
