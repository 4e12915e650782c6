"""Dependencies of the tus routes: an upload of the caller's (404 for unknown or someone
else's, 410 and clean-up once expired; for HEAD and PATCH of an unfinished upload the caller
must still edit the study and the study still be a draft), and the checked target of a new
upload (its Upload-Length and Upload-Metadata: a draft study the caller edits, an existing
sample, an allowed file name, read and checksums, room in the caller's quota, a free name)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from src.auth.dependencies import CurrentUser
from src.database import run_after_commit, utcnow
from src.dependencies import SessionDep, StorageDep
from src.sampleFileUpload.files import service as files_service
from src.sampleFileUpload.files.dependencies import FilesConfigDep
from src.sampleFileUpload.files.exceptions import FileTooLargeError
from src.sampleFileUpload.files.utils import check_filename, declared_hex, parse_read
from src.sampleFileUpload.tus import service
from src.sampleFileUpload.tus.exceptions import (
    InvalidContentTypeError,
    InvalidUploadRequestError,
    OffsetMismatchError,
    UploadExpiredError,
    UploadLockedError,
    UploadNotFoundError,
)
from src.sampleFileUpload.tus.lease import leased
from src.sampleFileUpload.tus.protocol import (
    non_negative,
    parse_checksum,
    parse_metadata,
    wants_body,
)
from src.sampleFileUpload.tus.schemas import ChunkRequest, UploadTarget
from src.sampleFileUpload.tus.writer import discard_upload
from src.study import service as study_service
from src.study import visibility
from src.study.exceptions import SampleNotFoundError
from src.study.models import Upload
from src.study.permissions import ensure_editable_draft

REQUIRED_METADATA = ("study", "sample_id", "filename")


async def callers_upload(
    upload_id: str, user: CurrentUser, session: SessionDep, storage: StorageDep
) -> Upload:
    """The caller's upload; an expired one nobody is writing to is removed (410)."""
    try:
        parsed = uuid.UUID(upload_id)
    except ValueError:
        raise UploadNotFoundError from None
    upload = await service.get_upload(session, upload_id=parsed)
    if upload is None or upload.owner_id != user.id:
        raise UploadNotFoundError
    now = utcnow()
    if upload.expires_at <= now and not leased(upload, now):
        await discard_upload(session, storage, upload)
        await session.commit()
        await run_after_commit(session)
        raise UploadExpiredError
    return upload


CallersUpload = Annotated[Upload, Depends(callers_upload)]


async def owned_upload(upload: CallersUpload, user: CurrentUser, session: SessionDep) -> Upload:
    """The caller's upload, if they may still add files to its study: 404 when they no longer
    see the study, 403 when they no longer edit it, 409 when it is no longer a draft. Checked
    on every HEAD and PATCH, before any byte is read. A finished upload takes no more bytes:
    until it expires it answers where it stands (its file) to a caller who still sees the
    study, whatever became of the study since."""
    view = await visibility.get_view(session, reference=str(upload.study_id), user=user)
    if upload.finished_at is None:
        ensure_editable_draft(view)
    return upload


OwnedUpload = Annotated[Upload, Depends(owned_upload)]


async def terminable_upload(upload: CallersUpload) -> Upload:
    """The caller's upload, if no request is writing to it (423 otherwise). Its creator may
    abandon it even after losing access to the study."""
    if leased(upload, utcnow()):
        raise UploadLockedError
    return upload


TerminableUpload = Annotated[Upload, Depends(terminable_upload)]


def _declared_length(request: Request) -> int:
    if request.headers.get("upload-defer-length") is not None:
        raise InvalidUploadRequestError("Upload-Defer-Length is not supported; send Upload-Length.")
    length = non_negative(request.headers.get("upload-length"), "Upload-Length")
    if length is None:
        raise InvalidUploadRequestError("Upload-Length is required.")
    return length


def _metadata(request: Request) -> dict[str, str]:
    metadata = parse_metadata(request.headers.get("upload-metadata"))
    missing = [name for name in REQUIRED_METADATA if not metadata.get(name)]
    if missing:
        raise InvalidUploadRequestError(
            f"Upload-Metadata must include {', '.join(missing)}.",
            errors=[{"field": name, "message": "required"} for name in missing],
        )
    return metadata


async def upload_target(
    request: Request, user: CurrentUser, session: SessionDep, config: FilesConfigDep
) -> UploadTarget:
    """The target of a POST, checked in the order of the whole-file uploads: 400 for malformed
    headers, then 404/403/409 for the study and sample, then the file's name, read, checksums,
    size and name."""
    length = _declared_length(request)
    metadata = _metadata(request)
    view = await visibility.get_view(session, reference=metadata["study"], user=user)
    ensure_editable_draft(view)
    sample = await study_service.get_sample(
        session, study=view.study, sample_id=metadata["sample_id"]
    )
    if sample is None:
        raise SampleNotFoundError
    filename = check_filename(metadata["filename"])
    read = parse_read(metadata.get("read"), filename)
    md5 = declared_hex(metadata.get("md5"), "md5", source="md5")
    sha256 = declared_hex(metadata.get("sha256"), "sha256", source="sha256")
    # A first look, so a clearly refused upload costs no stored object; the decision that
    # holds is taken again under the user's quota lock when the upload row is written.
    await files_service.check_room(session, config=config, user=user, length=length, lock=False)
    await files_service.ensure_name_free(session, sample_pk=sample.id, filename=filename)
    return UploadTarget(
        view=view,
        sample=sample,
        filename=filename,
        read=read,
        length=length,
        declared_md5=md5,
        declared_sha256=sha256,
        upload_metadata=request.headers.get("upload-metadata"),
    )


UploadTargetDep = Annotated[UploadTarget, Depends(upload_target)]


async def chunk_request(request: Request, upload: OwnedUpload) -> ChunkRequest:
    """A PATCH checked before any byte is read: its content type (415), Upload-Offset (400, and
    409 when it is not the upload's), Upload-Checksum (400) and Content-Length (413 past
    Upload-Length). A finished upload accepts only its own length as the offset (the client
    re-sends its last chunk's request and is told it is done)."""
    if not wants_body(request):
        raise InvalidContentTypeError
    offset = non_negative(request.headers.get("upload-offset"), "Upload-Offset")
    if offset is None:
        raise InvalidUploadRequestError("Upload-Offset is required.")
    if upload.finished_at is not None and offset != upload.length:
        raise OffsetMismatchError(
            f"The upload is finished; Upload-Offset is {offset}, not {upload.length}.",
            headers={"Upload-Offset": str(upload.length)},
        )
    if offset != upload.offset:
        raise OffsetMismatchError(
            f"Upload-Offset is {offset} but the upload is at {upload.offset}.",
            headers={"Upload-Offset": str(upload.offset)},
        )
    checksum = parse_checksum(request.headers.get("upload-checksum"))
    length = non_negative(request.headers.get("content-length"), "Content-Length")
    if length is not None and offset + length > upload.length:
        raise FileTooLargeError(
            f"The chunk goes past Upload-Length: {offset} + {length} > {upload.length}."
        )
    return ChunkRequest(upload=upload, checksum=checksum)


ChunkRequestDep = Annotated[ChunkRequest, Depends(chunk_request)]
