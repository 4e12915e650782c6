"""The S3-compatible backend of src/storage (AWS S3, MinIO, Ceph) through aiobotocore.

Imported only when configured, so processes on local storage never load the S3 client stack.

S3 backend: a plain writer is
a multipart upload holding at most one part in memory
(a single ``PutObject`` when the object fits in one part). Multipart parts cannot be read back
before the upload completes, so a resumable writer stages its bytes as ordinary, readable objects
under ``<dir>/.<name>.<token>.upload/``: each full part as ``part-NNNNNN``, and the incomplete tail
of the current part, at each ``flush``, as one more ``tail-NNNNNN-MMMMMM`` object holding the bytes
added since the previous flush (so a flush uploads only new bytes). ``commit`` assembles the final
object server-side with UploadPartCopy from the staged parts plus the tail from memory, then
deletes the staging objects. Part sizes start at ``part_size`` (default 8 MiB, at least 5 MiB) and
double every 1000 parts, so objects up to several TiB fit in the 10,000-part limit. Staging names
start with a dot, which no key may, and live beside the key, so ``delete_prefix`` of a study also
removes its unfinished uploads. S3 has no lock like the local backend's: a writer that stalls past
its tus lease and wakes up could still overwrite a staged object of the writer that took over.
Full parts cover fixed offsets and a client sends the same bytes for the same offsets, so that
rewrites identical bytes; tails are read back at resume with their recorded lengths, so a tail cut
elsewhere is refused (StorageError) rather than used.

``scan`` lists the bucket once (a staging prefix is one temporary entry: its objects' total size,
changed when the newest was written) and then the multipart uploads in progress (changed when
their newest part was uploaded).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp
import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError

from src.storage import (
    _COPY_CONCURRENCY,
    _DELETE_BATCH,
    DEFAULT_PART_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MAX_PRESIGN_EXPIRES,
    MIN_PART_SIZE,
    STATE_VERSION,
    ObjectNotFoundError,
    ObjectWriter,
    ResumableWriter,
    Storage,
    StorageError,
    StoredEntry,
    _check_state,
    _copy_state,
    _new_token,
    _split_key,
    content_disposition,
    part_size_for,
    validate_key,
    validate_prefix,
)

logger = logging.getLogger(__name__)

_sessions = threading.local()


def _session() -> AioSession:
    """This thread's botocore session. Creating a client loads the service's model (the S3 model
    and the endpoint rules, a few MB of JSON: 50-120 ms) into the session that creates it; one
    session per thread loads them once, and every later client (each storage's API and presign
    clients, a test's or a command's storage) takes 3-5 ms. Per thread: a botocore session is not
    meant to be shared across threads."""
    session: AioSession | None = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = get_session()
    return session


# ------------------------------------------------------------------------------ S3 backend


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


# A resumable writer's staging prefix: ``<dir>/.<name>.<token>.upload/``.
_STAGING_SEGMENT = re.compile(
    r"\.(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\.(?P<token>[0-9a-f]{32})\.upload"
)


def _staging_entry(key: str, size: int, modified: datetime) -> StoredEntry | None:
    """The staging prefix a listed key lies under, as a temporary entry, or None."""
    segments = key.split("/")
    for index, segment in enumerate(segments[:-1]):
        found = _STAGING_SEGMENT.fullmatch(segment)
        if found is None:
            continue
        final = "/".join([*segments[:index], found["name"]])
        prefix = "/".join(segments[: index + 1]) + "/"
        try:
            validate_key(final)
        except ValueError:
            return None
        return StoredEntry(final, prefix, size, modified, temporary=True, token=found["token"])
    return None


def _listed_entry(item: dict[str, Any]) -> StoredEntry | None:
    key, size, modified = str(item["Key"]), int(item["Size"]), item["LastModified"]
    staged = _staging_entry(key, size, modified)
    if staged is not None:
        return staged
    try:
        return StoredEntry(validate_key(key), key, size, modified)
    except ValueError:  # not ours
        return None


def _merge(group: StoredEntry, entry: StoredEntry) -> StoredEntry:
    return replace(
        group, size=group.size + entry.size, modified=max(group.modified, entry.modified)
    )


_BACKEND_ERRORS = (BotoCoreError, ClientError, aiohttp.ClientError, OSError, TimeoutError)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket", "NoSuchUpload"})


class _S3Errors:
    """Turns botocore/aiohttp failures into StorageError (ObjectNotFoundError for a 404)."""

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not isinstance(exc, _BACKEND_ERRORS):
            return
        code = _error_code(exc)
        if code in _NOT_FOUND_CODES:
            raise ObjectNotFoundError(f"S3 {self.operation}: not found ({code})") from exc
        raise StorageError(f"S3 {self.operation} failed: {code or type(exc).__name__}") from exc


async def _fill_parts(
    buffer: bytearray,
    data: memoryview,
    part_limit: Callable[[], int],
    part_full: Callable[[], Awaitable[None]],
) -> int:
    """Append ``data`` to the current part's ``buffer``, handing each full part to
    ``part_full`` (which empties the buffer); the number of bytes taken."""
    taken = len(data)
    while data:
        room = part_limit() - len(buffer)
        buffer += data[:room]
        data = data[room:]
        if len(buffer) >= part_limit():
            await part_full()
    return taken


class _S3Writer(ObjectWriter):
    """A plain multipart upload; the object is created on commit."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        super().__init__(key)
        self._storage = storage
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _part_limit(self) -> int:
        return part_size_for(len(self._parts) + 1, self._storage.part_size)

    async def _write(self, data: memoryview) -> None:
        self._size += await _fill_parts(self._buffer, data, self._part_limit, self._upload_part)

    async def _upload_part(self) -> None:
        s3 = self._storage
        client = await s3._client()
        if self._upload_id is None:
            with _S3Errors("create_multipart_upload"):
                created = await client.create_multipart_upload(Bucket=s3.bucket, Key=self.key)
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(f"object {self.key} exceeds the multipart part limit")
        with _S3Errors("upload_part"):
            result = await client.upload_part(
                Bucket=s3.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=bytes(self._buffer),
            )
        self._parts.append({"PartNumber": number, "ETag": result["ETag"]})
        self._buffer.clear()

    async def _commit(self) -> None:
        s3 = self._storage
        if self._upload_id is None:
            client = await s3._client()
            with _S3Errors("put_object"):
                await client.put_object(Bucket=s3.bucket, Key=self.key, Body=bytes(self._buffer))
            self._buffer.clear()
            return
        if self._buffer:
            await self._upload_part()
        await s3._complete(self.key, self._upload_id, self._parts)

    async def _abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            await self._storage._abort_multipart(self.key, self._upload_id)


