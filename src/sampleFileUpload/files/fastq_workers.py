"""FASTQ validation in worker processes, so it never competes with the event loop for the GIL.

The validator's text checks are C calls over whole chunks that hold the GIL (``split``,
``translate``, ``join``); in the API process they take turns with the event loop that receives
the upload, and both slow down. ``FastqWorkers`` runs ``FASTQ_WORKERS`` small processes
(``python -m src.sampleFileUpload.files.fastq_workers``: this module and the validator, about 25 MiB
each, started on first use). Each validation is a *lane* bound to one worker: its blocks travel
over the worker's stdin in order and the report comes back on its stdout. A worker hosts any number
of lanes; calls are short (one block) and serialised per worker by a lock, from the lane's own
thread, so the event loop never blocks on a worker. ``FASTQ_WORKERS=0`` validates in a thread of
the API process instead (the same results; handy for debugging).

Wire format (all little-endian): a request is ``op (u8), lane (u64), length (u64)`` and
``length`` bytes: FEED carries a block, FINISH and DROP nothing. FEED and FINISH are answered
``status (u8), length (u64)`` and a payload. A FEED is answered as soon as its block has been
read, before it is validated, so the next block can be on its way while the worker works (it
waits in the pipe, and the worker never idles for the API process's GIL between blocks). FINISH
is answered with the report as JSON once every block before it is validated. Status 1 means the
lane failed in the worker (a bug, not bad data: bad data is in the report); it is answered to the
lane's next FEED or its FINISH, with the message as payload. DROP (an abandoned lane) gets no
answer. A worker exits when its stdin closes, so it never outlives the API process.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Protocol

from src.sampleFileUpload.files.constants import FastqErrorCode
from src.sampleFileUpload.files.fastq import FastqIssue, FastqReport, FastqValidator

logger = logging.getLogger(__name__)

_REQUEST = struct.Struct("<BQQ")
_REPLY = struct.Struct("<BQ")
_FEED, _FINISH, _DROP = 1, 2, 3
_OK, _FAILED = 0, 1
# Room in the pipe for a whole block, so a write is one copy instead of many wake-ups.
_PIPE_BYTES = 1 << 20
_PROJECT_ROOT = Path(__file__).resolve().parents[3]
# The validator allocates and frees about four times the file's size in short-lived buffers and
# line lists. With Python's and glibc's defaults that memory goes back to the kernel and is
# page-faulted in afresh for every block (about 10 % of the worker's time); malloc with these
# thresholds keeps reusing it instead. The worker's memory stays bounded by the validator's
# working set (a few blocks).
WORKER_MALLOC = {
    "PYTHONMALLOC": "malloc",
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(64 << 20),
}


class Validation(Protocol):
    """One file's validation, fed in order from one thread at a time."""

    def feed(self, block: bytes | bytearray) -> None: ...

    def finish(self) -> FastqReport: ...

    def discard(self) -> None: ...


class WorkerStoppedError(RuntimeError):
    """The worker process of a lane died or failed, or the workers were shut down; the lane's
    state is gone. (The API answers 503 VALIDATOR_UNAVAILABLE.)"""


class InThreadValidation(FastqValidator):
    """``FASTQ_WORKERS=0``: the validator itself, run in the lane's thread."""

    def discard(self) -> None:
        """Nothing is held outside this object."""


def report_to_json(report: FastqReport) -> bytes:
    return json.dumps(asdict(report)).encode()


def report_from_json(payload: bytes) -> FastqReport:
    data: dict[str, Any] = json.loads(payload)
    data["errors"] = tuple(
        FastqIssue(line=e["line"], code=FastqErrorCode(e["code"]), message=e["message"])
        for e in data["errors"]
    )
    return FastqReport(**data)


# ---------------------------------------------------------------------------------------------
# The API process's side.


