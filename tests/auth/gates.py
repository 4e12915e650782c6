"""A password hasher that can be held still: tests make hashing slow deterministically, by
blocking it in its worker thread until they let it go, never by sleeping and timing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from src.auth.passwords import PasswordHasher
from tests.auth.conftest import CHEAP_ARGON2

# However a test fails, a held hash gives up after this long, so no thread outlives the run.
BACKSTOP_SECONDS = 60.0


class GatedAlgorithm(PasswordHash):
    """Cheap argon2id whose ``hash`` and ``verify_and_update`` wait, while the gate is closed,
    until it opens. ``held`` counts the calls waiting at the gate now."""

    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int) -> None:
        super().__init__(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism),)
        )
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._held = 0

    @property
    def held(self) -> int:
        with self._lock:
            return self._held

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def _pass(self) -> None:
        with self._lock:
            self._held += 1
        try:
            self._open.wait(BACKSTOP_SECONDS)
        finally:
            with self._lock:
                self._held -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._pass()
        return super().hash(password, salt=salt)

    def verify_and_update(
        self, password: str | bytes, hash: str | bytes
    ) -> tuple[bool, str | None]:
        self._pass()
        return super().verify_and_update(password, hash)


def gated_hasher(
    *, concurrency: int, queue: int, **cost: int
) -> tuple[PasswordHasher, GatedAlgorithm]:
    """A hasher of ``concurrency`` slots and ``queue`` places whose hashes wait at a gate (open
    until a test closes it); cheap argon2id unless ``cost`` (time_cost, memory_cost,
    parallelism) says otherwise."""
    values = {name.removeprefix("argon2_"): value for name, value in CHEAP_ARGON2.items()}
    values.update(cost)
    gate = GatedAlgorithm(**values)
    hasher = PasswordHasher(**values, concurrency=concurrency, queue=queue, algorithm=gate)
    return hasher, gate


async def until(condition: Callable[[], Any]) -> None:
    """Wait for ``condition`` to hold, looking again every few milliseconds; fail (rather than
    hang) if it never does. It waits for a state, it measures no time."""
    async with asyncio.timeout(BACKSTOP_SECONDS):
        # Polled: the states waited for (threads held at a gate, a limiter's counters, tasks
        # done) have no event of their own to await.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
