"""Benchmark of the command-line client: a 1 GiB study of 8 files (8 x 128 MiB gzipped FASTQ)
uploaded by ``mosaic upload --jobs 1, 2, 4`` against the same files sent by tuspy one at a
time, with the client's peak RSS.

The server is one real uvicorn process (tests/sampleFileUpload/servers.py, as in
bench_uploads.py) on loopback, with SQLite (or --database-url) and local storage. The client is
the installed ``mosaic`` console script in a subprocess, as a user runs it, with a fresh config
folder each time (so it hashes every file: its SHA-256 is declared at creation); tuspy sends the
same files in the same chunk size, one after the other, declaring nothing. The files are deleted
between uploads. Rounds are interleaved (every variant once per round, the order rotated each
round) and each client time is divided by the tuspy time of its own round, so a drift in the
machine's speed cancels out; the report gives the median ratio and its spread over the rounds.

    .venv/bin/python bench/bench_client.py --rounds 3 --keep /tmp/bench-client \
        --out docs/benchmarks/client.md
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tusclient import client as tus_client  # noqa: E402

from bench.bench_fastq import cpu_model, generate  # noqa: E402
from src.database import upgrade_database  # noqa: E402
from tests.sampleFileUpload.servers import ApiServer  # noqa: E402

MIB = 1024 * 1024
FILES = 8
CHUNK = 64 * MIB
MOSAIC = Path(sys.executable).parent / "mosaic"
EMAIL = "bench@example.org"
PASSWORD = "bench-password-0123456789"


@dataclass
class Run:
    variant: str
    round: int
    seconds: float
    peak_rss: int = 0
    ratio: float = 0.0


class Server:
    """The API plus a researcher's session and a draft study with sample S1."""

    def __init__(self, work: Path, database_url: str, fastq_workers: int) -> None:
        upgrade_database(database_url)
        self.api = ApiServer(
            database_url,
            work / "data",
            LOG_LEVEL="WARNING",
            TUS_LEASE_SECONDS="60",
            LOGIN_RATE_LIMIT="1000/minute",
            LOGIN_IP_RATE_LIMIT="1000/minute",
            FASTQ_WORKERS=str(fastq_workers),
        ).start()
        self.url = self.api.url
        httpx.post(
            f"{self.url}/api/v1/auth/register",
            json={"email": EMAIL, "password": PASSWORD, "full_name": "Bench Mark"},
        ).raise_for_status()
        study = httpx.post(
            f"{self.url}/api/v1/studies",
            headers=self.headers(),
            json={
                "title": "Client benchmark",
                "description": "8 x 128 MiB",
                "authors": ["Bench Mark"],
                "samples": [{"sample_id": "S1", "organism": "Mus musculus"}],
            },
        )
        study.raise_for_status()
        self.accession = study.json()["accession"]

    def token(self) -> str:
        response = httpx.post(
            f"{self.url}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def stored(self) -> list[dict[str, object]]:
        url = f"{self.url}/api/v1/studies/{self.accession}/samples/S1/files"
        response = httpx.get(url, headers=self.headers())
        response.raise_for_status()
        files: list[dict[str, object]] = response.json()
        return files

    def clear(self) -> None:
        headers = self.headers()
        for file in self.stored():
            httpx.delete(
                f"{self.url}/api/v1/files/{file['id']}", headers=headers
            ).raise_for_status()


def client_upload(server: Server, folder: Path, jobs: int, work: Path) -> tuple[float, int]:
    config = work / f"config-{time.monotonic_ns()}"
    env = {
        **os.environ,
        "MOSAIC_URL": server.url,
        "MOSAIC_TOKEN": server.token(),
        "MOSAIC_CONFIG_DIR": str(config),
    }
    command = [str(MOSAIC), "upload", server.accession, str(folder), "--jobs", str(jobs)]
    start = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--chunk-size", str(CHUNK), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Peak RSS: the kernel's high-water mark of the client's own memory (VmHWM), read a few
    # times a second. Not psutil over the process tree every few milliseconds (that scan of
    # /proc takes CPU from the server being measured), nor wait4's ru_maxrss (it counts the
    # benchmark process's memory that the child had before its exec).
    peak = 0
    status = Path(f"/proc/{process.pid}/status")
    reader = threading.Thread(target=lambda: outputs.extend(process.communicate()))
    outputs: list[bytes] = []
    reader.start()
    while reader.is_alive():
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        reader.join(timeout=0.25)
    seconds = time.perf_counter() - start
    stdout, stderr = outputs
    shutil.rmtree(config, ignore_errors=True)
    if process.returncode != 0:
        raise SystemExit(f"mosaic upload failed ({process.returncode}): {stdout!r} {stderr!r}")
    statuses = {f["status"] for f in json.loads(stdout)["files"]}
    if statuses != {"valid"}:
        raise SystemExit(f"mosaic upload: unexpected statuses {statuses}")
    return seconds, peak


def tuspy_upload(server: Server, files: list[Path]) -> float:
    client = tus_client.TusClient(f"{server.url}/api/v1/uploads", headers=server.headers())
    start = time.perf_counter()
    for path in files:
        uploader = client.uploader(
            file_path=str(path),
            chunk_size=CHUNK,
            metadata={"study": server.accession, "sample_id": "S1", "filename": path.name},
        )
        uploader.upload()
    seconds = time.perf_counter() - start
    statuses = {f["status"] for f in server.stored()}
    if statuses != {"valid"} or len(server.stored()) != len(files):
        raise SystemExit(f"tuspy: unexpected statuses {statuses}")
    return seconds


def report(runs: list[Run], files: list[Path], args: argparse.Namespace, started: str) -> str:
    total = sum(path.stat().st_size for path in files)
    variants = list(dict.fromkeys(run.variant for run in runs))
    lines = [
        "# Client benchmark",
        "",
        f"Study: {len(files)} gzipped FASTQ files, {total / MIB:.0f} MiB in all "
        f"({total / len(files) / MIB:.0f} MiB each, 150 bp NovaSeq-like reads), one sample. "
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Server: one uvicorn process, FASTQ_WORKERS={args.fastq_workers}, "
        f"{'PostgreSQL' if args.database_url else 'SQLite'}, local storage, loopback. "
        f"Started {started}.",
        "",
        f"{args.rounds} interleaved rounds (each variant once per round, the order rotated). "
        "`mosaic upload` runs as a subprocess with a fresh config folder, so it hashes every "
        "file (SHA-256 declared at creation) and has no resume state; tuspy (1.1.0) sends the "
        f"same files one at a time, {CHUNK // MIB} MiB chunks for both, declaring nothing. "
        "Ratio: client time / tuspy time in the same round.",
        "",
        "| variant | median seconds | MB/s | median ratio to tuspy | every round | "
        "client peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for variant in variants:
        mine = [run for run in runs if run.variant == variant]
        seconds = statistics.median(run.seconds for run in mine)
        ratio = statistics.median(run.ratio for run in mine)
        rss = f"{max(run.peak_rss for run in mine) / MIB:.0f} MiB" if mine[0].peak_rss else "-"
        lines.append(
            f"| {variant} | {seconds:.2f} | {total / 1e6 / seconds:.0f} | {ratio:.2f} | "
            + ", ".join(f"{run.ratio:.2f}" for run in mine)
            + f" | {rss} |"
        )
    lines += ["", "Every run, in order:", ""]
    lines += [
        f"- round {run.round}: {run.variant}: {run.seconds:.2f} s"
        + (f", peak RSS {run.peak_rss / MIB:.0f} MiB" if run.peak_rss else "")
        for run in runs
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", default="1,2,4", help="the client's --jobs values to measure")
    parser.add_argument("--size-mb", type=int, default=128, help="size of each of the 8 files")
    parser.add_argument("--keep", type=Path, help="generate the files here and keep them")
    parser.add_argument("--fastq-workers", type=int, default=2, help="the server's validators")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    args = parser.parse_args()
    if not MOSAIC.exists():
        raise SystemExit(f"{MOSAIC} is missing: pip install ./client")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="bench-client-") as scratch:
        work = Path(scratch)
        folder = args.keep or work / "run"
        folder.mkdir(parents=True, exist_ok=True)
        files = [folder / f"S1_L00{n}_R1_001.fastq.gz" for n in range(1, FILES + 1)]
        for seed, path in enumerate(files, start=1):
            if not path.exists():
                print(f"generating {path} ...", flush=True)
                generate(path, int(args.size_mb * MIB / 1_000_000), level=1, seed=seed)
        database = args.database_url or f"sqlite+aiosqlite:///{work / 'bench.db'}"
        server = Server(work, database, args.fastq_workers)
        variants = ["tuspy", *(f"mosaic --jobs {jobs}" for jobs in args.jobs.split(","))]
        runs: list[Run] = []
        try:
            for number in range(1, args.rounds + 1):
                shift = (number - 1) % len(variants)
                this_round: list[Run] = []
                for variant in variants[shift:] + variants[:shift]:
                    server.clear()
                    print(f"round {number}: {variant} ...", flush=True)
                    if variant == "tuspy":
                        this_round.append(Run(variant, number, tuspy_upload(server, files)))
                    else:
                        jobs = int(variant.rsplit(" ", 1)[1])
                        seconds, peak = client_upload(server, folder, jobs, work)
                        this_round.append(Run(variant, number, seconds, peak))
                    print(f"  {this_round[-1].seconds:.2f} s", flush=True)
                baseline = next(run.seconds for run in this_round if run.variant == "tuspy")
                for run in this_round:
                    run.ratio = run.seconds / baseline
                runs += sorted(this_round, key=lambda run: variants.index(run.variant))
        finally:
            server.api.close()
        text = report(runs, files, args, started)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