class _S3ResumableWriter(ResumableWriter):
    """Stages parts and flushed tails as readable objects; assembles them on commit."""

    def __init__(
        self, storage: S3Storage, key: str, state: dict[str, Any], tail: bytearray
    ) -> None:
        super().__init__(key, state)
        self._storage = storage
        self._staging = storage._staging_prefix(key, state["token"])
        self._part_size = int(state["part_size"])
        self._parts = int(state["parts"])  # full parts staged (may be ahead of the state)
        self._segments: list[int] = list(state["segments"])  # tails of the current part
        self._buffer = tail  # the current part's bytes; its first sum(_segments) are staged

    def _part_limit(self) -> int:
        return part_size_for(self._parts + 1, self._part_size)

    async def _write(self, data: memoryview) -> None:
        self._size += await _fill_parts(self._buffer, data, self._part_limit, self._stage_part)

    async def _stage_part(self) -> None:
        number = self._parts + 1
        if number >= MAX_PARTS:  # the last part number is kept for the tail
            raise StorageError(f"object {self.key} exceeds the multipart part limit")
        await self._storage._put(self._staging + _part_name(number), bytes(self._buffer))
        self._parts = number
        self._segments = []
        self._buffer.clear()

    async def _flush(self) -> None:
        staged = sum(self._segments)
        if len(self._buffer) > staged:
            name = _tail_name(self._parts + 1, len(self._segments))
            await self._storage._put(self._staging + name, bytes(self._buffer[staged:]))
            self._segments.append(len(self._buffer) - staged)
        self._state = {
            **self._state,
            "size": self._size,
            "parts": self._parts,
            "segments": list(self._segments),
        }

    async def _commit(self) -> None:
        s3 = self._storage
        if self._parts == 0:
            await s3._put(self.key, bytes(self._buffer))
        else:
            await s3._assemble(self.key, self._staging, self._parts, self._buffer)
        self._buffer.clear()
        try:
            await s3._delete_under(self._staging)
        except StorageError:  # the object is complete; leftovers only cost space
            logger.warning(
                "could not delete staging objects under %s", self._staging, exc_info=True
            )

    async def _abort(self) -> None:
        self._buffer.clear()
        await self._storage._delete_under(self._staging)

    async def _release(self) -> None:
        self._buffer.clear()


