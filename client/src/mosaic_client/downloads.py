"""Downloading a study's files (or one), resumably, verified.

A file goes to ``OUT/<sample_id>/<filename>`` (one file asked by id: ``OUT/<filename>``). Bytes
arrive in ``.<filename>.<file id>.part`` beside it; a re-run continues that part with a Range
request (stored files never change, so a part named by the file's id is always a prefix of it)
and hashes it on the way. Only a file whose SHA-256 is the server's is renamed into place; a
mismatch removes the part and reports the file as failed. A file already in place with the right
size and SHA-256 is skipped.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mosaic_client.api import API, Api, ApiError, backoff
from mosaic_client.state import sha256_of
from mosaic_client.tus import Cancelled
from mosaic_client.uploads import NoProgress, Progress

BLOCK = 1024 * 1024
MAX_FAILURES = 8


@dataclass
class Downloaded:
    file_id: str
    sample_id: str
    path: Path
    size: int
    status: str  # downloaded, skipped, failed
    message: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "sample_id": self.sample_id,
            "path": str(self.path),
            "size": self.size,
            "status": self.status,
            "message": self.message,
        }


def study_files(api: Api, study: str) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = []
    for sample in api.pages(f"{API}/studies/{study}/samples"):
        files.extend(sample.get("files") or [])
    return files


class Downloader:
    def __init__(self, api: Api, *, jobs: int = 1, progress: Progress | None = None) -> None:
        self.api = api
        self.jobs = max(1, jobs)
        self.progress = progress or NoProgress()
        self.cancel = threading.Event()

    def run(self, files: Sequence[dict[str, Any]], targets: Sequence[Path]) -> list[Downloaded]:
        pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="mosaic-download")
        futures = [
            pool.submit(self._one, file, target)
            for file, target in zip(files, targets, strict=True)
        ]
        try:
            results = [future.result() for future in futures]
        except KeyboardInterrupt:
            # The .part files keep what arrived; the caller exits without waiting for a
            # transfer stuck on a stalled connection.
            self.cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return results

    def _one(self, file: dict[str, Any], target: Path) -> Downloaded:
        size = int(file["size"])
        result = Downloaded(str(file["id"]), str(file["sample_id"]), target, size, "failed")
        expected = file.get("sha256")
        if file.get("status") == "uploading":
            result.message = "still uploading"
            return result
        if not expected:
            result.message = "the server has no SHA-256 for this file"
            return result
        if target.exists() and target.stat().st_size == size and sha256_of(target) == expected:
            result.status = "skipped"
            result.message = "already here, SHA-256 matches"
            return result
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f".{target.name}.{file['id']}.part")
        key = str(target)
        self.progress.start(key, target.name, size)
        failures = 0
        try:
            while True:
                if self.cancel.is_set():
                    raise Cancelled
                try:
                    digest = self._fetch(file, part, size, key)
                    break
                except (httpx.TransportError, ApiError) as exc:
                    if isinstance(exc, ApiError) and exc.status_code not in (500, 502, 503, 504):
                        result.message = f"{exc.detail} ({exc.code})"
                        return result
                    failures += 1
                    if failures > MAX_FAILURES:
                        result.message = f"gave up after {failures} failed attempts: {exc}"
                        return result
                    if self.cancel.wait(backoff(failures)):
                        raise Cancelled from None
            if digest != expected:
                part.unlink(missing_ok=True)
                result.message = f"SHA-256 {digest} is not the server's {expected}; removed"
                return result
            os.replace(part, target)
            result.status = "downloaded"
            return result
        finally:
            self.progress.done(key, size)

    def _fetch(self, file: dict[str, Any], part: Path, size: int, key: str) -> str:
        """Bring ``part`` to ``size`` bytes; its SHA-256."""
        digest = hashlib.sha256()
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have:
            digest = _hash_prefix(part)
        self.progress.uploading(key, have)
        if have == size:
            return digest.hexdigest()
        headers = {"Range": f"bytes={have}-"} if have else {}
        response = self.api.send(
            "GET", f"{API}/files/{file['id']}/download", headers=headers, stream=True
        )
        try:
            if have and response.status_code != 206:
                have = 0  # the server sent the whole file: start over
                digest = hashlib.sha256()
            mode = "ab" if have else "wb"
            with open(part, mode) as handle:
                if not have:
                    handle.truncate(0)
                for block in response.iter_bytes(BLOCK):
                    if self.cancel.is_set():
                        raise Cancelled
                    handle.write(block)
                    digest.update(block)
                    self.progress.sent(key, len(block))
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            response.close()
        if part.stat().st_size != size:
            raise httpx.ReadError(f"got {part.stat().st_size} of {size} bytes")
        return digest.hexdigest()


def _hash_prefix(path: Path) -> Any:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * BLOCK):
            digest.update(block)
    return digest


def targets_for(files: Sequence[dict[str, Any]], out: Path, *, flat: bool) -> list[Path]:
    """Where each file goes: ``out/<sample_id>/<filename>``, or ``out/<filename>`` when flat."""
    paths = []
    for file in files:
        name = Path(str(file["filename"])).name
        paths.append(out / name if flat else out / _safe(str(file["sample_id"])) / name)
    return paths


def _safe(part: str) -> str:
    """A sample id as a folder name (ids are ``[A-Za-z0-9_.-]``: ``.`` and ``..`` are ids)."""
    return f"_{part}" if part in {".", ".."} or "/" in part or not part else part
