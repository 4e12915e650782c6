"""What an upload run remembers for the next one: per local file, its SHA-256 (so a re-run does
not hash 50 GB again) and the tus upload it was sent to (so a re-run continues it).

One JSON file per server and study under ``<config>/uploads/``, written atomically (mode 0600)
after every change, so a run killed at any moment leaves the last state it reached. An entry
counts only while the file's size and modification time are those recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mosaic_client.config import config_dir, read_json, write_private


@dataclass
class FileState:
    size: int
    mtime_ns: int
    sha256: str
    upload_url: str | None = None
    sample_id: str | None = None
    # Set just before a creation is sent, cleared once its URL is recorded: a run killed in
    # between finds the server's "uploading" file of that name is its own, with no byte sent.
    creating: bool = False


def fingerprint(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


class UploadState:
    """The resume state of one study's uploads to one server; safe to share between threads."""

    def __init__(self, server_url: str, study: str, directory: Path | None = None) -> None:
        key = hashlib.sha256(f"{server_url.rstrip('/')}\n{study}".encode()).hexdigest()[:24]
        self.path = (directory or config_dir()) / "uploads" / f"{key}.json"
        self._lock = threading.Lock()
        data = read_json(self.path)
        files = data.get("files") if isinstance(data.get("files"), dict) else {}
        assert isinstance(files, dict)
        self._files: dict[str, dict[str, Any]] = files
        self._meta = {"server": server_url, "study": study}

    def get(self, path: Path) -> FileState | None:
        """The state of ``path`` if the file is unchanged since it was recorded."""
        with self._lock:
            entry = self._files.get(str(path.resolve()))
        if not isinstance(entry, dict):
            return None
        try:
            state = FileState(**entry)
        except TypeError:
            return None
        if (state.size, state.mtime_ns) != fingerprint(path):
            return None
        return state

    def put(self, path: Path, state: FileState) -> None:
        with self._lock:
            self._files[str(path.resolve())] = asdict(state)
            self._save()

    def forget_upload(self, path: Path) -> None:
        with self._lock:
            entry = self._files.get(str(path.resolve()))
            if isinstance(entry, dict):
                entry["upload_url"] = None
                self._save()

    def _save(self) -> None:
        data = {**self._meta, "files": self._files}
        write_private(self.path, json.dumps(data, indent=1).encode())


def sha256_of(path: Path, progress: Any = None, block_size: int = 4 * 1024 * 1024) -> str:
    """The file's SHA-256; ``progress(n)`` after each block (hashlib releases the GIL on large
    blocks, so several threads hash in parallel)."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(block_size)
        view = memoryview(buffer)
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            if progress is not None:
                progress(count)
    return digest.hexdigest()