class _Worker:
    """One worker process and the lock that serialises calls to it."""

    def __init__(self) -> None:
        paths = [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]
        env = {
            **os.environ,
            **WORKER_MALLOC,
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "src.sampleFileUpload.files.fastq_workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout
        _widen_pipe(self.stdin)
        self.lock = threading.Lock()
        self.lanes = 0
        self.alive = True

    def call(self, op: int, lane: int, payload: bytes | bytearray = b"") -> bytes | None:
        """Send one request; return the answer's payload (None for DROP)."""
        with self.lock:
            if not self.alive:
                raise WorkerStoppedError("the FASTQ worker has stopped")
            try:
                self.stdin.write(_REQUEST.pack(op, lane, len(payload)))
                if payload:
                    self.stdin.write(payload)
                self.stdin.flush()
                if op == _DROP:
                    return None
                status, length = _REPLY.unpack(_read_exactly(self.stdout, _REPLY.size))
                answer = _read_exactly(self.stdout, length)
            except (OSError, EOFError, ValueError) as exc:
                self.alive = False
                logger.warning("FASTQ worker %d stopped: %r", self.process.pid, exc)
                raise WorkerStoppedError(f"the FASTQ worker stopped: {exc}") from exc
        if status != _OK:
            raise WorkerStoppedError(f"the FASTQ worker failed: {answer.decode()}")
        return answer

    def stop(self, timeout: float) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stdout.close()


class RemoteValidation:
    """A lane on a worker: what a :class:`FastqValidator` would do, done in the worker."""

    def __init__(self, workers: FastqWorkers, worker: _Worker, lane: int) -> None:
        self._workers = workers
        self._worker = worker
        self._lane = lane
        self._open = True

    def feed(self, block: bytes | bytearray) -> None:
        self._worker.call(_FEED, self._lane, block)

    def finish(self) -> FastqReport:
        try:
            answer = self._worker.call(_FINISH, self._lane)
        finally:
            self._release()
        assert answer is not None
        return report_from_json(answer)

    def discard(self) -> None:
        """Forget the lane in the worker (if it is still there to hear it)."""
        if not self._open:
            return
        try:
            self._worker.call(_DROP, self._lane)
        except WorkerStoppedError:
            pass
        finally:
            self._release()

    def _release(self) -> None:
        if self._open:
            self._open = False
            self._workers.release(self._worker)


class FastqWorkers:
    """A set of validator processes shared by every upload of this API process.

    Workers start on first use; one that died is replaced by the next ``open``. Each new lane
    goes to the worker with the fewest lanes. ``close`` stops them (the app's lifespan calls it).
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self._workers: list[_Worker] = []
        self._lanes = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False

    def open(self) -> Validation:
        """A new validation: in a worker process, or in-thread when FASTQ_WORKERS is 0."""
        if self.count == 0:
            return InThreadValidation()
        with self._lock:
            if self._closed:
                raise WorkerStoppedError("the FASTQ workers are shut down")
            dead = [worker for worker in self._workers if not worker.alive]
            for worker in dead:
                self._workers.remove(worker)
                worker.stop(timeout=0)
            if len(self._workers) < self.count:
                try:
                    started = _Worker()
                except OSError as exc:
                    raise WorkerStoppedError(f"a FASTQ worker could not start: {exc}") from exc
                self._workers.append(started)
                logger.info("started FASTQ worker %d", started.process.pid)
            worker = min(self._workers, key=lambda w: w.lanes)
            worker.lanes += 1
            return RemoteValidation(self, worker, next(self._lanes))

    def release(self, worker: _Worker) -> None:
        with self._lock:
            worker.lanes -= 1

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker: close its stdin, wait for it to exit, kill it if it does not."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop(timeout)


def _widen_pipe(stream: IO[bytes]) -> None:
    if sys.platform == "linux":
        import fcntl

        # Refused when the system's pipe-max-size is lower: writes then only take more steps.
        with contextlib.suppress(OSError):
            fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size) if size else b""
    if len(data) != size:
        raise EOFError("the stream ended early")
    return data


# ---------------------------------------------------------------------------------------------
# The worker process's side.


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """Answer requests until ``requests`` ends: validators by lane, fed in arrival order."""
    validators: dict[int, FastqValidator] = {}
    failures: dict[int, str] = {}

    def answer(status: int, payload: bytes = b"") -> None:
        replies.write(_REPLY.pack(status, len(payload)))
        replies.write(payload)
        replies.flush()

    while True:
        header = requests.read(_REQUEST.size)
        if len(header) < _REQUEST.size:
            return
        op, lane, length = _REQUEST.unpack(header)
        payload = _read_exactly(requests, length)
        if op == _DROP:
            validators.pop(lane, None)
            failures.pop(lane, None)
            continue
        failure = failures.pop(lane, None) if op == _FINISH else failures.get(lane)
        if failure is not None:
            answer(_FAILED, failure.encode())
            continue
        if op == _FEED:
            answer(_OK)  # received: the next block may come while this one is validated
            try:
                validator = validators.get(lane)
                if validator is None:
                    validator = validators[lane] = FastqValidator()
                validator.feed(payload)
            except Exception as exc:  # told to the lane's next request; its upload then fails
                validators.pop(lane, None)
                failures[lane] = f"{type(exc).__name__}: {exc}"
        elif op == _FINISH:
            try:
                report = (validators.pop(lane, None) or FastqValidator()).finish()
            except Exception as exc:
                answer(_FAILED, f"{type(exc).__name__}: {exc}".encode())
            else:
                answer(_OK, report_to_json(report))
        else:
            answer(_FAILED, f"unknown request {op}".encode())


def main() -> None:
    # Ctrl+C reaches the whole process group; the worker ends when the API closes its stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Replies get their own descriptor; anything printed by mistake goes to stderr instead.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
