"""The local-disk backend of src/storage.

Local backend: objects are files under ``root`` (``DATA_DIR/objects``). A writer appends to a
hidden temp file in the object's directory (``.<name>.<token>.part``), ``flush`` fsyncs it, and
``commit`` fsyncs and renames it into place. A writer holds an exclusive ``flock`` on its temp
file, so a second writer of the same upload gets :class:`WriterBusyError`. All file IO runs in
worker threads, in bounded chunks. ``scan`` walks the tree one directory at a time; a temp file
is removed only while no writer holds its lock.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import anyio
import anyio.to_thread

if sys.platform != "win32":
    import fcntl


from src.storage import (
    MIB,
    STATE_VERSION,
    ObjectNotFoundError,
    ObjectWriter,
    ResumableWriter,
    Storage,
    StorageError,
    StoredEntry,
    WriterBusyError,
    _check_state,
    _copy_state,
    _new_token,
    validate_key,
    validate_prefix,
)

T = TypeVar("T")
LOCAL_WRITE_BUFFER = MIB
# A writer's temp file: ``.<name>.<token>.part`` beside the object it becomes.
_TEMP_NAME = re.compile(r"\.(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\.(?P<token>[0-9a-f]{32})\.part")

ListedFile = tuple[str, int, float]  # name, size, mtime

logger = logging.getLogger(__name__)


async def _in_thread(func: Callable[..., T], *args: Any) -> T:
    try:
        return await anyio.to_thread.run_sync(func, *args)
    except FileNotFoundError as exc:
        raise ObjectNotFoundError(str(exc)) from exc
    except OSError as exc:
        raise StorageError(str(exc)) from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_size(path: Path) -> int | None:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_size if path.is_file() else None


def _read_at(file: BinaryIO, offset: int, length: int) -> bytes:
    file.seek(offset)
    return file.read(length)


def _open_for_read(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except (NotADirectoryError, IsADirectoryError) as exc:
        raise FileNotFoundError(errno.ENOENT, "no such object", str(path)) from exc


def _lock_for_writing(file: BinaryIO, key: str) -> None:
    """Hold an exclusive lock on an upload's temp file for as long as this writer has it open.

    The database lease says who may write; this lock makes sure nobody else can. A process
    that stalled past its lease (paused, swapping) still holds the lock, so a second writer is
    refused instead of both writing to the same file; a dead process's lock is gone with it."""
    if sys.platform == "win32":  # pragma: no cover - no flock there
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise WriterBusyError(f"another writer still holds the upload data of {key}") from None


def _list_directory(path: Path) -> tuple[list[ListedFile], list[str]]:
    """The regular files (name, size, mtime) and sub-directory names of one directory."""
    files: list[ListedFile] = []
    directories: list[str] = []
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        directories.append(entry.name)
                    elif entry.is_file(follow_symlinks=False):
                        stat = entry.stat(follow_symlinks=False)
                        files.append((entry.name, stat.st_size, stat.st_mtime))
                except FileNotFoundError:  # removed while listed
                    continue
    except (FileNotFoundError, NotADirectoryError):
        pass
    return files, directories


def _entry(prefix: str, name: str, size: int, mtime: float) -> StoredEntry | None:
    """What a file named ``name`` in the directory of keys ``prefix`` is, if anything."""
    modified = datetime.fromtimestamp(mtime, UTC)
    temp = _TEMP_NAME.fullmatch(name)
    try:
        if temp is not None:
            key = validate_key(prefix + temp["name"])
            return StoredEntry(
                key, prefix + name, size, modified, temporary=True, token=temp["token"]
            )
        return StoredEntry(validate_key(prefix + name), prefix + name, size, modified)
    except ValueError:  # not ours (a probe file, something put there by hand)
        return None


