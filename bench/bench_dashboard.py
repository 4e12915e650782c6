"""Dashboard latency on a large catalogue: 10,000 studies, 200,000 samples, one file per sample.

Seeds a scratch database built by the migrations (a SQLite file, and a throw-away PostgreSQL
database when one answers) with bulk inserts, then times each dashboard endpoint through the ASGI
app (httpx + ASGITransport, so routing, auth, SQL and serialisation, without a socket): warm-up
requests, then sequential timed requests, reported as p50/p95.

Run: ``.venv/bin/python bench/bench_dashboard.py [--studies 10000] [--samples-per-study 20]
[--requests 100] [--database sqlite|postgresql|both]``.
Writes docs/benchmarks/dashboard.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio
import httpx
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from src.app import create_app
from src.auth.config import AuthConfig
from src.auth.jwt import encode_access_token
from src.auth.models import User
from src.config import Settings
from src.database import create_engine, upgrade_database
from src.study.counters import repair_statement, totals_repair_statements
from src.study.models import Sample, SampleFile, Study, StudyEvent, StudyMember
from tests.databases import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "benchmarks" / "dashboard.md"
SECRET = "bench-secret-key-that-is-long-enough-0123456789"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"

ORGANISMS = [
    ("Mus musculus", 50),
    ("Homo sapiens", 30),
    ("Danio rerio", 6),
    ("Rattus norvegicus", 5),
    ("Drosophila melanogaster", 4),
    ("Saccharomyces cerevisiae", 3),
    ("Caenorhabditis elegans", 2),
]
TISSUES = [None, "liver", "brain", "blood", "skin", "heart", "lung", "kidney", "fin", "muscle"] + [
    f"tissue {n}" for n in range(40)
]
SEXES = ["female", "male", "mixed", "unknown", "not collected", None]


@dataclass
class Seeded:
    heavy_user: uuid.UUID  # a researcher with many studies (owner and member)
    admin: uuid.UUID
    studies: int
    samples: int
    files: int
    events: int
    seconds: float


def chunks(rows: list[dict[str, Any]], size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def build_rows(
    studies: int, samples_per_study: int, seed: int = 1
) -> tuple[dict[str, Any], Seeded]:
    """Every row to insert, generated up front (deterministic for a seed)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    users = []
    for number in range(500):
        role = "admin" if number < 2 else "reviewer" if number < 10 else "researcher"
        users.append(
            {
                "id": uuid.uuid4(),
                "email": f"user{number}@bench.example.org",
                "full_name": f"User {number}",
                "password_hash": "x",
                "role": role,
                "is_active": number % 50 != 49,
                "created_at": now,
                "updated_at": now,
            }
        )
    researchers = [user["id"] for user in users if user["role"] == "researcher"]
    heavy = researchers[0]
    organism_names = [name for name, _ in ORGANISMS]
    organism_weights = [weight for _, weight in ORGANISMS]
    study_rows, member_rows, sample_rows, file_rows, event_rows = [], [], [], [], []
    for number in range(studies):
        study_id = uuid.uuid4()
        owner = heavy if number % 50 == 0 else rng.choice(researchers)
        created = now - timedelta(days=rng.uniform(0, 3 * 365))
        draw = rng.random()
        status = "draft" if draw < 0.3 else "in_review" if draw < 0.4 else "published"
        submitted = created + timedelta(days=rng.uniform(0, 30)) if status != "draft" else None
        published = (
            submitted + timedelta(days=rng.uniform(0, 14))
            if status == "published" and submitted
            else None
        )
        embargo = (
            (now + timedelta(days=rng.randint(1, 700))).date()
            if status == "published" and rng.random() < 0.1
            else None
        )
        study_rows.append(
            {
                "id": study_id,
                "accession": f"BENCH-{number + 1:05d}",
                "owner_id": owner,
                "title": f"Study {number}",
                "description": "",
                "authors": [],
                "status": status,
                "release_date": embargo,
                "review_comment": None,
                "submitted_at": submitted,
                "published_at": published,
                "search_text": f"study {number}",
                "version": 1,
                "created_at": created,
                "updated_at": created,
            }
        )
        if number % 40 == 1 and owner != heavy:
            member_rows.append(
                {"study_id": study_id, "user_id": heavy, "role": "viewer", "created_at": created}
            )
        organism = rng.choices(organism_names, organism_weights)[0]
        for index in range(samples_per_study):
            sample_id = uuid.uuid4()
            sample_rows.append(
                {
                    "id": sample_id,
                    "study_id": study_id,
                    "sample_id": f"S{index + 1}",
                    "sample_key": f"s{index + 1}",
                    "sample": f"S{index + 1}",
                    "organism": organism if rng.random() < 0.9 else rng.choice(organism_names),
                    "tissue": rng.choice(TISSUES),
                    "sex": rng.choice(SEXES),
                    "attributes": {},
                    "created_at": created,
                    "updated_at": created,
                }
            )
            draw = rng.random()
            file_status = "valid" if draw < 0.9 else "invalid" if draw < 0.95 else "uploading"
            reads = rng.randint(1_000_000, 40_000_000) if file_status == "valid" else None
            file_rows.append(
                {
                    "id": uuid.uuid4(),
                    "sample_pk": sample_id,
                    "filename": f"S{index + 1}_R1.fastq.gz",
                    "read": "single",
                    "size": rng.randint(10_000_000, 5_000_000_000),
                    "storage_key": f"bench/{sample_id}",
                    "status": file_status,
                    "read_count": reads,
                    "base_count": reads * 150 if reads else None,
                    "validation_errors": [],
                    "created_at": created + timedelta(hours=rng.uniform(0, 48)),
                }
            )
        for step in range(3):
            event_rows.append(
                {
                    "id": uuid.uuid4(),
                    "study_id": study_id,
                    "actor_id": owner,
                    "action": "study.updated",
                    "detail": {},
                    "at": created + timedelta(hours=step),
                }
            )
    tables = {
        "user": (User, users),
        "study": (Study, study_rows),
        "study_member": (StudyMember, member_rows),
        "sample": (Sample, sample_rows),
        "sample_file": (SampleFile, file_rows),
        "study_event": (StudyEvent, event_rows),
    }
    seeded = Seeded(
        heavy_user=uuid.UUID(str(heavy)),
        admin=uuid.UUID(str(users[0]["id"])),
        studies=len(study_rows),
        samples=len(sample_rows),
        files=len(file_rows),
        events=len(event_rows),
        seconds=0.0,
    )
    return tables, seeded


