"""Password hashing with argon2id (pwdlib), run in worker threads so the event loop never blocks.

A dummy hash made with the same parameters lets a login for an unknown email cost the same
verification as a wrong password, so the two failures cannot be told apart by timing.
"""

from __future__ import annotations

import anyio
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

_DUMMY_PASSWORD = "mosaic-dummy-password-never-matches"  # noqa: S105


class PasswordHasher:
    """argon2id with configurable cost; ``verify`` also reports a re-hash when the cost changed."""

    def __init__(self, *, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._context = PasswordHash(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism),)
        )
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._context.hash, password)

    async def verify(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """(matches, new hash if the stored one used other parameters, else None)."""
        try:
            return await anyio.to_thread.run_sync(
                self._context.verify_and_update, password, password_hash
            )
        except UnknownHashError:
            return False, None

    async def dummy_hash(self) -> str:
        """A hash no password given by a client matches, made (once) with the same cost."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(_DUMMY_PASSWORD)
        return self._dummy_hash
