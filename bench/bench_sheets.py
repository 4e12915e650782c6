"""Sample-sheet throughput: parse + validate 50,000 rows, next to a plain csv.DictReader pass.

Run: ``.venv/bin/python bench/bench_sheets.py [rows]``. Writes docs/benchmarks/sheets.md.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.sampleFileUpload.sheets.parse import parse_sheet
from src.sampleFileUpload.sheets.validate import validate_sheet
from src.sampleFileUpload.sheets.write import write_sheet

ROOT = Path(__file__).resolve().parents[1]
# The heading of the section bench_sheet_import.py writes in the same file (kept when this writes).
IMPORT_SECTION = "## Import through the API"
SEXES = ["female", "male", "F", "M", "unknown"]
ORGANISMS = ["Mus musculus", "Homo sapiens", "mouse", "Danio rerio"]


def samples(count: int) -> list[dict[str, object]]:
    return [
        {
            "sample_id": f"S{i:06d}",
            "sample": f"Sample {i}",
            "sample_group": f"group {i % 10}",
            "sample_project": "Benchmark",
            "description": f"sample number {i}, prepared for the benchmark",
            "organism": ORGANISMS[i % len(ORGANISMS)],
            "tissue": "liver",
            "sex": SEXES[i % len(SEXES)],
            "cell_line": None,
            "mouse_model": "C57BL/6J",
            "biomaterial_provider": "Charles River",
            "date_sample_prep": f"20{10 + i % 14}-0{1 + i % 9}-1{i % 10}",
            "biological_repeat": 1 + i % 4,
            "attributes": {"Batch": f"b{i % 7}", "Weight": str(20 + i % 5)},
        }
        for i in range(count)
    ]


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    rows = samples(count)
    results: list[tuple[str, int, float, float]] = []
    for sheet_format in ("csv", "tsv", "xlsx", "json"):
        data = write_sheet(rows, format=sheet_format)
        parse_seconds = best_of(3, partial(parse_sheet, data, filename=f"b.{sheet_format}"))

        def full(d: bytes = data, f: str = sheet_format) -> None:
            report = validate_sheet(parse_sheet(d, filename=f"b.{f}"))
            assert report.valid, report.errors[:3]
            assert len(report.samples) == count

        results.append((sheet_format, len(data), parse_seconds, best_of(3, full)))
    csv_data = write_sheet(rows, format="csv")

    def full_csv() -> None:
        assert validate_sheet(parse_sheet(csv_data, filename="b.csv")).valid

    def dict_reader() -> None:
        text = csv_data.decode("utf-8-sig")
        assert sum(1 for _ in csv.DictReader(io.StringIO(text, newline=""))) == count

    baseline = best_of(3, dict_reader)
    # Interleaved rounds for the csv ratio: each parse + validate next to the DictReader pass
    # timed just before it, so that other work on the machine moves both alike.
    csv_ratios = [timed(full_csv) / timed(dict_reader) for _ in range(5)]
    lines = [
        "# Sample-sheet benchmark",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {platform.machine()}, Python {platform.python_version()}",
        f"- rows: {count} (13 checklist columns + 2 attributes; sex and organism aliases on "
        "some rows, so NORMALISED warnings are produced)",
        "- best of 3 runs, one process (no database, no HTTP), `bench/bench_sheets.py`",
        "",
        "| format | file size | parse only | parse + validate | rows/s (parse + validate) |",
        "|---|---|---|---|---|",
    ]
    for sheet_format, size, parse_seconds, full_seconds in results:
        lines.append(
            f"| {sheet_format} | {size / 1e6:.1f} MB | {parse_seconds:.2f} s | "
            f"{full_seconds:.2f} s | {count / full_seconds:,.0f} |"
        )
    lines.append(
        f"| csv, plain `csv.DictReader` (baseline, no checks) | {len(csv_data) / 1e6:.1f} MB | "
        f"{baseline:.2f} s | - | {count / baseline:,.0f} |"
    )
    load = os.getloadavg()
    lines += [
        "",
        "csv parse + validate, in 5 interleaved rounds, costs "
        f"{statistics.median(csv_ratios):.1f}x a bare DictReader pass (median; "
        f"{min(csv_ratios):.1f}-{max(csv_ratios):.1f}); load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        "",
    ]
    output = ROOT / "docs" / "benchmarks" / "sheets.md"
    text = output.read_text() if output.exists() else ""
    kept = text[text.index(IMPORT_SECTION) :] if IMPORT_SECTION in text else ""
    output.write_text("\n".join(lines) + ("\n" + kept if kept else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
