"""Uploading a run's files: hash, skip what is stored, send over tus, N at a time, resumably.

Each file goes through: its SHA-256 (from the resume state when the file is unchanged, else
computed, in a pool running ahead of the uploads); a look at the sample's stored files (the
same SHA-256 there: skipped); the upload recorded in the resume state, if any, continued from
the offset the server reports (HEAD), else a new one with the SHA-256 declared; chunks
appended until the server names the finished file, which is then read back (valid or invalid,
reads, line-numbered errors). Lost connections, 5xx answers, a server restart and 423 (the
server still holds a dead request's lease) are retried with back-off after asking the server
its offset again, so no byte the server acknowledged is sent twice.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from mosaic_client import tus
from mosaic_client.api import API, Api, ApiError, NotLoggedInError, backoff
from mosaic_client.matching import Placed
from mosaic_client.state import FileState, UploadState, fingerprint, sha256_of

DEFAULT_CHUNK = 64 * 1024 * 1024
STOP_WAIT_SECONDS = 5.0  # after Ctrl+C, how long transfers get to stop at a block boundary
MAX_FAILURES = 8  # consecutive failures of one file without progress before it is given up
FINISHED = ("valid", "invalid")


class Progress(Protocol):
    """What the uploader tells a progress display (rich in the CLI; nothing in tests)."""

    def start(self, key: str, name: str, size: int) -> None: ...
    def hashing(self, key: str, count: int) -> None: ...
    def uploading(self, key: str, offset: int) -> None: ...
    def sent(self, key: str, count: int) -> None: ...
    def done(self, key: str, size: int) -> None: ...


class NoProgress:
    def start(self, key: str, name: str, size: int) -> None:
        pass

    def hashing(self, key: str, count: int) -> None:
        pass

    def uploading(self, key: str, offset: int) -> None:
        pass

    def sent(self, key: str, count: int) -> None:
        pass

    def done(self, key: str, size: int) -> None:
        pass


@dataclass
class FileResult:
    path: Path
    sample_id: str
    read: str
    size: int
    status: str  # valid, invalid, skipped, failed
    sha256: str | None = None
    file_id: str | None = None
    read_count: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    validation: str | None = None  # the server's verdict (valid, invalid), skipped files too
    resumed_from: int | None = None  # the server's offset when this run took the upload up

    def as_json(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "sample_id": self.sample_id,
            "read": self.read,
            "size": self.size,
            "status": self.status,
            "sha256": self.sha256,
            "file_id": self.file_id,
            "read_count": self.read_count,
            "validation": self.validation,
            "resumed_from": self.resumed_from,
            "errors": self.errors,
            "message": self.message,
        }


class Interrupted(Exception):  # noqa: N818 - an event, not a bug
    def __init__(self, results: list[FileResult]) -> None:
        super().__init__("interrupted")
        self.results = results


class Uploader:
    def __init__(
        self,
        api: Api,
        study: str,
        *,
        stored: dict[str, list[dict[str, Any]]],
        state: UploadState,
        jobs: int = 1,
        chunk_size: int = DEFAULT_CHUNK,
        progress: Progress | None = None,
    ) -> None:
        self.api = api
        self.study = study
        self.state = state
        self.jobs = max(1, jobs)
        self.chunk_size = chunk_size
        self.progress = progress or NoProgress()
        self.cancel = threading.Event()
        self._stored = stored
        self._stored_lock = threading.Lock()

    # -- the run ----------------------------------------------------------------------------

    def run(self, placed: Sequence[Placed]) -> list[FileResult]:
        """Upload every file; on Ctrl+C, stop the transfers and raise :class:`Interrupted`."""
        hashers = ThreadPoolExecutor(self.jobs, thread_name_prefix="mosaic-hash")
        senders = ThreadPoolExecutor(self.jobs, thread_name_prefix="mosaic-upload")
        futures: list[Future[FileResult]] = []
        try:
            for item in placed:
                digest = hashers.submit(self._sha256, item)
                futures.append(senders.submit(self._upload, item, digest))
            results = [future.result() for future in futures]
        except KeyboardInterrupt:
            # Transfers stop at their next block; one stuck on a stalled link is not waited
            # for (the caller exits the process): what the server stored is in its offset,
            # and the resume state was written before any byte was sent.
            self.cancel.set()
            senders.shutdown(wait=False, cancel_futures=True)
            hashers.shutdown(wait=False, cancel_futures=True)
            wait(futures, timeout=STOP_WAIT_SECONDS)
            results = [
                future.result()
                for future in futures
                if future.done() and not future.cancelled() and future.exception() is None
            ]
            raise Interrupted(results) from None
        senders.shutdown(wait=True)
        hashers.shutdown(wait=True)
        return results

    def _sha256(self, item: Placed) -> str:
        known = self.state.get(item.path)
        if known is not None:
            return known.sha256
        key = str(item.path)
        self.progress.start(key, item.path.name, fingerprint(item.path)[0])

        def step(count: int) -> None:
            if self.cancel.is_set():
                raise tus.Cancelled
            self.progress.hashing(key, count)

        size, mtime_ns = fingerprint(item.path)
        sha256 = sha256_of(item.path, step)
        self.state.put(item.path, FileState(size=size, mtime_ns=mtime_ns, sha256=sha256))
        return sha256

    def _upload(self, item: Placed, digest: Future[str]) -> FileResult:
        size = item.path.stat().st_size
        result = FileResult(item.path, item.sample_id, item.read, size, "failed")
        key = str(item.path)
        try:
            result.sha256 = digest.result()
            self._send(item, result)
        except tus.Cancelled:
            raise
        except NotLoggedInError as exc:
            result.status, result.message = "failed", str(exc)
        except ApiError as exc:
            result.status, result.message = "failed", _describe(exc)
        except (httpx.HTTPError, OSError) as exc:
            result.status, result.message = "failed", f"{type(exc).__name__}: {exc}"
        self.progress.done(key, size)
        return result

    # -- one file ---------------------------------------------------------------------------

    def _stored_files(self, sample_id: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        with self._stored_lock:
            cached = self._stored.get(sample_id)
        if cached is not None and not fresh:
            return cached
        files: list[dict[str, Any]] = self.api.json(
            "GET", f"{API}/studies/{self.study}/samples/{sample_id}/files"
        )
        with self._stored_lock:
            self._stored[sample_id] = files
        return files

    def _already_stored(self, result: FileResult, *, fresh: bool = False) -> bool:
        for stored in self._stored_files(result.sample_id, fresh=fresh):
            if stored.get("sha256") == result.sha256 and stored.get("status") in FINISHED:
                self._fill(result, stored)
                result.status = "skipped"
                result.message = f"already stored ({stored['status']}) as {stored['filename']}"
                return True
        return False

    def _send(self, item: Placed, result: FileResult) -> None:
        if self._already_stored(result):
            return
        assert result.sha256 is not None
        url = self._resume_url(item, result)
        if url is None and not self._name_is_free(item, result):
            return
        self.progress.start(str(item.path), item.path.name, result.size)
        failures = 0
        while True:
            if self.cancel.is_set():
                raise tus.Cancelled
            try:
                file_id = self._transfer(item, result, url)
                if file_id is None:  # the upload is gone: finished meanwhile, or expired
                    self.state.forget_upload(item.path)
                    if self._already_stored(result, fresh=True):
                        return
                    url = None
                    continue
                self._fill(result, self.api.json("GET", f"{API}/files/{file_id}"))
                return
            except _Restart as restart:
                failures = 0 if restart.progressed else failures + 1
            except (ApiError, httpx.TransportError) as exc:
                if not self._worth_retrying(item, exc):
                    raise
                failures += 1
            self._back_off(failures)
            url = self._recorded_url(item)

    def _resume_url(self, item: Placed, result: FileResult) -> str | None:
        """The upload URL the resume state holds for this very file (same SHA-256, same
        sample), if any."""
        known = self.state.get(item.path)
        if known is not None and known.sha256 == result.sha256:
            return known.upload_url if known.sample_id == item.sample_id else None
        return None

    def _recorded_url(self, item: Placed) -> str | None:
        """The upload URL the resume state holds now (after a failure, to retry with)."""
        recorded = self.state.get(item.path)
        return recorded.upload_url if recorded is not None else None

    def _name_is_free(self, item: Placed, result: FileResult) -> bool:
        """Whether a new upload may take the file's name in its sample: stale uploads of this
        file are deleted; another stored file of that name makes this one fail (the reason in
        ``result.message``)."""
        for stored in self._stored_files(item.sample_id):
            if stored.get("filename") != item.path.name:
                continue
            if stored.get("status") == "uploading" and self._was_creating(item, result):
                # An upload of this file whose URL never reached the resume state (the run
                # was killed between sending the creation and recording its answer): no byte
                # of it was sent, so start it again.
                self.api.send("DELETE", f"{API}/files/{stored['id']}", ok=(404,))
                continue
            result.message = (
                f"the sample already has a different file named {item.path.name!r}"
                f" ({stored.get('status')}, id {stored.get('id')}); delete it first"
            )
            return False
        return True

    def _worth_retrying(self, item: Placed, exc: ApiError | httpx.TransportError) -> bool:
        """Whether a failed attempt is retried: lost connections, 5xx and 423 are; any other
        answer is final (a checksum mismatch also drops the upload from the resume state)."""
        if isinstance(exc, httpx.TransportError):
            return True
        if exc.status_code in (423, 500, 502, 503, 504):
            return True
        if exc.code == "CHECKSUM_MISMATCH":
            self.state.forget_upload(item.path)
        return False

    def _back_off(self, failures: int) -> None:
        """Wait before the next attempt; give up after too many failures in a row."""
        if failures > MAX_FAILURES:
            raise ConnectionError(f"gave up after {failures} failed attempts in a row")
        if self.cancel.wait(backoff(failures)):
            raise tus.Cancelled

    def _transfer(self, item: Placed, result: FileResult, url: str | None) -> str | None:
        """Continue (or start) the upload; the finished file's id, or None if the upload is
        gone. Raises _Restart after a failure once some bytes were acknowledged."""
        if url is None:
            url, file_id = self._create(item, result)
            if file_id is not None:
                return file_id
            offset = 0
        else:
            found = self._server_offset(result, url)
            if found is None:
                return None
            offset = found
        return self._append_chunks(item, result.size, url, offset)

    def _was_creating(self, item: Placed, result: FileResult) -> bool:
        """Whether an earlier run sent this very file's creation and never recorded its URL."""
        known = self.state.get(item.path)
        return (
            known is not None
            and known.creating
            and known.sha256 == result.sha256
            and known.sample_id == item.sample_id
        )

    def _record(self, item: Placed, result: FileResult, url: str | None) -> None:
        """The resume state of this file: its upload's URL, or (None) a creation under way."""
        stat_size, mtime_ns = fingerprint(item.path)
        self.state.put(
            item.path,
            FileState(
                size=stat_size,
                mtime_ns=mtime_ns,
                sha256=result.sha256 or "",
                upload_url=url,
                sample_id=item.sample_id,
                creating=url is None,
            ),
        )

    def _create(self, item: Placed, result: FileResult) -> tuple[str, str | None]:
        """A new upload with the SHA-256 declared, its URL written to the resume state before
        any byte is sent; its URL, and the file's id if the server finished it at once."""
        metadata = {
            "study": self.study,
            "sample_id": item.sample_id,
            "filename": item.path.name,
            "sha256": result.sha256 or "",
        }
        if item.how == "map" or item.read != "single":
            metadata["read"] = item.read
        self._record(item, result, None)
        url, file_id = tus.create(self.api, length=result.size, metadata=metadata)
        self._record(item, result, url)
        return url, file_id

    def _server_offset(self, result: FileResult, url: str) -> int | None:
        """Where the server stands in an existing upload (None: it is gone); the first such
        offset of this run is kept as ``result.resumed_from``."""
        offset = tus.offset(self.api, url)
        if offset is not None and result.resumed_from is None:
            result.resumed_from = offset
        return offset

    def _append_chunks(self, item: Placed, size: int, url: str, offset: int) -> str | None:
        """Send the file from ``offset`` in chunks until the server names the finished file
        (its id), or None if the upload is gone. Raises _Restart on a retryable failure."""
        key = str(item.path)
        self.progress.uploading(key, offset)
        start = offset
        try:
            while True:
                count = min(self.chunk_size, size - offset)
                try:
                    appended = tus.append(
                        self.api,
                        url,
                        path=item.path,
                        start=offset,
                        count=count,
                        sent=lambda n: self.progress.sent(key, n),
                        cancel=self.cancel,
                    )
                except ApiError as exc:
                    if exc.status_code in (404, 410):
                        return None
                    raise
                offset = appended.offset
                self.progress.uploading(key, offset)
                if appended.file_id is not None:
                    return appended.file_id
                if offset > size:
                    raise ConnectionError(f"the server is at offset {offset} past {size}")
        except (httpx.TransportError, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status_code < 500 and exc.status_code != 423:
                raise
            raise _Restart(progressed=offset > start) from exc

    @staticmethod
    def _fill(result: FileResult, stored: dict[str, Any]) -> None:
        result.file_id = str(stored.get("id"))
        result.status = result.validation = str(stored.get("status"))
        result.read_count = stored.get("read_count")
        result.errors = list(stored.get("errors") or [])


class _Restart(Exception):  # noqa: N818 - control flow
    def __init__(self, *, progressed: bool) -> None:
        super().__init__("restart")
        self.progressed = progressed


def _describe(exc: ApiError) -> str:
    extra = ""
    if exc.errors:
        first = exc.errors[0]
        extra = f": {first.get('message', first)}" if isinstance(first, dict) else f": {first}"
    return f"{exc.detail} ({exc.code}){extra}"


def exit_code(results: Sequence[FileResult]) -> int:
    """1 if any file failed, else 3 if any is invalid (uploaded now or before), else 0."""
    if any(result.status == "failed" for result in results):
        return 1
    if any("invalid" in (result.status, result.validation) for result in results):
        return 3
    return 0
