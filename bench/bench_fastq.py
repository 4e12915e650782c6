"""Benchmark of the streaming FASTQ validator against the field's tools.

Generates a gzipped FASTQ of NovaSeq-like reads (or takes `--path`, a .fastq.gz or a plain
.fastq), then times on the same file, in `--rounds` interleaved rounds: the peers
(`gzip -dc FILE | wc -l` and ISA-L's `igzip -dc FILE | wc -l` for gzip input, `seqkit stats FILE`
for both), the validator alone fed 1 MiB chunks, one MD5 + SHA-256 pass, and the single-pass
baseline an upload path is compared with: MD5 + SHA-256 in the main thread while a worker thread
feeds the validator. Prints the median and spread (min-max) of each, MB/s of input, and the
validator's throughput relative to the goal's peer (`igzip -dc | wc -l` for gzip, `seqkit stats`
for plain); `--markdown` prints a table.

    .venv/bin/python bench/bench_fastq.py --size-mb 64
    .venv/bin/python bench/bench_fastq.py --path /tmp/bench.fastq.gz --rounds 5 --markdown
"""

import argparse
import gzip
import hashlib
import os
import platform
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.sampleFileUpload.files.fastq import FastqReport, FastqValidator

CHUNK = 1 << 20
READ_LENGTH = 150
RECORDS_PER_BATCH = 20_000
# Binned NovaSeq qualities: mostly F, some ':' ',' '#'; sequences ACGT with rare N.
QUALITY_TABLE = bytes((b"F" * 205 + b":" * 28 + b"," * 15 + b"#" * 8)[i] for i in range(256))
BASE_TABLE = bytes((b"ACGT"[i % 4] if i < 255 else ord("N")) for i in range(256))


def generate(path: Path, size_mb: int, level: int, seed: int = 1) -> None:
    """Write about `size_mb` MB of gzipped FASTQ to `path` (single gzip member)."""
    rng = random.Random(seed)
    target = size_mb * 1_000_000
    tile, x = 1101, 0
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=level) as out:
        while raw.tell() < target:
            sequences = rng.randbytes(RECORDS_PER_BATCH * READ_LENGTH).translate(BASE_TABLE)
            qualities = rng.randbytes(RECORDS_PER_BATCH * READ_LENGTH).translate(QUALITY_TABLE)
            parts = []
            for i in range(RECORDS_PER_BATCH):
                x += rng.randint(1, 40)
                if x > 32_000:
                    x, tile = 0, tile + 1
                start = i * READ_LENGTH
                parts.append(
                    b"@A00123:456:HJKLMDSXY:1:%d:%d:%d 1:N:0:ACGTACGT+TGCATGCA\n%s\n+\n%s\n"
                    % (
                        tile,
                        x,
                        rng.randint(1000, 37000),
                        sequences[start : start + READ_LENGTH],
                        qualities[start : start + READ_LENGTH],
                    )
                )
            out.write(b"".join(parts))


