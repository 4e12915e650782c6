"""Sample-sheet import through the API, next to a plain csv.DictReader pass over the same file.

50,000 rows of csv (13 checklist columns and 2 attributes) are validated, then appended to a new
study, through the HTTP API of an app running in this process (httpx's ASGI transport). Rounds
are interleaved: each round times a DictReader pass, the validate request, another DictReader
pass and the append request, and each request's ratio is taken to the DictReader pass just
before it, so a machine shared with other work moves both sides of a ratio alike. One warm-up
round (the app's first requests build their routes' state) is not counted. Besides wall clock,
the process's CPU time (every thread) is taken for each pass: the steadier reading on a loaded
machine (on PostgreSQL it leaves out the server's share).

Run: ``.venv/bin/python bench/bench_sheet_import.py [--rows 50000] [--rounds 5]
[--database sqlite postgres] [--write]``. Prints the results; ``--write`` puts them in
docs/benchmarks/sheets.md (the section after the per-format table of bench_sheets.py).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_sheets import IMPORT_SECTION, cpu_model, samples
from src.app import create_app
from src.config import Settings
from src.database import upgrade_database
from src.sampleFileUpload.sheets.write import write_sheet
from tests.databases import create_database, drop_database
from tests.factories import auth_headers, create_user
from tests.lifespan import running

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def dict_reader_pass(data: bytes, rows: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one DictReader pass over the sheet."""
    start, cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert count == rows
    return seconds, cpu


async def measure(database: str, rows: int, rounds: int) -> dict[str, list[float]]:
    """Seconds of each pass in each counted round: dictreader_v, validate, dictreader_a,
    append, and the same with ``cpu_`` for the process's CPU seconds."""
    data = write_sheet(samples(rows), format="csv")
    passes = ("dictreader_v", "validate", "dictreader_a", "append")
    times: dict[str, list[float]] = {key: [] for key in passes}
    times.update({f"cpu_{key}": [] for key in passes})
    with tempfile.TemporaryDirectory() as folder:
        name = None
        if database == "postgres":
            name, url = await create_database(POSTGRES, "mosaic_bench")
        else:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
        try:
            await asyncio.to_thread(upgrade_database, url)
            settings = Settings(
                _env_file=None,
                database_url=url,
                data_dir=Path(folder) / "data",
                secret_key="bench-secret-key-bench-secret-key-0123",
            )
            app = create_app(settings)
            async with running(app):
                async with app.state.sessionmaker() as session:
                    user = await create_user(session)
                    await session.commit()
                headers = auth_headers(settings, user)
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://bench", timeout=600
                ) as client:
                    for round_number in range(rounds + 1):
                        study = (
                            await client.post(
                                "/api/v1/studies", headers=headers, json={"title": "b"}
                            )
                        ).json()
                        url_sheet = f"/api/v1/studies/{study['accession']}/sample-sheet"
                        files = {"file": ("bench.csv", data)}
                        baseline_v, cpu_baseline_v = dict_reader_pass(data, rows)
                        start, cpu = time.perf_counter(), time.process_time()
                        validated = await client.post(url_sheet, headers=headers, files=files)
                        validate = time.perf_counter() - start
                        cpu_validate = time.process_time() - cpu
                        assert validated.status_code == 200, validated.text[:300]
                        assert validated.json()["valid"], validated.json()["errors"][:3]
                        baseline_a, cpu_baseline_a = dict_reader_pass(data, rows)
                        start, cpu = time.perf_counter(), time.process_time()
                        imported = await client.post(
                            url_sheet, headers=headers, files=files, params={"mode": "append"}
                        )
                        append = time.perf_counter() - start
                        cpu_append = time.process_time() - cpu
                        assert imported.status_code == 201, imported.text[:300]
                        assert imported.json()["created"] == rows
                        if round_number == 0:
                            continue  # warm-up
                        measured = (baseline_v, validate, baseline_a, append)
                        measured_cpu = (cpu_baseline_v, cpu_validate, cpu_baseline_a, cpu_append)
                        for key, wall, cpu_seconds in zip(
                            passes, measured, measured_cpu, strict=True
                        ):
                            times[key].append(wall)
                            times[f"cpu_{key}"].append(cpu_seconds)
        finally:
            if name:
                await drop_database(POSTGRES, name)
    return times


def spread(values: list[float], digits: int = 1) -> str:
    return (
        f"{statistics.median(values):.{digits}f} "
        f"({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def report(results: dict[str, dict[str, list[float]]], rows: int, rounds: int) -> list[str]:
    load = os.getloadavg()
    lines = [
        IMPORT_SECTION,
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}",
        f"- `bench/bench_sheet_import.py --rows {rows} --rounds {rounds}`: {rows} rows of csv "
        "through the API (in-process app, httpx ASGI transport), one warm-up round then "
        f"{rounds} interleaved rounds; each ratio is to the `csv.DictReader` pass timed just "
        "before the request",
        f"- load average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
        "(1 / 5 / 15 min); peak RSS of the process (app and client): "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
        "",
        "| database | pass | seconds, median (min-max) | rows/s (median) | "
        "x DictReader, median (min-max) | CPU seconds, median | CPU x DictReader, median "
        "(min-max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for database, times in results.items():
        for label, key, baseline in (
            ("`csv.DictReader` (baseline)", "dictreader_v", None),
            ("POST sample-sheet, mode=validate", "validate", "dictreader_v"),
            ("POST sample-sheet, mode=append", "append", "dictreader_a"),
        ):
            seconds, cpu = times[key], times[f"cpu_{key}"]
            ratio = cpu_ratio = "-"
            if baseline is not None:
                ratio = spread([s / b for s, b in zip(seconds, times[baseline], strict=True)])
                cpu_base = times[f"cpu_{baseline}"]
                cpu_ratio = spread([s / b for s, b in zip(cpu, cpu_base, strict=True)])
            lines.append(
                f"| {database} | {label} | {spread(seconds, 2)} | "
                f"{rows / statistics.median(seconds):,.0f} | {ratio} | "
                f"{statistics.median(cpu):.2f} | {cpu_ratio} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--database", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks/sheets.md")
    args = parser.parse_args()
    results = {
        database: asyncio.run(measure(database, args.rows, args.rounds))
        for database in args.database
    }
    lines = report(results, args.rows, args.rounds)
    print("\n".join(lines))
    if args.write:
        output = ROOT / "docs" / "benchmarks" / "sheets.md"
        text = output.read_text() if output.exists() else ""
        head = text.split(IMPORT_SECTION, 1)[0].rstrip("\n")
        output.write_text((head + "\n\n" if head else "") + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