async def seed(url: str, tables: dict[str, Any], seeded: Seeded) -> Seeded:
    await anyio.to_thread.run_sync(upgrade_database, url)
    engine = create_engine(url)
    started = time.perf_counter()
    async with engine.begin() as connection:
        for model, rows in tables.values():
            for part in chunks(rows):
                await connection.execute(insert(model), part)
        # The studies' kept counters, from the same recount the migration fills them with.
        await connection.execute(repair_statement())
        for statement in totals_repair_statements():
            await connection.execute(statement)
    if make_url(url).get_backend_name() == "postgresql":
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    else:
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    await engine.dispose()
    seeded.seconds = time.perf_counter() - started
    return seeded


def endpoints(today: date) -> list[tuple[str, str, dict[str, str]]]:
    """(label, who, path with query) to time; who is anon, heavy or admin."""
    year_ago = (today - timedelta(days=364)).isoformat()
    three_years = (today - timedelta(days=3 * 365)).isoformat()
    series = "/api/v1/dashboard/timeseries"
    return [
        ("stats (public)", "anon", {"path": "/api/v1/stats"}),
        ("summary, mine", "heavy", {"path": "/api/v1/dashboard/summary"}),
        ("summary, all", "admin", {"path": "/api/v1/dashboard/summary?scope=all"}),
        (
            "timeseries studies_created, month, 3 y, all",
            "admin",
            {"path": f"{series}?scope=all&interval=month&start={three_years}"},
        ),
        (
            "timeseries bytes_uploaded, day, 365 d, all",
            "admin",
            {"path": f"{series}?scope=all&metric=bytes_uploaded&start={year_ago}"},
        ),
        (
            "timeseries bytes_uploaded, week, 3 y, mine",
            "heavy",
            {"path": f"{series}?metric=bytes_uploaded&interval=week&start={three_years}"},
        ),
        (
            "breakdown organism, all",
            "admin",
            {"path": "/api/v1/dashboard/breakdown?by=organism&scope=all"},
        ),
        (
            "breakdown tissue, all",
            "admin",
            {"path": "/api/v1/dashboard/breakdown?by=tissue&scope=all"},
        ),
        ("breakdown organism, mine", "heavy", {"path": "/api/v1/dashboard/breakdown?by=organism"}),
    ]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