def _part_name(number: int) -> str:
    return f"part-{number:06d}"


def _tail_name(part_number: int, index: int) -> str:
    return f"tail-{part_number:06d}-{index:06d}"


class S3Storage(Storage):
    """Objects in an S3-compatible bucket through aiobotocore."""

    backend = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        presign_expires: int = 3600,
        public_endpoint_url: str | None = None,
        create_bucket: bool = False,
        addressing_style: str | None = None,
        max_pool_connections: int = 32,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE}")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.part_size = part_size
        self.presign_expires = presign_expires
        self.public_endpoint_url = public_endpoint_url
        self.create_bucket = create_bucket
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._addressing_style = addressing_style or ("path" if endpoint_url else "auto")
        self._max_pool_connections = max_pool_connections
        self._stack: AsyncExitStack | None = None
        self._clients: dict[str, Any] = {}
        self._lock = anyio.Lock()

    # -- client lifecycle

    async def _make_client(self, endpoint_url: str | None) -> Any:
        if self._stack is None:
            self._stack = AsyncExitStack()
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": self._addressing_style},
            retries={"mode": "standard", "max_attempts": 4},
            max_pool_connections=self._max_pool_connections,
            # Third-party S3 stores do not all accept the newer default CRC checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        creator = _session().create_client(
            "s3",
            region_name=self.region,
            endpoint_url=endpoint_url,
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret_access_key,
            config=config,
        )
        return await self._stack.enter_async_context(creator)

    async def _client(self, purpose: str = "api") -> Any:
        client = self._clients.get(purpose)
        if client is None:
            async with self._lock:
                client = self._clients.get(purpose)
                if client is None:
                    endpoint = self.endpoint_url
                    if purpose == "presign" and self.public_endpoint_url:
                        endpoint = self.public_endpoint_url
                    with _S3Errors("connect"):
                        client = await self._make_client(endpoint)
                    self._clients[purpose] = client
        return client

    async def startup(self) -> None:
        client = await self._client()
        try:
            with _S3Errors("head_bucket"):
                await client.head_bucket(Bucket=self.bucket)
        except ObjectNotFoundError:
            if not self.create_bucket:
                raise StorageError(f"bucket {self.bucket!r} does not exist") from None
            params: dict[str, Any] = {"Bucket": self.bucket}
            if self.region != "us-east-1":
                params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                with _S3Errors("create_bucket"):
                    await client.create_bucket(**params)
            except StorageError as exc:  # another worker may have created it meanwhile
                if _error_code(exc.__cause__ or exc) != "BucketAlreadyOwnedByYou":
                    raise

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        self._clients.clear()
        if stack is not None:
            await stack.aclose()

    async def ping(self) -> None:
        client = await self._client()
        with _S3Errors("head_bucket"):
            await client.head_bucket(Bucket=self.bucket)

    # -- primitives

    async def _put(self, key: str, body: bytes) -> None:
        client = await self._client()
        with _S3Errors("put_object"):
            await client.put_object(Bucket=self.bucket, Key=key, Body=body)

    async def _get_all(self, key: str, expected: int) -> bytes:
        client = await self._client()
        with _S3Errors("get_object"):
            response = await client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
        if len(data) != expected:
            raise StorageError(f"staged object {key} has {len(data)} bytes, expected {expected}")
        return data

    async def _stream(
        self, key: str, chunk_size: int, byte_range: str | None = None
    ) -> AsyncIterator[tuple[int | None, bytes]]:
        """Yield (content length, chunk) pairs of one GET."""
        client = await self._client()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if byte_range:
            params["Range"] = byte_range
        with _S3Errors("get_object"):
            response = await client.get_object(**params)
        length = response.get("ContentLength")
        with _S3Errors("get_object"):
            async with response["Body"] as body:
                while True:
                    chunk = await body.read(chunk_size)
                    if not chunk:
                        break
                    yield length, chunk

    async def _complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        client = await self._client()
        try:
            with _S3Errors("complete_multipart_upload"):
                await client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(StorageError):
                await self._abort_multipart(key, upload_id)
            raise

    async def _abort_multipart(self, key: str, upload_id: str) -> None:
        client = await self._client()
        with contextlib.suppress(ObjectNotFoundError), _S3Errors("abort_multipart_upload"):
            await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    async def _assemble(self, key: str, staging: str, parts: int, tail: bytearray) -> None:
        """Create ``key`` from the staged parts (server-side copies) and the tail in memory."""
        client = await self._client()
        with _S3Errors("create_multipart_upload"):
            created = await client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = str(created["UploadId"])
        etags: dict[int, str] = {}
        try:
            limiter = anyio.CapacityLimiter(_COPY_CONCURRENCY)

            async def copy(number: int) -> None:
                async with limiter:
                    with _S3Errors("upload_part_copy"):
                        result = await client.upload_part_copy(
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            PartNumber=number,
                            CopySource={"Bucket": self.bucket, "Key": staging + _part_name(number)},
                        )
                    etags[number] = result["CopyPartResult"]["ETag"]

            try:
                async with anyio.create_task_group() as group:
                    for number in range(1, parts + 1):
                        group.start_soon(copy, number)
            except ExceptionGroup as failures:
                first = failures.exceptions[0]
                raise StorageError(f"assembling {key} failed: {first}") from first
            if tail:
                with _S3Errors("upload_part"):
                    result = await client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=parts + 1,
                        Body=bytes(tail),
                    )
                etags[parts + 1] = result["ETag"]
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(StorageError):
                await self._abort_multipart(key, upload_id)
            raise
        await self._complete(
            key, upload_id, [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
        )

    async def _list_keys(self, prefix: str) -> AsyncIterator[list[str]]:
        client = await self._client()
        paginator = client.get_paginator("list_objects_v2")
        with _S3Errors("list_objects_v2"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [item["Key"] for item in page.get("Contents", [])]
                if keys:
                    yield keys

    async def _delete_keys(self, keys: list[str]) -> None:
        client = await self._client()
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            with _S3Errors("delete_objects"):
                result = await client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            errors = result.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"S3 delete_objects failed for {len(errors)} keys: "
                    f"{first.get('Key')} ({first.get('Code')})"
                )

    async def _delete_under(self, prefix: str) -> None:
        async for keys in self._list_keys(prefix):
            await self._delete_keys(keys)

    def _staging_prefix(self, key: str, token: str) -> str:
        directory, name = _split_key(key)
        return f"{directory}.{name}.{token}.upload/"

    def _check_state(self, state: dict[str, Any]) -> dict[str, Any]:
        state = _check_state(state, self.backend)
        part_size, parts, segments = (
            state.get("part_size"),
            state.get("parts"),
            state.get("segments"),
        )
        if not isinstance(part_size, int) or not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError("malformed upload state: part_size")
        if not isinstance(parts, int) or not 0 <= parts < MAX_PARTS:
            raise ValueError("malformed upload state: parts")
        if not isinstance(segments, list) or not all(
            isinstance(s, int) and s > 0 for s in segments
        ):
            raise ValueError("malformed upload state: segments")
        full = sum(part_size_for(n, part_size) for n in range(1, parts + 1))
        tail = sum(segments)
        if full + tail != state["size"] or tail >= part_size_for(parts + 1, part_size):
            raise ValueError("malformed upload state: sizes do not add up")
        return state

    # -- public interface

    async def open_writer(self, key: str) -> ObjectWriter:
        return _S3Writer(self, validate_key(key))

    async def open_resumable(self, key: str) -> ResumableWriter:
        validate_key(key)
        state = {
            "backend": self.backend,
            "version": STATE_VERSION,
            "token": _new_token(),
            "size": 0,
            "part_size": self.part_size,
            "parts": 0,
            "segments": [],
        }
        return _S3ResumableWriter(self, key, state, bytearray())

    async def resume_writer(self, key: str, state: dict[str, Any]) -> ResumableWriter:
        validate_key(key)
        state = _copy_state(self._check_state(state))
        staging = self._staging_prefix(key, state["token"])
        tail = bytearray()
        for index, length in enumerate(state["segments"]):
            tail += await self._get_all(staging + _tail_name(state["parts"] + 1, index), length)
        return _S3ResumableWriter(self, key, state, tail)

    async def _read_pending(
        self, key: str, state: dict[str, Any], chunk_size: int
    ) -> AsyncIterator[bytes]:
        staging = self._staging_prefix(key, state["token"])
        parts = state["parts"]
        pieces = [
            (_part_name(n), part_size_for(n, state["part_size"])) for n in range(1, parts + 1)
        ]
        pieces += [(_tail_name(parts + 1, i), s) for i, s in enumerate(state["segments"])]
        for name, expected in pieces:
            received = 0
            async for length, chunk in self._stream(staging + name, chunk_size):
                if length != expected:
                    raise StorageError(f"staged object {name} has {length} bytes, not {expected}")
                received += len(chunk)
                yield chunk
            if received != expected:
                raise StorageError(f"staged object {name} was cut short")

    async def abort_state(self, key: str, state: dict[str, Any]) -> None:
        validate_key(key)
        state = self._check_state(state)
        await self._delete_under(self._staging_prefix(key, state["token"]))

    async def size(self, key: str) -> int | None:
        validate_key(key)
        client = await self._client()
        try:
            with _S3Errors("head_object"):
                response = await client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFoundError:
            return None
        return int(response["ContentLength"])

    async def _open_range(
        self, key: str, start: int, end: int | None, chunk_size: int
    ) -> AsyncIterator[bytes]:
        byte_range = None
        if start or end is not None:
            byte_range = f"bytes={start}-{'' if end is None else end}"
        try:
            async for _, chunk in self._stream(key, chunk_size, byte_range):
                yield chunk
        except StorageError as exc:
            if _error_code(exc.__cause__ or exc) != "InvalidRange":
                raise
            if await self.size(key) is None:  # a range past the end of an object: no bytes
                raise ObjectNotFoundError(f"no object at {key}") from None

    async def delete(self, key: str) -> None:
        validate_key(key)
        client = await self._client()
        with contextlib.suppress(ObjectNotFoundError), _S3Errors("delete_object"):
            await client.delete_object(Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> None:
        validate_prefix(prefix)
        client = await self._client()
        paginator = client.get_paginator("list_multipart_uploads")
        with _S3Errors("list_multipart_uploads"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    await self._abort_multipart(upload["Key"], upload["UploadId"])
        await self._delete_under(prefix)

    async def _scan(self, prefix: str) -> AsyncIterator[StoredEntry]:
        group: StoredEntry | None = None  # a staging prefix: its keys are listed together
        async for items in self._list_items(prefix):
            for item in items:
                entry = _listed_entry(item)
                if entry is None:
                    continue
                if group is not None and entry.temporary and entry.name == group.name:
                    group = _merge(group, entry)
                    continue
                if group is not None:
                    yield group
                    group = None
                if entry.temporary:
                    group = entry
                else:
                    yield entry
        if group is not None:
            yield group
        async for entry in self._multipart_entries(prefix):
            yield entry

    async def _list_items(self, prefix: str) -> AsyncIterator[list[dict[str, Any]]]:
        client = await self._client()
        paginator = client.get_paginator("list_objects_v2")
        with _S3Errors("list_objects_v2"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield list(page.get("Contents", []))

    async def _multipart_entries(self, prefix: str) -> AsyncIterator[StoredEntry]:
        client = await self._client()
        paginator = client.get_paginator("list_multipart_uploads")
        with _S3Errors("list_multipart_uploads"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    entry = await self._multipart_entry(
                        str(upload["Key"]), str(upload["UploadId"]), upload["Initiated"]
                    )
                    if entry is not None:
                        yield entry

    async def _multipart_entry(
        self, key: str, upload_id: str, initiated: datetime
    ) -> StoredEntry | None:
        """A multipart upload in progress: its parts' total size, changed at its newest part."""
        try:
            validate_key(key)
        except ValueError:
            return None
        client = await self._client()
        size, modified = 0, initiated
        paginator = client.get_paginator("list_parts")
        try:
            with _S3Errors("list_parts"):
                async for page in paginator.paginate(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                ):
                    for part in page.get("Parts", []):
                        size += int(part["Size"])
                        modified = max(modified, part["LastModified"])
        except ObjectNotFoundError:  # completed or aborted meanwhile
            return None
        return StoredEntry(key, key, size, modified, temporary=True, upload_id=upload_id)

    async def remove_entry(self, entry: StoredEntry) -> None:
        if entry.upload_id is not None:
            await self._abort_multipart(validate_key(entry.key), entry.upload_id)
        elif entry.temporary and entry.token is not None:
            await self._delete_under(self._staging_prefix(entry.key, entry.token))
        else:
            await self.delete(entry.key)

    async def presign_get(
        self, key: str, *, filename: str, expires: int | None = None
    ) -> str | None:
        validate_key(key)
        expires = self.presign_expires if expires is None else expires
        if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
            raise ValueError(f"presign expiry must be 1..{MAX_PRESIGN_EXPIRES} seconds")
        client = await self._client("presign")
        with _S3Errors("generate_presigned_url"):
            url: str = await client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": content_disposition(filename),
                },
                ExpiresIn=expires,
            )
        return url