def shell_timed(command: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, shell=True, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, result.stdout


def gzip_wc(path: Path, tool: str = "gzip") -> tuple[float, int]:
    seconds, out = shell_timed(f"{tool} -dc '{path}' | wc -l")
    return seconds, int(out.split()[0])


def seqkit_stats(path: Path) -> tuple[float, int]:
    """`seqkit stats` (its default 2 threads); returns the time and the read count."""
    seconds, out = shell_timed(f"seqkit stats -T '{path}'")
    return seconds, int(out.splitlines()[1].split("\t")[3])


def chunks(path: Path) -> Callable[[], bytes]:
    handle = path.open("rb", buffering=0)
    return lambda: handle.read(CHUNK)


def validator_alone(path: Path) -> tuple[float, FastqReport]:
    start = time.perf_counter()
    validator = FastqValidator()
    read = chunks(path)
    while chunk := read():
        validator.feed(chunk)
    report = validator.finish()
    return time.perf_counter() - start, report


def hashes_alone(path: Path) -> tuple[float, str]:
    """One MD5 + SHA-256 pass, the least any upload does."""
    start = time.perf_counter()
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    read = chunks(path)
    while chunk := read():
        md5.update(chunk)
        sha256.update(chunk)
    return time.perf_counter() - start, md5.hexdigest()


def hashes_and_validator(path: Path) -> tuple[float, FastqReport, str]:
    """One pass as an upload does it: hash in this thread, validate in a worker thread."""
    start = time.perf_counter()
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    validator = FastqValidator()
    handoff: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
    outcome: list[FastqReport] = []

    def work() -> None:
        while (chunk := handoff.get()) is not None:
            validator.feed(chunk)
        outcome.append(validator.finish())

    worker = threading.Thread(target=work)
    worker.start()
    read = chunks(path)
    while chunk := read():
        handoff.put(chunk)
        md5.update(chunk)
        sha256.update(chunk)
    handoff.put(None)
    worker.join()
    return time.perf_counter() - start, outcome[0], md5.hexdigest()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, help="an existing .fastq.gz or .fastq to measure")
    parser.add_argument("--size-mb", type=int, default=1024, help="compressed size to generate")
    parser.add_argument("--level", type=int, default=6, help="gzip level of the generated file")
    parser.add_argument("--keep", type=Path, help="where to write (and reuse) the generated file")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every run")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()

    cleanup = None
    path = args.path or args.keep
    if path is None:
        handle, name = tempfile.mkstemp(suffix=".fastq.gz")
        os.close(handle)
        path = cleanup = Path(name)
    if args.path is None and not (args.keep and args.keep.exists()):
        started = time.perf_counter()
        generate(path, args.size_mb, args.level)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    with path.open("rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
    runs = peer_runs(path, compressed)
    peer = "igzip -dc FILE | wc -l" if compressed else "seqkit stats FILE"
    reports: list[FastqReport] = []

    def alone() -> tuple[float, int | None]:
        seconds, report = validator_alone(path)
        reports.append(report)
        return seconds, None

    def both() -> tuple[float, int | None]:
        seconds, report, _ = hashes_and_validator(path)
        reports.append(report)
        return seconds, None

    runs["validator alone"] = alone
    runs["MD5 + SHA-256 alone"] = lambda: (hashes_alone(path)[0], None)
    runs["MD5 + SHA-256 + validator (2 threads)"] = both
    times: dict[str, list[float]] = {label: [] for label in runs}
    counts: dict[str, int | None] = {}
    loads = []
    try:
        size = path.stat().st_size
        path.read_bytes()  # warm the page cache so every run reads from memory alike
        for _ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            for label, run in runs.items():
                seconds, count = run()
                times[label].append(seconds)
                counts[label] = count
    finally:
        if cleanup is not None:
            cleanup.unlink()

    report = reports[0]
    assert all(other == report for other in reports)
    assert report.valid, report.errors[:3]
    for label, count in counts.items():
        if count is not None:
            lines = count if "wc -l" in label else 4 * count
            assert lines == 4 * report.read_count, (label, count, report.read_count)
    mb = size / 1e6
    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"file {mb:.0f} MB {'compressed' if compressed else 'plain'}, "
        f"{report.decompressed_bytes / 1e6:.0f} MB FASTQ, {report.read_count} reads; "
        f"{args.rounds} rounds, load average {min(loads):.1f}-{max(loads):.1f}"
    )
    print_table(times, peer, mb, markdown=args.markdown)


def peer_runs(path: Path, compressed: bool) -> dict[str, Callable[[], tuple[float, int | None]]]:
    """The field's tools installed here, each returning its time and its line or read count."""
    runs: dict[str, Callable[[], tuple[float, int | None]]] = {}
    if compressed:
        runs["gzip -dc FILE | wc -l"] = lambda: gzip_wc(path, "gzip")
        if shutil.which("igzip"):
            runs["igzip -dc FILE | wc -l"] = lambda: gzip_wc(path, "igzip")
    if shutil.which("seqkit"):
        runs["seqkit stats FILE"] = lambda: seqkit_stats(path)
    return runs


def print_table(times: dict[str, list[float]], peer: str, mb: float, *, markdown: bool) -> None:
    peer_median = statistics.median(times[peer]) if peer in times else None
    if markdown:
        print(
            f"\n| run | seconds, median (min-max) | MB/s of input | throughput / `{peer}` |"
            "\n|---|---:|---:|---:|"
        )
    for label, taken in times.items():
        median = statistics.median(taken)
        relative = f"{peer_median / median:.2f}" if peer_median else "-"
        if markdown:
            cell = label.replace("|", "\\|")
            print(
                f"| {cell} | {median:.2f} ({min(taken):.2f}-{max(taken):.2f}) | "
                f"{mb / median:.0f} | {relative} |"
            )
        else:
            print(
                f"{label:40s} {median:8.2f} s ({min(taken):.2f}-{max(taken):.2f}) "
                f"{mb / median:8.1f} MB/s {relative:>6s}x {peer}"
            )


if __name__ == "__main__":
    main()