async def measure(
    url: str, seeded: Seeded, requests: int, data_dir: Path
) -> list[tuple[str, float, float]]:
    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=url,
        data_dir=data_dir,
        secret_key=SECRET,
        log_level="WARNING",
    )
    app = create_app(settings)
    tokens = {
        who: encode_access_token(user_id=user, secret=settings.jwt_secret, config=AuthConfig())
        for who, user in (("heavy", seeded.heavy_user), ("admin", seeded.admin))
    }
    results = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for label, who, target in endpoints(datetime.now(UTC).date()):
                headers = {"Authorization": f"Bearer {tokens[who]}"} if who in tokens else {}
                for _ in range(5):
                    response = await client.get(target["path"], headers=headers)
                    assert response.status_code == 200, (label, response.text)
                timings = []
                for _ in range(requests):
                    started = time.perf_counter()
                    response = await client.get(target["path"], headers=headers)
                    timings.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, (label, response.text)
                results.append((label, statistics.median(timings), percentile(timings, 0.95)))
                print(f"  {label}: p50 {results[-1][1]:.1f} ms, p95 {results[-1][2]:.1f} ms")
    return results


async def scratch_postgres(base: str) -> tuple[str, str] | None:
    try:
        name, url = await create_database(base, "mosaic_bench")
    except OSError as exc:
        print(f"PostgreSQL unavailable ({exc}); skipped")
        return None
    return url, name


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


async def run_database(
    kind: str, args: argparse.Namespace, tables: dict[str, Any], seeded: Seeded, workdir: Path
) -> dict[str, Any]:
    dropper = None
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    else:
        created = await scratch_postgres(args.pg_url)
        if created is None:
            return {}
        url, name = created
        dropper = name
    try:
        print(f"{kind}: seeding")
        seeded = await seed(url, tables, seeded)
        print(f"{kind}: seeded in {seeded.seconds:.1f} s; timing")
        runs = {"as migrated": await measure(url, seeded, args.requests, workdir / "data")}
        return {"seconds": seeded.seconds, "runs": runs}
    finally:
        if dropper is not None:
            await drop_database(args.pg_url, dropper)


def write_markdown(
    args: argparse.Namespace, seeded: Seeded, results: dict[str, dict[str, Any]]
) -> None:
    lines = [
        "# Dashboard benchmark",
        "",
        "`bench/bench_dashboard.py` seeds a scratch database (built by the migrations) with bulk "
        "inserts and times each dashboard endpoint through the ASGI app (httpx + ASGITransport: "
        "routing, token check and user load, SQL, serialisation; no socket), sequentially, after "
        "5 warm-up requests.",
        "",
        "```",
        f".venv/bin/python bench/bench_dashboard.py --studies {args.studies} "
        f"--samples-per-study {args.samples_per_study} --requests {args.requests} "
        f"--database {args.database}",
        "```",
        "",
        f"## {datetime.now(UTC).date().isoformat()}",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}.",
        f"- Data: {seeded.studies:,} studies (30 % draft, 10 % in review, 60 % published, a tenth "
        f"of those embargoed), {seeded.samples:,} samples, {seeded.files:,} files (90 % valid), "
        f"{seeded.events:,} events, 500 users. The 'mine' caller owns 200 studies and is a member "
        "of about 250 more.",
        f"- {args.requests} timed requests per row; milliseconds.",
        "",
    ]
    for kind, result in results.items():
        if not result:
            continue
        lines.append(f"### {kind} (seeded in {result['seconds']:.0f} s)")
        lines.append("")
        runs = result["runs"]
        header = "| endpoint | " + " | ".join(f"p50 / p95, {name}" for name in runs) + " |"
        lines += [header, "|---|" + "---:|" * len(runs)]
        labels = [label for label, _, _ in next(iter(runs.values()))]
        for index, label in enumerate(labels):
            cells = [f"{run[index][1]:.1f} / {run[index][2]:.1f}" for run in runs.values()]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    OUTPUT.write_text("\n".join(lines))
    print(f"wrote {OUTPUT}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--samples-per-study", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    tables, seeded = build_rows(args.studies, args.samples_per_study)
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    results = {}
    with tempfile.TemporaryDirectory(prefix="mosaic-bench-") as workdir:
        for kind in kinds:
            results[kind] = await run_database(kind, args, tables, seeded, Path(workdir))
    if not args.no_write:
        write_markdown(args, seeded, results)


if __name__ == "__main__":
    asyncio.run(main())
