"""Benchmark of the three upload paths (multipart POST, raw PUT, tus in 8 MiB chunks) against
baselines measured in the same run, with the server's resident memory watched throughout.

Two baselines, each a standalone pass over the same file in a fresh process with the malloc
settings of the server's validator processes: the *hash pass* (MD5 + SHA-256 only, what any
upload must do) and the *validated pass* (MD5 + SHA-256 while a thread feeds the same
FastqValidator, bench_fastq.py's ``hashes_and_validator``). Each upload goes to a real uvicorn
process (tests/sampleFileUpload/servers.py) on loopback, with SQLite and local storage unless
told otherwise; multipart and PUT are sent by curl so the client costs little CPU, tus by httpx.
The run is ``--rounds`` rounds of baselines + every path, closed by one more pair of baselines;
each upload is divided by the mean of the baselines around its round, so a drift in the
machine's speed cancels out, and tus is also divided by the PUT of its own round. The report
gives the median and the spread (min-max) per path, and the load average seen. Goals: plain
(.fastq) uploads within 1.3x of the hash pass, tus within 1.1x of PUT; the peak RSS of the
server and its validator processes must stay under --rss-limit-mb (default 150) or the script
exits 1, loudly. ``--path`` takes a .fastq or a .fastq.gz (the upload's name follows it).

    .venv/bin/python bench/bench_uploads.py --path /tmp/bench.fastq --rounds 5 \
        --out docs/benchmarks/uploads.md
"""

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench.bench_fastq import cpu_model, generate  # noqa: E402
from src.sampleFileUpload.files.fastq_workers import WORKER_MALLOC  # noqa: E402
from tests.sampleFileUpload import servers  # noqa: E402
from tests.sampleFileUpload.servers import ApiServer, Seed, seed_database  # noqa: E402

MIB = 1024 * 1024
TUS_CHUNK = 8 * MIB
GOAL = 1.3
TUS_GOAL = 1.1


@dataclass
class Result:
    path: str
    seconds: float
    peak_rss: int
    md5_ok: bool
    baseline: float = 0.0  # the mean of the validated passes measured just before and after
    hash_pass: float = 0.0  # the mean of the hash passes measured just before and after
    put: float = 0.0  # the PUT of the same round

    @property
    def ratio(self) -> float:
        return self.seconds / self.baseline

    @property
    def hash_ratio(self) -> float:
        return self.seconds / self.hash_pass


class RssWatcher:
    """Samples the resident memory of a process and its children (the API's FASTQ validator
    processes) every few milliseconds; keeps the peak of their sum."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, resident(self.process))
            except psutil.Error:
                return
            time.sleep(self.interval)

    def __enter__(self) -> "RssWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def resident(process: psutil.Process) -> int:
    """RSS of ``process`` plus its children's."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


def curl(args: list[str]) -> str:
    result = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-o", "-", *args],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"curl failed ({result.returncode}): {result.stdout} {result.stderr}")
    return result.stdout


def upload_multipart(api: ApiServer, seed: Seed, path: Path, name: str) -> str:
    url = f"{api.url}/api/v1/studies/{seed.accession}/samples/S1/files"
    auth = seed.headers["Authorization"]
    return curl(["-H", f"Authorization: {auth}", "-F", f"file=@{path};filename={name}", url])


def upload_put(api: ApiServer, seed: Seed, path: Path, name: str) -> str:
    url = f"{api.url}/api/v1/studies/{seed.accession}/samples/S1/files/{name}"
    auth = seed.headers["Authorization"]
    return curl(["-H", f"Authorization: {auth}", "-H", "Expect:", "-T", str(path), url])


def upload_tus(api: ApiServer, seed: Seed, path: Path, name: str) -> str:
    """Create the upload with httpx, then PATCH it in TUS_CHUNK pieces over one keep-alive
    connection, each body sent from the file with sendfile(2): the client then costs about as
    little CPU as curl does for PUT and multipart, so the comparison is between server paths."""
    import base64
    import socket

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    size = path.stat().st_size
    headers = {**seed.headers, "Tus-Resumable": "1.0.0"}
    with httpx.Client(base_url=api.url, headers=headers, timeout=600) as client:
        created = client.post(
            "/api/v1/uploads",
            headers={
                "Upload-Length": str(size),
                "Upload-Metadata": (
                    f"study {b64(seed.accession)},sample_id {b64('S1')},filename {b64(name)}"
                ),
            },
        )
        created.raise_for_status()
        location = httpx.URL(api.url).join(created.headers["location"])
        file_id = ""
        with (
            socket.create_connection((location.host, location.port)) as sock,
            sock.makefile("rb") as replies,
            path.open("rb") as handle,
        ):
            offset = 0
            while offset < size:
                length = min(TUS_CHUNK, size - offset)
                head = (
                    f"PATCH {location.raw_path.decode()} HTTP/1.1\r\n"
                    f"Host: {location.host}:{location.port}\r\n"
                    f"Authorization: {seed.headers['Authorization']}\r\n"
                    "Tus-Resumable: 1.0.0\r\n"
                    "Content-Type: application/offset+octet-stream\r\n"
                    f"Upload-Offset: {offset}\r\nContent-Length: {length}\r\n\r\n"
                )
                sock.sendall(head.encode())
                sock.sendfile(handle, offset, length)
                status, answer = read_response(replies)
                if status != 204:
                    raise RuntimeError(f"tus PATCH failed: {status} {answer}")
                file_id = answer.get("upload-file-id", file_id)
                offset += length
        file = client.get(f"/api/v1/files/{file_id}")
        return file.text


