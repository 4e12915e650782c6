"""The streaming pipeline every upload path shares: bytes in, stored object + MD5 + SHA-256 +
FASTQ report out, with memory bounded by a few blocks whatever the file size.

The body is re-cut into blocks of about ``block_size`` bytes. While the next block is being
received, the current one is written to storage and, in two worker threads at once, hashed
(MD5 and SHA-256, plus any per-chunk digest tus asks for) and fed to the ``FastqValidator``:
hashlib and ISA-L release the GIL, so the event loop stays free and both cores are used. A block
is handed over only when the previous one is done, so at most three blocks are in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from src.exceptions import AppError
from src.sampleFileUpload.fastq import FastqReport, FastqValidator
from src.storage import ObjectWriter

if TYPE_CHECKING:
    from anyio.abc import ObjectReceiveStream
    from anyio.abc import TaskGroup as TaskGroupLike

Block = bytes | bytearray
HASH_ALGORITHMS = ("md5", "sha1", "sha256")


def new_hash(algorithm: str) -> Any:
    """A hashlib object; MD5 and SHA-1 are integrity checks here, not security."""
    return hashlib.new(algorithm, usedforsecurity=algorithm == "sha256")


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one complete pass over a file produced."""

    size: int
    md5: str
    sha256: str
    report: FastqReport


class FileDigest:
    """Running MD5, SHA-256 and FASTQ validation of one file, fed block by block."""

    def __init__(self) -> None:
        self.md5 = new_hash("md5")
        self.sha256 = new_hash("sha256")
        self.validator = FastqValidator()
        self.size = 0

    def _hash(self, block: Block, extra: tuple[Any, ...]) -> None:
        self.md5.update(block)
        self.sha256.update(block)
        for digest in extra:
            digest.update(block)

    async def update(self, block: Block, extra: tuple[Any, ...] = ()) -> None:
        """Hash and validate ``block`` in two worker threads at once."""
        if not block:
            return
        async with TaskGroup() as group:
            group.start_soon(anyio.to_thread.run_sync, self._hash, block, extra)
            group.start_soon(anyio.to_thread.run_sync, self.validator.feed, block)
        self.size += len(block)

    async def finish(self) -> Ingested:
        """End the validation (the digests stay usable) and return the outcome."""
        report = await anyio.to_thread.run_sync(self.validator.finish)
        return Ingested(
            size=self.size,
            md5=self.md5.hexdigest(),
            sha256=self.sha256.hexdigest(),
            report=report,
        )


class BodyInterrupted(Exception):  # noqa: N818 - an event, not a bug
    """The body stopped before its end (the client went away); ``consumed`` bytes of it were
    fully processed (stored, hashed and validated) before that."""

    def __init__(self) -> None:
        super().__init__("the request body was interrupted")
        self.consumed = 0


async def blocks(source: AsyncIterable[bytes], block_size: int) -> AsyncIterator[Block]:
    """Re-cut a body into blocks of at least ``block_size`` bytes (the last may be shorter).

    If the source fails (other than with an AppError), what was received is yielded first and
    then :class:`BodyInterrupted` is raised."""
    buffer = bytearray()
    try:
        async for chunk in source:
            if not chunk:
                continue
            if not buffer and len(chunk) >= block_size:
                yield chunk
                continue
            buffer += chunk
            if len(buffer) >= block_size:
                yield buffer
                buffer = bytearray()
    except AppError:
        raise
    except Exception as exc:
        if buffer:
            yield buffer
        raise BodyInterrupted from exc
    if buffer:
        yield buffer


async def pump(
    source: AsyncIterable[bytes],
    *,
    digest: FileDigest,
    writer: ObjectWriter | None,
    block_size: int,
    limit: int,
    too_large: Callable[[], AppError],
    extra: tuple[Any, ...] = (),
) -> int:
    """Stream ``source`` into ``writer`` and ``digest``; return the number of bytes consumed.

    Raises ``too_large()`` as soon as more than ``limit`` bytes arrive. When the source fails,
    every block received before is still processed, then :class:`BodyInterrupted` is raised
    with ``consumed`` set: the caller decides what those bytes are worth.
    """
    send, receive = anyio.create_memory_object_stream[Block](max_buffer_size=1)
    total = 0

    async def consume(stream: ObjectReceiveStream[Block]) -> None:
        async with stream:
            async for block in stream:
                async with TaskGroup() as group:
                    group.start_soon(digest.update, block, extra)
                    if writer is not None:
                        group.start_soon(writer.write, block)

    interrupted: BodyInterrupted | None = None
    async with TaskGroup() as group:
        group.start_soon(consume, receive)
        async with send:
            try:
                async for block in blocks(source, block_size):
                    total += len(block)
                    if total > limit:
                        raise too_large()
                    await send.send(block)
            except BodyInterrupted as exc:
                interrupted = exc
    if interrupted is not None:
        interrupted.consumed = total
        raise interrupted
    return total


class TaskGroup:
    """A task group that raises the first real failure itself rather than an ExceptionGroup,
    so AppErrors reach the error handler and callers can catch specific exceptions."""

    def __init__(self) -> None:
        self._group = anyio.create_task_group()

    async def __aenter__(self) -> TaskGroupLike:
        return await self._group.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        try:
            return bool(await self._group.__aexit__(*exc_info))
        except BaseExceptionGroup as group:
            raise _first_failure(group) from None


def _first_failure(group: BaseExceptionGroup[Any]) -> BaseException:
    cancelled = anyio.get_cancelled_exc_class()
    fallback: BaseException = group
    for member in group.exceptions:
        exc = _first_failure(member) if isinstance(member, BaseExceptionGroup) else member
        if not isinstance(exc, cancelled):
            return exc
        fallback = exc
    return fallback
