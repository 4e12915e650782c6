"""Download responses: whole files or one byte range (206/416), HEAD, a strong ETag (the
SHA-256), ``Content-Disposition: attachment`` and checksum headers. With DOWNLOAD_ACCEL=nginx and
local storage the body is left to nginx (``X-Accel-Redirect``); with S3 and DOWNLOAD_REDIRECT a
GET is redirected to a presigned URL. Otherwise the API streams the object in bounded chunks,
after the request's transaction has been committed.
"""

from __future__ import annotations

import base64

from fastapi import Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.files.exceptions import FileNotFoundInStudyError, RangeNotSatisfiableError
from src.sampleFileUpload.files.utils import parse_range
from src.storage import Storage, content_disposition
from src.study.constants import FileStatus
from src.study.models import SampleFile

STREAM_CHUNK = 1024 * 1024


def _media_type(filename: str) -> str:
    return "application/gzip" if filename.lower().endswith(".gz") else "application/octet-stream"


def _etag(file: SampleFile) -> str:
    return f'"{file.sha256 or file.md5 or file.id}"'


def _matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in candidates or etag in candidates


def file_headers(file: SampleFile) -> dict[str, str]:
    """What every download response says about the file."""
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": _etag(file),
        "Content-Disposition": content_disposition(file.filename),
        "Cache-Control": "private, no-cache",
    }
    if file.md5:
        headers["X-Checksum-MD5"] = file.md5
    if file.sha256:
        headers["X-Checksum-SHA256"] = file.sha256
        headers["Repr-Digest"] = (
            f"sha-256=:{base64.b64encode(bytes.fromhex(file.sha256)).decode()}:"
        )
    return headers


async def download(
    request: Request, *, file: SampleFile, storage: Storage, config: FilesConfig
) -> Response:
    """The response for GET or HEAD of a file's bytes."""
    if file.status == FileStatus.UPLOADING:
        raise FileNotFoundInStudyError("The file is still uploading.")
    headers = file_headers(file)
    head = request.method == "HEAD"
    if _matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    if config.download_accel == "nginx" and storage.local_path(file.storage_key) is not None:
        headers["X-Accel-Redirect"] = config.download_accel_prefix + file.storage_key
        headers["Content-Type"] = _media_type(file.filename)
        # nginx adds its own when it serves the file; ours would make it appear twice.
        del headers["Accept-Ranges"]
        return Response(status_code=200, headers=headers)
    if config.download_redirect and not head:
        url = await storage.presign_get(file.storage_key, filename=file.filename)
        if url is not None:
            return RedirectResponse(url, status_code=302, headers=headers)
    size = file.size
    byte_range = None
    if_range = request.headers.get("if-range")
    if if_range is None or if_range.strip() == headers["ETag"]:
        try:
            byte_range = parse_range(request.headers.get("range"), size)
        except ValueError:
            raise RangeNotSatisfiableError(
                f"The file has {size} bytes.", headers={"Content-Range": f"bytes */{size}"}
            ) from None
    status = 200
    start, end = 0, size - 1
    if byte_range is not None:
        start, end = byte_range
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end - start + 1))
    media_type = _media_type(file.filename)
    if head:
        return Response(status_code=status, headers=headers, media_type=media_type)
    if size == 0:
        return Response(status_code=200, headers=headers, media_type=media_type)
    body = storage.open_range(file.storage_key, start, end, chunk_size=STREAM_CHUNK)
    return StreamingResponse(body, status_code=status, headers=headers, media_type=media_type)
