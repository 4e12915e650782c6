"""Benchmark of the streaming FASTQ validator against `gzip -dc FILE | wc -l`.

Generates a gzipped FASTQ of NovaSeq-like reads (or takes `--path`), then times on the same file:
(a) `gzip -dc FILE | wc -l`, (b) the validator alone fed 1 MiB chunks, and (c) the single-pass
baseline an upload path is compared with: MD5 + SHA-256 in the main thread while a worker thread
feeds the validator. Prints MB/s of compressed input and ratios to (a); `--markdown` prints a table.

    .venv/bin/python bench/bench_fastq.py --size-mb 64
    .venv/bin/python bench/bench_fastq.py --size-mb 1024 --keep /tmp/bench.fastq.gz --markdown
"""

import argparse
import gzip
import hashlib
import os
import platform
import queue
import random
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


def gzip_wc(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    result = subprocess.run(
        f"gzip -dc '{path}' | wc -l", shell=True, check=True, capture_output=True, text=True
    )
    return time.perf_counter() - start, int(result.stdout.split()[0])


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
    parser.add_argument("--path", type=Path, help="an existing .fastq.gz to measure")
    parser.add_argument("--size-mb", type=int, default=1024, help="compressed size to generate")
    parser.add_argument("--level", type=int, default=6, help="gzip level of the generated file")
    parser.add_argument("--keep", type=Path, help="where to write (and reuse) the generated file")
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
    try:
        size = path.stat().st_size
        path.read_bytes()  # warm the page cache so every run reads from memory alike
        wc_seconds, lines = gzip_wc(path)
        alone_seconds, report = validator_alone(path)
        both_seconds, both_report, _ = hashes_and_validator(path)
    finally:
        if cleanup is not None:
            cleanup.unlink()

    assert report == both_report
    assert report.valid, report.errors[:3]
    assert lines == 4 * report.read_count, (lines, report.read_count)
    mb = size / 1e6
    rows = [
        ("gzip -dc FILE | wc -l", wc_seconds),
        ("validator alone", alone_seconds),
        ("MD5 + SHA-256 + validator (2 threads)", both_seconds),
    ]
    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"file {mb:.0f} MB compressed, {report.decompressed_bytes / 1e6:.0f} MB FASTQ, "
        f"{report.read_count} reads"
    )
    if args.markdown:
        print("\n| run | seconds | MB/s compressed | time / gzip-wc |\n|---|---:|---:|---:|")
    for label, seconds in rows:
        if args.markdown:
            cell = label.replace("|", "\\|")
            print(f"| {cell} | {seconds:.2f} | {mb / seconds:.1f} | {seconds / wc_seconds:.2f} |")
        else:
            print(
                f"{label:40s} {seconds:8.2f} s {mb / seconds:8.1f} MB/s "
                f"{seconds / wc_seconds:6.2f}x gzip-wc"
            )


if __name__ == "__main__":
    main()
