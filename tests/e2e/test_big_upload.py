"""A 1 GiB FASTQ through nginx, up and down, with memory bounded at every hop.

The file is written to a temporary folder (never held in memory) and sent with a raw PUT from a
generator of 1 MiB blocks, so the client is bounded too. While it streams, a thread samples the
resident memory of each API worker and of nginx's processes; each must stay under
``MEMORY_LIMIT``. The download then goes through nginx, which serves the bytes itself
(X-Accel-Redirect, local storage): the API's processes write almost nothing in the meantime
(``/proc/<pid>/io`` wchar counts every write to a socket or a file), and the SHA-256 of what
arrives matches. One test, marked ``slow``; it also runs in CI (measured on a 2-core machine:
see the report printed with ``-s``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.helpers import bearer, expect, login

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GIB = 1024**3
MIB = 1024**2
WARM_UP_SIZE = 128 * MIB
# nginx streams uploads (no request buffering) and sends files with sendfile: a few MiB each.
NGINX_MEMORY_LIMIT = 150 * MIB
# The bound. An idle worker is ~105 MiB resident (the imported application); streaming
# one upload (hashing, FASTQ validation, storage writes) adds a plateau of ~25 MiB that does not
# grow with the file's size, which the last assertion checks.
API_MEMORY_LIMIT = 150 * MIB
BLOCK = MIB
READ_LENGTH = 150
BATCH_READS = 10_000
PASSWORD = "big-upload-password-0123"


def write_fastq(path: Path, size: int) -> tuple[int, str, str, int]:
    """Write at least ``size`` bytes of valid FASTQ; (bytes, md5, sha256, reads).

    One formatted batch of records is reused with a per-batch name prefix, so writing a gibibyte
    costs little more than the disk and the two hashes."""
    sequence = ("ACGTTGCAAC" * 16)[:READ_LENGTH]
    quality = ("FFFF:FFFF," * 16)[:READ_LENGTH]
    template = "".join(
        f"@BATCHNUM:{i}\n{sequence}\n+\n{quality}\n" for i in range(BATCH_READS)
    ).encode()
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    written = reads = batch = 0
    with path.open("wb") as out:
        while written < size:
            data = template.replace(b"BATCHNUM", b"%08d" % batch)
            out.write(data)
            md5.update(data)
            sha256.update(data)
            written += len(data)
            reads += BATCH_READS
            batch += 1
    return written, md5.hexdigest(), sha256.hexdigest(), reads


def blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while block := source.read(BLOCK):
            yield block


class PeakMemory:
    """Samples the resident memory of processes every 50 ms in a thread; keeps each one's peak.

    A process's memory includes its children's: an API worker's FASTQ validator processes are
    part of what it costs."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for group, processes in self.groups.items():
                for process in processes:
                    try:
                        rss = process.memory_info().rss + sum(
                            child.memory_info().rss for child in process.children(recursive=True)
                        )
                    except psutil.NoSuchProcess:
                        continue
                    name = f"{group} {process.pid}"
                    self.peaks[name] = max(self.peaks.get(name, 0), rss)
            time.sleep(0.05)

    def over(self, limit: int, group: str = "") -> dict[str, int]:
        return {
            name: peak
            for name, peak in self.peaks.items()
            if peak >= limit and name.startswith(group)
        }

    def summary(self) -> str:
        return ", ".join(
            f"{name}: {peak / MIB:.0f} MiB" for name, peak in sorted(self.peaks.items())
        )


def written_chars(processes: list[psutil.Process]) -> int:
    return sum(process.io_counters().write_chars for process in processes)


def put_file(
    client: httpx.Client, headers: dict[str, str], url: str, path: Path, sha256: str
) -> httpx.Response:
    """A raw PUT streamed from the file in 1 MiB blocks, with its length declared."""
    return client.put(
        url,
        headers={
            **headers,
            "Content-Length": str(path.stat().st_size),
            "Content-Type": "application/octet-stream",
            "X-Checksum-SHA256": sha256,
        },
        content=blocks(path),
    )