def read_response(replies: Any) -> tuple[int, dict[str, str]]:
    """The status and headers of one HTTP/1.1 response (its body, if any, is read and
    dropped)."""
    status = int(replies.readline().split()[1])
    headers = {}
    while (line := replies.readline().decode().strip()) != "":
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    replies.read(int(headers.get("content-length", "0")))
    return status, headers


def measure(
    label: str,
    send: Callable[[ApiServer, Seed, Path, str], str],
    api: ApiServer,
    seed: Seed,
    path: Path,
    md5: str,
    name: str,
) -> Result:
    with RssWatcher(api.pid) as watcher:
        start = time.perf_counter()
        body = send(api, seed, path, name)
        seconds = time.perf_counter() - start
    ok = md5 in body and '"status":"valid"' in body
    if not ok:
        print(f"!! {label}: unexpected answer: {body[:500]}", file=sys.stderr)
    return Result(label, seconds, watcher.peak, ok)


BASELINE_SCRIPT = """
import json, sys
from pathlib import Path
from bench_fastq import hashes_alone, hashes_and_validator
if sys.argv[2] == "hash":
    seconds, md5 = hashes_alone(Path(sys.argv[1]))
    print(json.dumps([seconds, True, md5]))
else:
    seconds, report, md5 = hashes_and_validator(Path(sys.argv[1]))
    print(json.dumps([seconds, report.valid, md5]))
"""


