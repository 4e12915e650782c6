"""Sample-sheet import through the API: 50,000 rows validated, then appended to a study, next to a
plain csv.DictReader pass over the same file, measured in the same run.

Run: ``.venv/bin/python bench/bench_sheet_import.py [--rows 50000] [--database sqlite|postgres]``.
Prints a Markdown table (paste it into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_sheets import cpu_model, samples
from src.app import create_app
from src.config import Settings
from src.database import upgrade_database
from src.sampleFileUpload.sheets.write import write_sheet
from tests.databases import create_database, drop_database
from tests.factories import auth_headers, create_user
from tests.lifespan import running

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def measure(database: str, rows: int) -> dict[str, float]:
    data = write_sheet(samples(rows), format="csv")
    start = time.perf_counter()
    count = sum(1 for _ in csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    dictreader = time.perf_counter() - start
    assert count == rows
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
                    study = (
                        await client.post("/api/v1/studies", headers=headers, json={"title": "b"})
                    ).json()
                    url_sheet = f"/api/v1/studies/{study['accession']}/sample-sheet"
                    files = {"file": ("bench.csv", data)}
                    start = time.perf_counter()
                    validated = await client.post(url_sheet, headers=headers, files=files)
                    validate = time.perf_counter() - start
                    assert validated.status_code == 200, validated.text[:300]
                    assert validated.json()["valid"], validated.json()["errors"][:3]
                    start = time.perf_counter()
                    imported = await client.post(
                        url_sheet, headers=headers, files=files, params={"mode": "append"}
                    )
                    append = time.perf_counter() - start
                    assert imported.status_code == 201, imported.text[:300]
                    assert imported.json()["created"] == rows
        finally:
            if name:
                await drop_database(POSTGRES, name)
    return {"dictreader": dictreader, "validate": validate, "append": append}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    result = asyncio.run(measure(args.database, args.rows))
    rows = args.rows
    print(f"{cpu_model()}, {args.database}, {rows} rows")
    print("| pass | seconds | rows/s |")
    print("|---|---|---|")
    for label, key in (
        ("csv.DictReader over the file (baseline)", "dictreader"),
        ("POST sample-sheet?mode=validate (parse + checklist)", "validate"),
        ("POST sample-sheet?mode=append (validate + insert, one transaction)", "append"),
    ):
        seconds = result[key]
        print(f"| {label} | {seconds:.2f} | {rows / seconds:,.0f} |")


if __name__ == "__main__":
    main()
