"""The streaming pipeline every upload path shares: bytes in, stored object + MD5 + SHA-256 +
FASTQ report out, with memory bounded by a few blocks whatever the file size.

The body is re-cut into blocks of about ``block_size`` bytes. While the next block is being
received, the current one is written to storage (and hashed for any per-chunk digest tus asks
for, in a worker thread) and queued on the file's lane: a thread that hands blocks in order to
the ``FastqValidator``, which runs in a worker process (``fastq_workers.py``), and hashes each
one (MD5 and SHA-256) while the worker validates it. The lane may fall up to ``VALIDATION_LAG``
blocks behind: receiving and writing run ahead of it, and a pause in the body (between two tus
PATCHes, say) is spent hashing and validating the backlog, on both cores, instead of idling.
hashlib releases the GIL and the validator is in another process, so the event loop stays free.
Memory stays bounded: a block being received, one being written, and at most
``VALIDATION_LAG`` waiting for the lane.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.to_thread

from src.exceptions import AppError
from src.sampleFileUpload.files.exceptions import ValidatorUnavailableError
from src.sampleFileUpload.files.fastq import FastqReport
from src.sampleFileUpload.files.fastq_workers import FastqWorkers, Validation, WorkerStoppedError
from src.storage import ObjectWriter

if TYPE_CHECKING:
    from anyio.abc import ObjectReceiveStream
    from anyio.abc import TaskGroup as TaskGroupLike

Block = bytes | bytearray
HASH_ALGORITHMS = ("md5", "sha1", "sha256")
# Blocks the lane (validator, then hashes) may have queued behind the writes: at 10-25 ms of
# validation per MiB block, enough to cover much of the pause between two tus PATCHes (20-40 ms),
# and only 4 MiB of memory.
VALIDATION_LAG = 4


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


class ValidationLane:
    """Feeds blocks to one :class:`Validation` in order, on a thread of its own, letting it fall
    up to ``lag`` blocks behind the caller (``submit`` waits only when it is further behind).
    The same thread updates ``hashes`` with each block once the worker has taken it, so the
    hashing overlaps the validation of the same block.

    The lane outlives a request: a tus upload's digest keeps it between PATCHes, so validation
    of one chunk's tail overlaps the next chunk's arrival. If a wait is cancelled, blocks may
    have been skipped, so the lane refuses further use (``ValidationLaneBrokenError``).
    ``close`` drops what is queued, discards the validation and stops the thread.
    """

    def __init__(
        self, validation: Validation, lag: int = VALIDATION_LAG, hashes: tuple[Any, ...] = ()
    ) -> None:
        self.validation = validation
        self.lag = lag
        self.hashes = hashes
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastq-lane")
        self._pending: deque[Future[None]] = deque()
        self._broken = False
        self._closed = False

    async def _wait_oldest(self) -> None:
        future = self._pending.popleft()
        try:
            await asyncio.wrap_future(future)
        except WorkerStoppedError as exc:
            self._broken = True
            raise ValidatorUnavailableError from exc
        except BaseException:
            self._broken = True
            raise

    async def submit(self, block: Block) -> None:
        if self._broken:
            raise ValidationLaneBrokenError
        self._pending.append(self._executor.submit(self._take, block))
        while len(self._pending) > self.lag or (self._pending and self._pending[0].done()):
            await self._wait_oldest()

    def _take(self, block: Block) -> None:
        self.validation.feed(block)
        for running in self.hashes:
            running.update(block)

    async def drain(self) -> None:
        """Wait until the validator has taken, and the hashes have had, every block submitted
        so far."""
        if self._broken:
            raise ValidationLaneBrokenError
        while self._pending:
            await self._wait_oldest()

    async def finish(self) -> FastqReport:
        """Wait for every block, then end the validation and return its report."""
        await self.drain()
        finishing = self._executor.submit(self.validation.finish)
        try:
            return await asyncio.wrap_future(finishing)
        except WorkerStoppedError as exc:
            raise ValidatorUnavailableError from exc
        finally:
            if finishing.cancelled():  # cancelled before it ran: let the worker forget the lane
                self._executor.submit(self.validation.discard)
            self._closed = True
            self._executor.shutdown(wait=False)

    def close(self) -> None:
        """Abandon the validation (idempotent; a no-op after ``finish``)."""
        self._broken = True
        if self._closed:
            return
        self._closed = True
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._executor.submit(self.validation.discard)
        self._executor.shutdown(wait=False)


class ValidationLaneBrokenError(RuntimeError):
    """A validation lane was used after a cancelled wait or after ``close``."""

    def __init__(self) -> None:
        super().__init__("the validation lane was interrupted; rebuild the digest")


class FileDigest:
    """Running MD5, SHA-256 and FASTQ validation of one file, fed block by block.

    Call ``finish`` for the outcome; ``close`` it (or use it as a context manager) when done
    with it, so the validator's thread stops at once rather than when it is collected."""

    def __init__(self, workers: FastqWorkers) -> None:
        try:
            validation = workers.open()
        except WorkerStoppedError as exc:
            raise ValidatorUnavailableError from exc
        self.md5 = new_hash("md5")
        self.sha256 = new_hash("sha256")
        self.lane = ValidationLane(validation, hashes=(self.md5, self.sha256))
        self.size = 0

    async def update(self, block: Block, extra: tuple[Any, ...] = ()) -> None:
        """Queue ``block`` for the lane (validator and whole-file hashes); the ``extra`` digests
        (a tus chunk's checksum, needed before the chunk is answered) are updated at once, in a
        worker thread."""
        if not block:
            return
        await self.lane.submit(block)
        if extra:
            await anyio.to_thread.run_sync(_update_all, extra, block)
        self.size += len(block)

    async def drain(self) -> None:
        """Wait until the validator and the hashes have caught up with every block fed so far."""
        await self.lane.drain()

    async def finish(self) -> Ingested:
        """End the validation (the digests stay usable) and return the outcome."""
        report = await self.lane.finish()
        return Ingested(
            size=self.size,
            md5=self.md5.hexdigest(),
            sha256=self.sha256.hexdigest(),
            report=report,
        )

    def close(self) -> None:
        self.lane.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _update_all(hashes: tuple[Any, ...], block: Block) -> None:
    for running in hashes:
        running.update(block)


class BodyInterrupted(Exception):  # noqa: N818 - an event, not a bug
    """The body stopped before its end (the client went away); ``consumed`` bytes of it were
    fully processed (stored, and queued in order for the hashes and the validator) before
    that."""

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
    """The cause among a group's exceptions: not a cancellation, nor a send into a stream whose
    reader has failed (both are consequences of the real failure)."""
    consequences = (anyio.get_cancelled_exc_class(), anyio.BrokenResourceError)
    fallback: BaseException = group
    for member in group.exceptions:
        exc = _first_failure(member) if isinstance(member, BaseExceptionGroup) else member
        if not isinstance(exc, consequences):
            return exc
        fallback = exc
    return fallback