def test_one_gib_through_nginx(local_stack: Stack, tmp_path: Path) -> None:
    stack = local_stack
    started = time.monotonic()
    warm_up, big = tmp_path / "warm-up.fastq", tmp_path / "big.fastq"
    *_, warm_up_sha256, _ = write_fastq(warm_up, WARM_UP_SIZE)
    size, md5, sha256, reads = write_fastq(big, GIB)
    generated = time.monotonic()

    with stack.client(timeout=600.0) as client:
        email = f"big.{time.time_ns()}@example.org"
        expect(
            client.post(
                "/api/v1/auth/register",
                json={"email": email, "password": PASSWORD, "full_name": "Big Uploader"},
            ),
            201,
        )
        headers = bearer(login(client, email, PASSWORD))
        study = expect(
            client.post(
                "/api/v1/studies",
                headers=headers,
                json={"title": "One gibibyte", "description": "", "authors": ["B. U."]},
            ),
            201,
        ).json()["accession"]
        for sample_id in ("WARM", "BIG"):
            expect(
                client.post(
                    f"/api/v1/studies/{study}/samples",
                    headers=headers,
                    json={"sample_id": sample_id, "organism": "Mus musculus"},
                ),
                201,
            )
        files = f"/api/v1/studies/{study}/samples"
        processes = {"api": stack.api_workers(), "nginx": stack.nginx.processes()}
        # A 128 MiB upload first: the plateau a worker reaches once it has streamed a file.
        with PeakMemory(processes) as warm_up_memory:
            response = put_file(
                client, headers, f"{files}/WARM/files/w.fastq", warm_up, warm_up_sha256
            )
        assert expect(response, 201).json()["status"] == "valid"
        upload_started = time.monotonic()
        with PeakMemory(processes) as upload_memory:
            response = put_file(client, headers, f"{files}/BIG/files/big.fastq", big, sha256)
        uploaded = time.monotonic()
        record = expect(response, 201).json()
        assert record["status"] == "valid", record["errors"]
        assert (record["size"], record["md5"], record["sha256"]) == (size, md5, sha256)
        validators = [
            child
            for worker in processes["api"]
            for child in worker.children()
            if "src.sampleFileUpload.files.fastq_workers" in " ".join(child.cmdline())
        ]
        assert validators, "the file was validated outside a FASTQ worker process"
        assert record["read_count"] == reads

        # The download: the API authorises and hands over; nginx sends the gibibyte.
        before = written_chars(processes["api"])
        received = hashlib.sha256()
        with (
            PeakMemory(processes) as download_memory,
            client.stream("GET", record["download_url"], headers=headers) as download,
        ):
            expect(download, 200)
            assert int(download.headers["content-length"]) == size
            for block in download.iter_raw(BLOCK):
                received.update(block)
        api_wrote = written_chars(processes["api"]) - before
        downloaded = time.monotonic()
        assert received.hexdigest() == sha256
        assert api_wrote < 4 * MIB, f"the API wrote {api_wrote} bytes while nginx served 1 GiB"

        expect(client.delete(f"/api/v1/studies/{study}", headers=headers), 204)
    stack.assert_running()

    upload_seconds = uploaded - upload_started
    report = (
        f"\n1 GiB e2e: generate {generated - started:.1f} s, upload {upload_seconds:.1f} s "
        f"({size / MIB / upload_seconds:.0f} MiB/s), "
        f"download {downloaded - uploaded:.1f} s; the API wrote {api_wrote} bytes meanwhile"
        f"\npeak RSS, 128 MiB upload: {warm_up_memory.summary()}"
        f"\npeak RSS, 1 GiB upload: {upload_memory.summary()}"
        f"\npeak RSS, 1 GiB download: {download_memory.summary()}"
    )
    print(report)
    for memory in (upload_memory, download_memory):
        assert not memory.over(API_MEMORY_LIMIT, "api"), report
        assert not memory.over(NGINX_MEMORY_LIMIT, "nginx"), report
    # Bounded, not merely small: eight times the data takes no more memory than the warm-up.
    for name, peak in upload_memory.peaks.items():
        assert peak < warm_up_memory.peaks[name] + 16 * MIB, report
