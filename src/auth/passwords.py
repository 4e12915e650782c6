"""Password hashing with argon2id (pwdlib), in threads of its own and never more at once than
there are CPUs.

Each hash costs its memory (19 MiB by default) and a core for tens of milliseconds, so a flood of
logins must not start one thread per request: ``HashingLimiter`` runs at most ``concurrency``
hashes at a time (its own thread pool, so hashing never takes the threads file work needs) and
lets at most ``queue`` more wait; a caller beyond that is refused at once with 503 SERVICE_BUSY
(and Retry-After) without hashing. Callers hash with no database connection or transaction held
(see src/auth/service.py), so a crowd waiting here holds nothing another request needs.

A dummy hash made with the same parameters lets a login for an unknown email cost the same
verification as a wrong password, so the two failures cannot be told apart by timing.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from src.auth.constants import PASSWORD_HASH_QUEUE
from src.exceptions import ServiceBusyError

_DUMMY_PASSWORD = "mosaic-dummy-password-never-matches"  # noqa: S105

T = TypeVar("T")

# glibc serves a block below its mmap threshold from a heap that keeps freed memory, and raises
# that threshold (up to 32 MiB) each time a large mapped block is freed: after the first hashes a
# 19 MiB argon2 buffer comes from the hashing thread's arena and stays resident when the hash
# ends (38 MiB more per worker with two hashing threads, measured). A fixed threshold keeps
# blocks this large mapped, so their memory goes back to the system with each hash.
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h


def return_large_blocks_to_system() -> bool:
    """Fix glibc's mmap threshold (see MMAP_THRESHOLD_BYTES); False where the C library is not
    glibc (musl, macOS, Windows), which need no such setting or offer none."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (present in glibc only)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


class HashingLimiter:
    """A pool of ``concurrency`` hashing threads with at most ``queue`` hashes waiting for one;
    the next caller is refused at once (ServiceBusyError) without hashing.

    A hash keeps its place until its thread has finished it, even when its caller is cancelled
    meanwhile (the thread cannot be stopped), so the bound on CPU and memory holds; a waiting
    hash whose caller is cancelled never starts and gives its place back at once."""

    def __init__(self, *, concurrency: int, queue: int) -> None:
        if concurrency < 1 or queue < 0:
            raise ValueError("a hashing limiter needs at least one slot and a queue of 0 or more")
        self.concurrency = concurrency
        self.queue = queue
        return_large_blocks_to_system()
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="password-hash")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0

    @property
    def admitted(self) -> int:
        """Hashes running or waiting for a thread."""
        with self._lock:
            return self._admitted

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a hashing thread once one is free; ServiceBusyError at once
        when the queue is full."""
        with self._lock:
            if self._admitted >= self.concurrency + self.queue:
                raise ServiceBusyError("Too many password checks are in progress; retry shortly.")
            self._admitted += 1
        try:
            future = self._executor.submit(self._call, function, *args)
        except BaseException:
            self._leave()
            raise
        # Called when the thread is done with it, or at once when it is cancelled unstarted;
        # added before the awaiting side's, so the place is free when the caller resumes.
        future.add_done_callback(lambda _: self._leave())
        return await asyncio.wrap_future(future)

    def _call(self, function: Callable[..., T], *args: object) -> T:
        with self._lock:
            self._running += 1
        try:
            return function(*args)
        finally:
            with self._lock:
                self._running -= 1

    def _leave(self) -> None:
        with self._lock:
            self._admitted -= 1

    def close(self) -> None:
        """Stop the threads once their current hash is done; waiting hashes are dropped."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def default_concurrency() -> int:
    """The CPUs this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class PasswordHasher:
    """argon2id with configurable cost; ``verify`` also reports a re-hash when the cost changed."""

    def __init__(
        self,
        *,
        time_cost: int,
        memory_cost: int,
        parallelism: int,
        concurrency: int | None = None,
        queue: int = PASSWORD_HASH_QUEUE,
        algorithm: PasswordHash | None = None,
    ) -> None:
        """``algorithm`` replaces the argon2id context (tests slow it down deterministically)."""
        self._context = algorithm or PasswordHash(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism),)
        )
        self.limiter = HashingLimiter(concurrency=concurrency or default_concurrency(), queue=queue)
        self._dummy_hash: str | None = None
        self._dummy_lock = anyio.Lock()

    async def hash(self, password: str) -> str:
        return await self.limiter.run(self._context.hash, password)

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """(matches, new hash if the stored one used other parameters, else None)."""
        try:
            return await self.limiter.run(self._context.verify_and_update, password, password_hash)
        except UnknownHashError:
            return False, None

    def close(self) -> None:
        self.limiter.close()

    async def dummy_hash(self) -> str:
        """A hash no password given by a client matches, made (once) with the same cost."""
        if self._dummy_hash is None:
            async with self._dummy_lock:  # a crowd at start-up makes it once, not once each
                if self._dummy_hash is None:
                    self._dummy_hash = await self.hash(_DUMMY_PASSWORD)
        return self._dummy_hash