def _remove_unlocked(path: Path, key: str) -> None:
    """Remove a writer's temp file unless a live writer still holds its lock."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return
    try:
        _lock_for_writing(file, key)  # closes the file and raises WriterBusyError if held
        path.unlink(missing_ok=True)
    finally:
        _close_quietly(file)


def _close_quietly(file: BinaryIO) -> None:
    with contextlib.suppress(OSError):
        file.close()


class _LocalWriter(ResumableWriter):
    def __init__(
        self,
        storage: LocalStorage,
        key: str,
        state: dict[str, Any],
        file: BinaryIO,
        *,
        directory_synced: bool,
        resumable: bool,
    ) -> None:
        super().__init__(key, state)
        self._resumable = resumable
        self._storage = storage
        self._file = file
        self._temp = storage._temp_path(key, state["token"])
        self._buffer = bytearray()
        self._directory_synced = directory_synced

    async def _write(self, data: memoryview) -> None:
        self._size += len(data)
        if not self._buffer and len(data) >= LOCAL_WRITE_BUFFER:
            # A whole block: straight to the file from a worker thread, with no copy on the
            # event loop (uploads hand over blocks of a MiB or more, which stay untouched).
            await _in_thread(self._file.write, data)
            return
        self._buffer += data
        if len(self._buffer) >= LOCAL_WRITE_BUFFER:
            await self._drain()

    async def _exit_unfinished(self) -> None:
        await (self.release() if self._resumable else self.abort())

    async def _drain(self) -> None:
        if self._buffer:
            pending = bytes(self._buffer)
            await _in_thread(self._file.write, pending)
            self._buffer.clear()

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        if not self._directory_synced:
            _fsync_dir(self._temp.parent)
            self._directory_synced = True

    async def _flush(self) -> None:
        await self._drain()
        await _in_thread(self._sync)
        self._state = {**self._state, "size": self._size}

    def _publish(self) -> None:
        self._sync()
        self._file.close()
        final = self._storage._path(self.key)
        os.replace(self._temp, final)
        _fsync_dir(final.parent)

    async def _commit(self) -> None:
        await self._drain()
        await _in_thread(self._publish)

    def _discard(self) -> None:
        _close_quietly(self._file)
        self._temp.unlink(missing_ok=True)

    async def _abort(self) -> None:
        self._buffer.clear()
        await _in_thread(self._discard)

    async def _release(self) -> None:
        self._buffer.clear()
        await _in_thread(_close_quietly, self._file)


class LocalStorage(Storage):
    """Objects as files under ``root``; writes go through a temp file renamed on commit."""

    backend = "local"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _temp_path(self, key: str, token: str) -> Path:
        final = self._path(key)
        return final.with_name(f".{final.name}.{token}.part")

    def _check_state(self, state: dict[str, Any]) -> dict[str, Any]:
        return _check_state(state, self.backend)

    async def startup(self) -> None:
        await _in_thread(lambda: self.root.mkdir(parents=True, exist_ok=True))

    def _probe(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"storage directory {self.root} does not exist")
        probe = self.root / f".ping.{_new_token()}"
        try:
            probe.write_bytes(b"ok")
        finally:
            probe.unlink(missing_ok=True)

    async def ping(self) -> None:
        await _in_thread(self._probe)

    async def close(self) -> None:
        return None

    def _create_temp(self, key: str, token: str) -> BinaryIO:
        temp = self._temp_path(key, token)
        temp.parent.mkdir(parents=True, exist_ok=True)
        file = temp.open("xb")
        _lock_for_writing(file, key)
        return file

    async def _open(self, key: str, *, resumable: bool) -> _LocalWriter:
        validate_key(key)
        token = _new_token()
        file = await _in_thread(self._create_temp, key, token)
        state = {"backend": self.backend, "version": STATE_VERSION, "token": token, "size": 0}
        return _LocalWriter(self, key, state, file, directory_synced=False, resumable=resumable)

    async def open_writer(self, key: str) -> ObjectWriter:
        return await self._open(key, resumable=False)

    async def open_resumable(self, key: str) -> ResumableWriter:
        return await self._open(key, resumable=True)

    def _reopen(self, key: str, state: dict[str, Any]) -> BinaryIO:
        temp = self._temp_path(key, state["token"])
        try:
            file = temp.open("r+b")
        except FileNotFoundError:
            if state["size"]:
                raise
            return self._create_temp(key, state["token"])  # never flushed: nothing to lose
        _lock_for_writing(file, key)
        try:
            actual = os.fstat(file.fileno()).st_size
            if actual < state["size"]:
                raise StorageError(
                    f"upload data for {key} lost: {actual} of {state['size']} bytes on disk"
                )
            if actual > state["size"]:
                file.truncate(state["size"])
                os.fsync(file.fileno())
            file.seek(state["size"])
        except BaseException:
            file.close()
            raise
        return file

    async def resume_writer(self, key: str, state: dict[str, Any]) -> ResumableWriter:
        validate_key(key)
        state = _copy_state(self._check_state(state))
        file = await _in_thread(self._reopen, key, state)
        return _LocalWriter(self, key, state, file, directory_synced=True, resumable=True)

    async def _read_pending(
        self, key: str, state: dict[str, Any], chunk_size: int
    ) -> AsyncIterator[bytes]:
        temp = self._temp_path(key, state["token"])
        async for chunk in self._read_file(temp, 0, state["size"] - 1, chunk_size, exact=True):
            yield chunk

    async def abort_state(self, key: str, state: dict[str, Any]) -> None:
        validate_key(key)
        state = self._check_state(state)
        await _in_thread(self._temp_path(key, state["token"]).unlink, True)

    async def size(self, key: str) -> int | None:
        return await _in_thread(_file_size, self._path(key))

    async def _read_file(
        self, path: Path, start: int, end: int | None, chunk_size: int, *, exact: bool = False
    ) -> AsyncIterator[bytes]:
        file = await _in_thread(_open_for_read, path)
        try:
            offset = start
            while end is None or offset <= end:
                length = chunk_size if end is None else min(chunk_size, end + 1 - offset)
                chunk = await _in_thread(_read_at, file, offset, length)
                if not chunk:
                    break
                offset += len(chunk)
                yield chunk
            if exact and end is not None and offset <= end:
                raise StorageError(f"upload data in {path.name} is shorter than recorded")
        finally:
            _close_quietly(file)

    async def _open_range(
        self, key: str, start: int, end: int | None, chunk_size: int
    ) -> AsyncIterator[bytes]:
        async for chunk in self._read_file(self._path(key), start, end, chunk_size):
            yield chunk

    async def delete(self, key: str) -> None:
        await _in_thread(self._path(key).unlink, True)

    async def _scan(self, prefix: str) -> AsyncIterator[StoredEntry]:
        pending = [prefix]
        while pending:
            prefix = pending.pop()
            directory = self.root.joinpath(*prefix.split("/")[:-1])
            files, directories = await _in_thread(_list_directory, directory)
            for name, size, mtime in files:
                entry = _entry(prefix, name, size, mtime)
                if entry is not None:
                    yield entry
            pending.extend(f"{prefix}{name}/" for name in directories)

    async def remove_entry(self, entry: StoredEntry) -> None:
        if entry.temporary and entry.token is not None:
            path = self._temp_path(entry.key, entry.token)
            await _in_thread(_remove_unlocked, path, entry.key)
        else:
            await self.delete(entry.key)

    @staticmethod
    def _remove_tree(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            shutil.rmtree(path)

    async def delete_prefix(self, prefix: str) -> None:
        validate_prefix(prefix)
        await _in_thread(self._remove_tree, self._path(prefix[:-1]))

    async def presign_get(
        self, key: str, *, filename: str, expires: int | None = None
    ) -> str | None:
        validate_key(key)
        return None

    def local_path(self, key: str) -> Path | None:
        return self._path(key)
