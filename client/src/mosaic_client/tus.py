"""A small tus 1.0 client over httpx: create, ask the offset, append.

Why not tuspy: it reads each chunk whole into memory (its default chunk is the whole file, so a
50 GB FASTQ would be read into RAM), sends through ``requests`` (or aiohttp), not httpx, with
headers fixed when the uploader is made, so an access token that expires in the middle of a
50 GB upload cannot be refreshed; it has no progress callback within a chunk, and it treats
the server's 423 (an earlier request still holds the upload) and a lost connection as failures
rather than "ask the offset and go on". The protocol part a client needs is about a hundred
lines, written here on the same httpx client (and connection pool) as the rest of the CLI.

Chunks are streamed from the file in 1 MiB blocks with an explicit ``Content-Length``, without a
per-chunk ``Upload-Checksum``: the server then keeps every byte that fully arrived when a
connection breaks, so a re-run re-sends only what the server never acknowledged. The whole-file
SHA-256 is declared in ``Upload-Metadata`` and checked by the server after the last byte.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mosaic_client.api import API, Api, ApiError

TUS_VERSION = "1.0.0"
BLOCK = 1024 * 1024
UPLOADS = f"{API}/uploads"


class Cancelled(Exception):  # noqa: N818 - an event, not a bug
    """The user asked the run to stop (Ctrl+C, SIGTERM)."""


@dataclass
class Appended:
    offset: int
    file_id: str | None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def create(api: Api, *, length: int, metadata: dict[str, str]) -> tuple[str, str | None]:
    """A new upload: its URL (path) on the server, and the file's id if it is already finished
    (an empty file)."""
    response = api.send(
        "POST",
        UPLOADS,
        retry=False,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Upload-Length": str(length),
            "Upload-Metadata": ",".join(f"{key} {_b64(value)}" for key, value in metadata.items()),
        },
    )
    location = response.headers["location"]
    if location.startswith(("http://", "https://")):
        location = "/" + location.split("/", 3)[3]
    return location, response.headers.get("upload-file-id")


def offset(api: Api, url: str) -> int | None:
    """The server's offset of the upload, or None when it is gone (finished, expired, removed)."""
    response = api.send("HEAD", url, ok=(404, 410), headers={"Tus-Resumable": TUS_VERSION})
    if response.status_code in (404, 410):
        return None
    return int(response.headers["upload-offset"])


def _body(
    path: Path,
    start: int,
    count: int,
    sent: Callable[[int], None],
    cancel: threading.Event,
) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        handle.seek(start)
        left = count
        while left > 0:
            if cancel.is_set():
                raise Cancelled
            block = handle.read(min(BLOCK, left))
            if not block:
                raise OSError(f"{path} is shorter than expected (changed while uploading?)")
            left -= len(block)
            yield block
            sent(len(block))


def append(
    api: Api,
    url: str,
    *,
    path: Path,
    start: int,
    count: int,
    sent: Callable[[int], None],
    cancel: threading.Event,
) -> Appended:
    """PATCH ``count`` bytes of ``path`` from ``start``; the new offset, and the file's id once
    the last byte is in. A 409 answers with the server's offset (nothing was written)."""
    response = api.send(
        "PATCH",
        url,
        retry=False,
        ok=(409,),
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Upload-Offset": str(start),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(count),
        },
        body=lambda: _body(path, start, count, sent, cancel),
    )
    if response.status_code == 409:
        if "upload-offset" not in response.headers:
            raise ApiError(response)
        return Appended(int(response.headers["upload-offset"]), None)
    return Appended(int(response.headers["upload-offset"]), response.headers.get("upload-file-id"))


def terminate(api: Api, url: str) -> None:
    api.send("DELETE", url, ok=(404, 410, 423), headers={"Tus-Resumable": TUS_VERSION})