def baseline_pass(path: Path, kind: str) -> tuple[float, bool, str]:
    """bench_fastq's one-pass baselines (``kind`` "hash" or "validated"), in a fresh process
    with the validator workers' malloc settings (WORKER_MALLOC), so that it and the uploads run
    the validator alike."""
    result = subprocess.run(
        [sys.executable, "-c", BASELINE_SCRIPT, str(path), kind],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT / "bench",
        env={**os.environ, **WORKER_MALLOC, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}"},
    )
    seconds, valid, md5 = json.loads(result.stdout)
    return float(seconds), bool(valid), str(md5)


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(
    size: int,
    compressed: bool,
    baselines: list[tuple[float, float]],
    results: list[Result],
    limit_mb: int,
    idle: int,
    database: str,
    loads: list[float],
) -> str:
    mb = size / 1e6
    paths = list(dict.fromkeys(r.path for r in results))
    rounds = len(baselines) - 1
    kind = "gzipped FASTQ" if compressed else "plain FASTQ"
    lines = [
        "# Upload benchmark",
        "",
        f"File: {size / MIB:.0f} MiB {kind} (150 bp NovaSeq-like reads). "
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Server: one uvicorn process, {database}, local storage, loopback; multipart and PUT "
        "sent with curl, tus in 8 MiB PATCHes by a keep-alive client sending each body with "
        "sendfile(2) (as little client CPU as curl).",
        "",
        f"{rounds} rounds, each: the two baselines (the hash pass: MD5 + SHA-256 alone; the "
        "validated pass: MD5 + SHA-256 with the same FastqValidator in a second thread; each in "
        "a fresh process with the validator workers' malloc settings), then every path; a last "
        "pair of baselines closes the run. Each upload is divided by the mean of the baselines "
        "just before and after its round, tus also by the PUT of its round. Cells: median "
        "(min-max) over the rounds. Load average (1 min) during the run: "
        + (f"{min(loads):.1f}-{max(loads):.1f}." if loads else "not read."),
        "",
        "Hash passes: "
        + ", ".join(f"{h:.2f} s" for h, _ in baselines)
        + ". Validated passes: "
        + ", ".join(f"{v:.2f} s" for _, v in baselines)
        + ".",
        "",
        f"| path | seconds | MB/s | time / hash pass (goal <= {GOAL} plain) "
        f"| time / validated pass | time / PUT (goal <= {TUS_GOAL} tus) "
        f"| peak RSS, API + validator (limit {limit_mb} MiB) | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        mine = [r for r in results if r.path == path]
        seconds = statistics.median(r.seconds for r in mine)
        versus_put = spread([r.seconds / r.put for r in mine]) if path == "tus" else "-"
        lines.append(
            f"| {path} | {spread([r.seconds for r in mine])} | {mb / seconds:.0f} | "
            f"{spread([r.hash_ratio for r in mine])} | {spread([r.ratio for r in mine])} | "
            f"{versus_put} | {max(r.peak_rss for r in mine) / MIB:.0f} MiB | "
            f"{'valid, md5 ok' if all(r.md5_ok for r in mine) else 'WRONG'} |"
        )
    lines += [
        "",
        f"Server RSS at rest (after start-up and one small upload, validator process "
        f"included): {idle / MIB:.0f} MiB; almost all of it is the imported application "
        "(SQLAlchemy, FastAPI, PyJWT with cryptography, ...), so the uploads add the difference.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="compressed size to generate")
    parser.add_argument("--path", type=Path, help="use this .fastq.gz instead of generating")
    parser.add_argument("--keep", type=Path, help="generate to this path and keep it")
    parser.add_argument("--rss-limit-mb", type=int, default=150)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: any free)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of baseline + every path")
    parser.add_argument(
        "--paths",
        default="multipart,put,tus",
        help="comma-separated upload paths to measure (default: all three)",
    )
    args = parser.parse_args()
    senders = {"multipart": upload_multipart, "put": upload_put, "tus": upload_tus}
    labels = [label.strip() for label in args.paths.split(",")]
    if args.port:
        servers.free_port = lambda: args.port

    with tempfile.TemporaryDirectory(prefix="bench-uploads-") as scratch:
        work = Path(scratch)
        path = args.path or args.keep or work / "bench.fastq.gz"
        if not path.exists():
            print(f"generating {args.size_mb} MiB of gzipped FASTQ at {path} ...", flush=True)
            generate(path, int(args.size_mb * MIB / 1_000_000), level=1)
        size = path.stat().st_size
        with path.open("rb") as handle:
            compressed = handle.read(2) == b"\x1f\x8b"
        suffix = ".fq.gz" if compressed else ".fq"
        md5 = file_md5(path)
        database = args.database_url or f"sqlite+aiosqlite:///{work / 'bench.db'}"
        seed = asyncio.run(seed_database(database))
        # Production settings where the test server's differ (its tus lease is 2 s).
        api = ApiServer(
            database, work / "data", LOG_LEVEL="WARNING", TUS_LEASE_SECONDS="60"
        ).start()
        try:
            warm = work / "warm-up.fastq"
            warm.write_bytes(b"@r1\nACGT\n+\nIIII\n")
            upload_put(api, seed, warm, "warm-up.fastq")  # first-request imports and caches
            idle = resident(psutil.Process(api.pid))

            loads: list[float] = []

            def baseline() -> tuple[float, float]:
                print("baselines ...", flush=True)
                loads.append(os.getloadavg()[0])
                seconds = []
                for kind in ("hash", "validated"):
                    taken, valid, baseline_md5 = baseline_pass(path, kind)
                    if baseline_md5 != md5 or not valid:
                        raise SystemExit("the baseline pass disagrees with the file")
                    seconds.append(taken)
                return seconds[0], seconds[1]

            baselines = [baseline()]
            results: list[Result] = []
            for number in range(1, args.rounds + 1):
                this_round = []
                for label in labels:
                    print(f"round {number}: {label} ...", flush=True)
                    this_round.append(
                        measure(
                            label, senders[label], api, seed, path, md5, f"{label}-{number}{suffix}"
                        )
                    )
                    loads.append(os.getloadavg()[0])
                baselines.append(baseline())
                put = next((r.seconds for r in this_round if r.path == "put"), float("nan"))
                for result in this_round:
                    result.baseline = (baselines[-2][1] + baselines[-1][1]) / 2
                    result.hash_pass = (baselines[-2][0] + baselines[-1][0]) / 2
                    result.put = put
                    print(
                        f"  {result.path}: {result.seconds:.2f} s, {result.hash_ratio:.2f}x hash, "
                        f"{result.ratio:.2f}x validated, {result.seconds / put:.2f}x put"
                    )
                results += this_round
        finally:
            api.close()
    text = report(
        size,
        compressed,
        baselines,
        results,
        args.rss_limit_mb,
        idle,
        "PostgreSQL" if args.database_url else "SQLite",
        loads,
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    failures = [r for r in results if r.peak_rss > args.rss_limit_mb * MIB or not r.md5_ok]
    if failures:
        for r in failures:
            print(
                f"FAILED: {r.path}: peak RSS {r.peak_rss / MIB:.0f} MiB "
                f"(limit {args.rss_limit_mb}), result {'ok' if r.md5_ok else 'WRONG'}",
                file=sys.stderr,
            )
        sys.exit(1)


if __name__ == "__main__":
    main()
