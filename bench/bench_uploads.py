"""Benchmark of the three upload paths (multipart POST, raw PUT, tus in 8 MiB chunks) against a
baseline measured in the same run, with the server's resident memory watched throughout.

The baseline is one standalone pass over the same file computing MD5 + SHA-256 and running the
same FastqValidator (bench_fastq.py's ``hashes_and_validator``), in a fresh process with the
malloc settings of the server's validator processes. Each upload goes to a real uvicorn process
(tests/sampleFileUpload/servers.py) on loopback, with SQLite and local storage unless told
otherwise; multipart and PUT are sent by curl so the client costs little CPU, tus by httpx. The
run is ``--rounds`` rounds of baseline + every path, closed by one more baseline; each upload is
divided by the mean of the baselines around its round, so a drift in the machine's speed cancels
out, and the report gives the median per path. The goal is every path within 1.3x; the peak RSS
of the server and its validator processes must stay under --rss-limit-mb (default 150) or the
script exits 1, loudly.

    .venv/bin/python bench/bench_uploads.py --size-mb 1024 --keep /tmp/bench.fastq.gz \
        --rounds 5 --out docs/benchmarks/uploads.md
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

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench.bench_fastq import cpu_model, generate  # noqa: E402
from src.sampleFileUpload.files.fastq_workers import WORKER_MALLOC  # noqa: E402
from tests.sampleFileUpload.servers import ApiServer, Seed, seed_database  # noqa: E402

MIB = 1024 * 1024
TUS_CHUNK = 8 * MIB
GOAL = 1.3


@dataclass
class Result:
    path: str
    seconds: float
    peak_rss: int
    md5_ok: bool
    baseline: float = 0.0  # the mean of the baselines measured just before and after

    @property
    def ratio(self) -> float:
        return self.seconds / self.baseline


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
    import base64

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
        location = created.headers["location"]
        offset, response = 0, None
        with path.open("rb") as handle:
            while chunk := handle.read(TUS_CHUNK):
                response = client.patch(
                    location,
                    headers={
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": str(offset),
                    },
                    content=chunk,
                )
                if response.status_code != 204:
                    raise RuntimeError(f"tus PATCH failed: {response.status_code} {response.text}")
                offset += len(chunk)
        assert response is not None
        file = client.get(f"/api/v1/files/{response.headers['upload-file-id']}")
        return file.text


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
from bench_fastq import hashes_and_validator
seconds, report, md5 = hashes_and_validator(Path(sys.argv[1]))
print(json.dumps([seconds, report.valid, md5]))
"""


def baseline_pass(path: Path) -> tuple[float, bool, str]:
    """bench_fastq's one-pass baseline, in a fresh process with the validator workers' malloc
    settings (WORKER_MALLOC), so that it and the uploads run the validator alike."""
    result = subprocess.run(
        [sys.executable, "-c", BASELINE_SCRIPT, str(path)],
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


def report(
    size: int,
    baselines: list[float],
    results: list[Result],
    limit_mb: int,
    idle: int,
    database: str,
) -> str:
    mb = size / 1e6
    paths = list(dict.fromkeys(r.path for r in results))
    rounds = len(baselines) - 1
    lines = [
        "# Upload benchmark",
        "",
        f"File: {size / MIB:.0f} MiB gzipped FASTQ (150 bp NovaSeq-like reads). "
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Server: one uvicorn process, {database}, local storage, loopback; multipart and PUT "
        "sent with curl, tus with httpx in 8 MiB PATCHes.",
        "",
        f"{rounds} rounds, each: the baseline (one standalone pass of MD5 + SHA-256 + the same "
        "FastqValidator, in a process with the validator workers' malloc settings), then every "
        "path; a last baseline closes the run. Each upload is divided by the mean of the "
        "baselines just before and after its round, so a drift in the machine's speed during "
        "the run cancels out.",
        "",
        "Baselines: " + ", ".join(f"{b:.2f} s" for b in baselines) + ".",
        "",
        f"| path | median time / baseline (goal <= {GOAL}) | every round | median seconds "
        f"| median MB/s | peak RSS, API + validator (limit {limit_mb} MiB) | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        mine = [r for r in results if r.path == path]
        ratio = statistics.median(r.ratio for r in mine)
        seconds = statistics.median(r.seconds for r in mine)
        lines.append(
            f"| {path} | {ratio:.2f} {'met' if ratio <= GOAL else 'MISSED'} | "
            + ", ".join(f"{r.ratio:.2f}" for r in mine)
            + f" | {seconds:.2f} | {mb / seconds:.0f} | "
            f"{max(r.peak_rss for r in mine) / MIB:.0f} MiB | "
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
    parser.add_argument("--rounds", type=int, default=3, help="rounds of baseline + every path")
    parser.add_argument(
        "--paths",
        default="multipart,put,tus",
        help="comma-separated upload paths to measure (default: all three)",
    )
    args = parser.parse_args()
    senders = {"multipart": upload_multipart, "put": upload_put, "tus": upload_tus}
    labels = [label.strip() for label in args.paths.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-uploads-") as scratch:
        work = Path(scratch)
        path = args.path or args.keep or work / "bench.fastq.gz"
        if not path.exists():
            print(f"generating {args.size_mb} MiB of gzipped FASTQ at {path} ...", flush=True)
            generate(path, int(args.size_mb * MIB / 1_000_000), level=1)
        size = path.stat().st_size
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

            def baseline() -> float:
                print("baseline ...", flush=True)
                seconds, valid, baseline_md5 = baseline_pass(path)
                if baseline_md5 != md5 or not valid:
                    raise SystemExit("the baseline pass disagrees with the file")
                return seconds

            baselines = [baseline()]
            results: list[Result] = []
            for number in range(1, args.rounds + 1):
                this_round = []
                for label in labels:
                    print(f"round {number}: {label} ...", flush=True)
                    this_round.append(
                        measure(
                            label, senders[label], api, seed, path, md5, f"{label}-{number}.fq.gz"
                        )
                    )
                baselines.append(baseline())
                for result in this_round:
                    result.baseline = (baselines[-2] + baselines[-1]) / 2
                    print(f"  {result.path}: {result.seconds:.2f} s, {result.ratio:.2f}x")
                results += this_round
        finally:
            api.close()
    text = report(
        size,
        baselines,
        results,
        args.rss_limit_mb,
        idle,
        "PostgreSQL" if args.database_url else "SQLite",
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
