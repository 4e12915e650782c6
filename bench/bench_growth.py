"""Growth benchmark: does a request's cost stay flat as the number of studies grows?

On a scratch PostgreSQL database the study table is grown step by step (default 1k, 10k, 100k,
1M studies; one sample and R1/R2 files each, with their kept counters), seeded with asyncpg's
COPY (``copy_records_to_table``) from the rows bench/_seed.py builds, then VACUUM ANALYZE. At
each size the real app runs in-process (``create_app`` with its lifespan, httpx over
ASGITransport) and every endpoint is called in interleaved rounds, one request at a time, after
a warm-up: p50/p95 per endpoint and size. Studies 1..100,000 belong to one "big owner" (so at
1k-100k they own every study, at 1M a tenth); the rest to 1,000 other users.

At the largest size the statements of each endpoint are captured and EXPLAIN (ANALYZE, BUFFERS)
is written out, to show what (if anything) still grows.

    .venv/bin/python bench/bench_growth.py --sizes 1000,10000,100000,1000000 \\
        --markdown docs/benchmarks/growth.md

The scratch database (``mosaic_growth_<random>``) is dropped at the end unless ``--keep``.
Two kept databases, a small and a large one, can then be measured interleaved, which is how the
ratio of the "flat" goals is read on a shared machine (each endpoint asked of one, then the other,
in every round):

    .venv/bin/python bench/bench_growth.py --sizes 1000 --keep
    .venv/bin/python bench/bench_growth.py --sizes 1000000 --keep
    .venv/bin/python bench/bench_growth.py --compare SMALL_URL LARGE_URL --rounds 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench._seed import (
    COMMON_TERM,
    PLACEHOLDER_HASH,
    RARE_TERM,
    _file_rows,
    _sample_rows,
    _study_row,
)
from bench.bench_studies import (
    cpu_model,
    memory,
    running_app,
    settings_for,
    vacuum_analyze,
)
from src.auth.config import AuthConfig
from src.auth.jwt import encode_access_token
from src.dashboard.cache import PublicStatsCache
from src.database import create_engine, upgrade_database
from src.study.constants import ACCESSION_COUNTER, FileStatus
from src.study.counters import totals_repair_statements
from tests.databases import create_database, drop_database

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BIG_OWNER_STUDIES = 100_000
OTHER_OWNERS = 1_000
API = "/api/v1"

STUDY_COLUMNS = [
    "id", "accession", "owner_id", "title", "description", "authors", "status", "release_date",
    "review_comment", "submitted_at", "published_at", "search_text", "version", "created_at",
    "updated_at", "sample_count", "file_count", "total_bytes", "valid_file_count",
    "invalid_file_count", "valid_bytes", "valid_read_count", "valid_base_count",
]  # fmt: skip
SAMPLE_COLUMNS = [
    "id", "study_id", "sample_id", "sample_key", "sample", "sample_group", "sample_project",
    "description", "organism", "tissue", "sex", "cell_line", "mouse_model",
    "biomaterial_provider", "date_sample_prep", "biological_repeat", "attributes", "created_at",
    "updated_at",
]  # fmt: skip
FILE_COLUMNS = [
    "id", "sample_pk", "filename", "read", "size", "md5", "sha256", "storage_key", "status",
    "read_count", "base_count", "min_length", "max_length", "mean_length", "name_digest",
    "validation_errors", "uploaded_by_id", "created_at",
]  # fmt: skip
JSON_COLUMNS = {"authors", "attributes", "validation_errors"}


def _record(row: dict[str, Any], columns: list[str]) -> tuple[Any, ...]:
    values = []
    for name in columns:
        value = row.get(name)
        if name in JSON_COLUMNS:
            value = json.dumps(value)
        elif isinstance(value, Enum):
            value = value.value  # enums are stored as their values
        values.append(value)
    return tuple(values)


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass
class Users:
    big_owner: uuid.UUID
    others: list[uuid.UUID]


async def seed_users(connection: asyncpg.Connection) -> Users:
    users = Users(uuid.uuid4(), [uuid.uuid4() for _ in range(OTHER_OWNERS)])
    now = datetime.now(UTC)
    rows = [
        (user_id, f"user{n}@growth.example.org", f"User {n}", PLACEHOLDER_HASH, "researcher",
         True, 0, now, now)
        for n, user_id in enumerate([users.big_owner, *users.others])
    ]  # fmt: skip
    await connection.copy_records_to_table(
        "user",
        records=rows,
        columns=[
            "id",
            "email",
            "full_name",
            "password_hash",
            "role",
            "is_active",
            "token_generation",
            "created_at",
            "updated_at",
        ],
    )
    return users


async def seed_range(
    connection: asyncpg.Connection, users: Users, first: int, last: int, *, batch: int = 20_000
) -> None:
    """Studies ``first..last`` (accession numbers) with one sample and R1/R2 files each."""
    rng = random.Random(first)
    now = datetime.now(UTC)
    for start in range(first, last + 1, batch):
        studies: list[tuple[Any, ...]] = []
        samples: list[tuple[Any, ...]] = []
        files: list[tuple[Any, ...]] = []
        for number in range(start, min(start + batch, last + 1)):
            owner = (
                users.big_owner
                if number <= BIG_OWNER_STUDIES
                else users.others[number % OTHER_OWNERS]
            )
            study, organism = _study_row(rng, number, owner_id=owner, prefix="MOSAIC", now=now)
            study_samples = _sample_rows(rng, study, organism, 1)
            study_files = _file_rows(rng, study, study_samples, owner)
            valid = [f for f in study_files if f["status"] == FileStatus.VALID]
            study.update(
                sample_count=len(study_samples),
                file_count=len(study_files),
                total_bytes=sum(f["size"] for f in study_files),
                valid_file_count=len(valid),
                invalid_file_count=0,
                valid_bytes=sum(f["size"] for f in valid),
                valid_read_count=sum(f["read_count"] for f in valid),
                valid_base_count=sum(f["base_count"] for f in valid),
            )
            studies.append(_record(study, STUDY_COLUMNS))
            samples.extend(_record(s, SAMPLE_COLUMNS) for s in study_samples)
            files.extend(_record(f, FILE_COLUMNS) for f in study_files)
        async with connection.transaction():
            await connection.copy_records_to_table("study", records=studies, columns=STUDY_COLUMNS)
            await connection.copy_records_to_table(
                "sample", records=samples, columns=SAMPLE_COLUMNS
            )
            await connection.copy_records_to_table(
                "sample_file", records=files, columns=FILE_COLUMNS
            )
    await connection.execute(
        "UPDATE accession_counter SET value = $1 WHERE name = $2", last, ACCESSION_COUNTER
    )


# ---------------------------------------------------------------------------------------------
# Endpoints.


@dataclass
class Endpoint:
    name: str
    who: str  # "anonymous" or "owner"
    path: Callable[[random.Random, int], str]
    goal: str


def endpoints() -> list[Endpoint]:
    def accession(rng: random.Random, size: int) -> str:
        # The big owner's studies (1..100k): visible to them whatever their status.
        return f"{API}/studies/MOSAIC-{rng.randint(1, min(size, BIG_OWNER_STUDIES)):04d}"

    return [
        Endpoint("list public, page 1", "anonymous", lambda r, s: f"{API}/studies", "flat"),
        Endpoint(
            "list mine, page 1 (big owner)", "owner", lambda r, s: f"{API}/studies", "< 50 ms"
        ),
        Endpoint("get by accession", "owner", accession, "flat"),
        Endpoint(
            f"search rare term ({RARE_TERM})",
            "anonymous",
            lambda r, s: f"{API}/studies?q={RARE_TERM}",
            "flat",
        ),
        Endpoint(
            f"search common term ({COMMON_TERM})",
            "anonymous",
            lambda r, s: f"{API}/studies?q={COMMON_TERM}",
            "< 100 ms",
        ),
        Endpoint(
            "search two characters (ch)",
            "anonymous",
            lambda r, s: f"{API}/studies?q=ch",
            "< 100 ms",
        ),
        # Terms between rare and common: an author (surname and initial, in about 0.6% of the
        # studies) and a surname (in about 15%).
        Endpoint(
            "search an author (okafor b.)",
            "anonymous",
            lambda r, s: f"{API}/studies?q=okafor%20b.",
            "reported",
        ),
        Endpoint(
            "search a surname (haddad)",
            "anonymous",
            lambda r, s: f"{API}/studies?q=haddad",
            "reported",
        ),
        Endpoint(
            f"search common term ({COMMON_TERM}), exact_total=true",
            "anonymous",
            lambda r, s: f"{API}/studies?q={COMMON_TERM}&exact_total=true",
            "reported",
        ),
        Endpoint(
            "dashboard summary (mine, big owner)",
            "owner",
            lambda r, s: f"{API}/dashboard/summary",
            "< 50 ms",
        ),
        Endpoint("public /stats (kept copy)", "anonymous", lambda r, s: f"{API}/stats", "< 50 ms"),
        Endpoint(
            "public /stats, recounted (no kept copy)",
            "anonymous",
            lambda r, s: f"{API}/stats",
            "reported",
        ),
    ]


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)

    def p(self, fraction: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Target:
    """One database measured: its size (the number of studies), settings and users."""

    size: int
    settings: Any
    users: Users


async def measure_size(
    settings: Any, users: Users, size: int, *, rounds: int, warmup: int
) -> tuple[dict[str, Timing], dict[str, list[tuple[str, Any]]]]:
    timings, captured = await measure_interleaved(
        [Target(size, settings, users)], rounds=rounds, warmup=warmup
    )
    return timings[0], captured[0]


async def measure_interleaved(
    targets: list[Target], *, rounds: int, warmup: int
) -> tuple[list[dict[str, Timing]], list[dict[str, list[tuple[str, Any]]]]]:
    """Every endpoint against every target, one request at a time: in each round each endpoint
    is asked of each target in turn (the order of the targets alternating from round to round),
    so the targets' timings share the machine's moments and their ratio is not the load's."""
    chosen = endpoints()
    timings = [{endpoint.name: Timing() for endpoint in chosen} for _ in targets]
    captured: list[dict[str, list[tuple[str, Any]]]] = [{} for _ in targets]
    async with contextlib.AsyncExitStack() as stack:
        running = []
        for target in targets:
            app, client, log = await stack.enter_async_context(running_app(target.settings))
            token = encode_access_token(
                user_id=target.users.big_owner,
                secret=target.settings.jwt_secret,
                config=AuthConfig(),
            )
            headers = {"anonymous": {}, "owner": {"Authorization": f"Bearer {token}"}}
            # Under traffic (a call at least every STATS_MAX_AGE_SECONDS), calls are answered
            # from the kept copy and one per window recounts: the two rows measure each path.
            # (Rounds here can take longer than the default 5 s: the kept row keeps a minute.)
            stats = {"kept": PublicStatsCache(max_age=60), "recount": PublicStatsCache(max_age=0)}
            running.append((app, client, log, headers, stats, random.Random(target.size)))
        for index in range(warmup + rounds):
            order = list(range(len(targets)))
            if index % 2:
                order.reverse()
            for endpoint in chosen:
                for number in order:
                    app, client, log, headers, stats, rng = running[number]
                    recounted = "recounted" in endpoint.name
                    app.state.public_stats = stats["recount" if recounted else "kept"]
                    path = endpoint.path(rng, targets[number].size)
                    log.reset()
                    log.active = index == warmup + rounds - 1
                    start = time.perf_counter()
                    response = await client.get(path, headers=headers[endpoint.who])
                    elapsed = (time.perf_counter() - start) * 1000
                    log.active = False
                    if response.status_code != 200:
                        raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
                    if index >= warmup:
                        timings[number][endpoint.name].samples.append(elapsed)
                    if log.statements:
                        captured[number][endpoint.name] = list(log.statements)
    return timings, captured


async def explain(engine: Any, captured: dict[str, list[tuple[str, Any]]]) -> dict[str, str]:
    plans: dict[str, str] = {}
    async with engine.connect() as connection:
        for name, statements in captured.items():
            parts = []
            for sql, params in statements:
                if not sql.lstrip().upper().startswith("SELECT") or (
                    'FROM "user"' in sql and ("token_generation" in sql)
                ):
                    continue
                rows = await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
                parts.append(sql.strip() + "\n\n" + "\n".join(row[0] for row in rows))
            plans[name] = "\n\n---\n\n".join(parts)
        await connection.rollback()
    return plans


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def markdown(
    results: dict[int, dict[str, Timing]],
    seeding: dict[int, float],
    loads: dict[int, str],
    plans: dict[str, str],
    args: argparse.Namespace,
) -> str:
    sizes = sorted(results)
    names = [endpoint.name for endpoint in endpoints()]
    goals = {endpoint.name: endpoint.goal for endpoint in endpoints()}
    lines = [
        "# Growth benchmark (PostgreSQL)",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} vCPUs "
        f"({cpu_model()}), {memory()} RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}.",
        f"- Command: `.venv/bin/python bench/bench_growth.py --sizes "
        f"{','.join(str(s) for s in args.sizes)} --rounds {args.rounds}`",
        "- In-process app (httpx over ASGITransport), one request at a time, endpoints "
        f"interleaved per round; {args.rounds} rounds after {args.warmup} warm-up rounds.",
        "- Each study has one sample and R1/R2 files; studies 1..100,000 belong to the big "
        "owner, the rest to 1,000 other users. `public /stats` is answered from its kept "
        "copy (what every call but one per STATS_MAX_AGE_SECONDS window gets), the next row "
        "recounts on every call (what that one call pays).",
        "- A search counts its matches up to SEARCH_TOTAL_LIMIT (1,000) and says "
        "`total_exact: false` past it; the `exact_total=true` row counts every match.",
        "- Load average (1, 5, 15 min) at each size: "
        + "; ".join(f"{size:,}: {loads[size]}" for size in sizes)
        + ". The machine is shared: read ratios and orders of magnitude, not single values.",
        "- Seeding (COPY + VACUUM ANALYZE) seconds: "
        + "; ".join(f"up to {size:,}: {seeding[size]:.0f}" for size in sizes)
        + ".",
        "",
        "p50 / p95 in ms:",
        "",
        "| endpoint | goal | " + " | ".join(f"{size:,}" for size in sizes) + " | "
        f"{sizes[-1]:,} / {sizes[0]:,} (p50) |",
        "|---|---|" + "---|" * len(sizes) + "---|",
    ]
    for name in names:
        cells = [
            f"{results[size][name].p(0.5):.1f} / {results[size][name].p(0.95):.1f}"
            for size in sizes
        ]
        ratio = results[sizes[-1]][name].p(0.5) / max(results[sizes[0]][name].p(0.5), 1e-9)
        lines.append(f"| {name} | {goals[name]} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    lines += ["", f"## Plans at {sizes[-1]:,} studies (EXPLAIN ANALYZE, BUFFERS)", ""]
    for name, plan in plans.items():
        lines += [f"### {name}", "", "```", plan, "```", ""]
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda value: [int(part) for part in value.split(",")],
        default=[1_000, 10_000, 100_000, 1_000_000],
    )
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--measure-only",
        default=None,
        metavar="URL",
        help="measure a database kept by an earlier --keep run (its last size) without seeding",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        default=None,
        metavar=("SMALL_URL", "LARGE_URL"),
        help="measure two databases kept by --keep runs interleaved, and their ratio",
    )
    return parser.parse_args()


async def kept_database(url: str) -> tuple[int, Users]:
    """The size of a database kept by an earlier --keep run, and its big owner."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    size = await connection.fetchval("SELECT count(*) FROM study")
    owner = await connection.fetchval("SELECT owner_id FROM study WHERE accession = 'MOSAIC-0001'")
    await connection.close()
    return size, Users(owner, [])


async def compare(args: argparse.Namespace) -> None:
    """Two kept databases, a small and a large one, measured interleaved (measure_interleaved):
    for each endpoint the large one's p50 over the small one's, and the spread of the ratio
    round by round."""
    small_url, large_url = args.compare
    with tempfile.TemporaryDirectory() as data_dir:
        targets = []
        for number, url in enumerate((small_url, large_url)):
            size, users = await kept_database(url)
            directory = Path(data_dir) / str(number)
            directory.mkdir()
            targets.append(Target(size, settings_for(url, directory), users))
        load_before = load_average()
        timings, _ = await measure_interleaved(targets, rounds=args.rounds, warmup=args.warmup)
        load_after = load_average()
    small, large = targets[0].size, targets[1].size
    lines = [
        f"- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} vCPUs ({cpu_model()}); "
        f"load before / after: {load_before} / {load_after}.",
        f"- Command: `.venv/bin/python bench/bench_growth.py --compare SMALL LARGE --rounds "
        f"{args.rounds}`: two databases kept by `--keep` runs ({small:,} and {large:,} studies), "
        "each endpoint asked of one then the other in every round (the order alternating).",
        "",
        f"| endpoint | goal | {small:,}: p50 ms | {large:,}: p50 ms | ratio of p50s | "
        "ratio per round: median (min-max) |",
        "|---|---|---|---|---|---|",
    ]
    goals = {endpoint.name: endpoint.goal for endpoint in endpoints()}
    for name, timing in timings[0].items():
        other = timings[1][name]
        ratios = sorted(b / a for a, b in zip(timing.samples, other.samples, strict=True))
        lines.append(
            f"| {name} | {goals[name]} | {timing.p(0.5):.1f} | {other.p(0.5):.1f} | "
            f"{other.p(0.5) / timing.p(0.5):.2f}x | {statistics.median(ratios):.2f}x "
            f"({ratios[0]:.2f}-{ratios[-1]:.2f}) |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


async def measure_only(args: argparse.Namespace) -> None:
    """Measure a kept database again at the size it has (after a code change, say)."""
    url = args.measure_only
    size, users = await kept_database(url)
    engine = create_engine(url)
    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings_for(url, Path(data_dir))
        loads = {size: load_average()}
        timings, captured = await measure_size(
            settings, users, size, rounds=args.rounds, warmup=args.warmup
        )
        plans = await explain(engine, captured)
    await engine.dispose()
    for endpoint, timing in timings.items():
        print(f"  {endpoint}: p50 {timing.p(0.5):.1f} ms, p95 {timing.p(0.95):.1f} ms")
    if args.markdown:
        args.markdown.write_text(markdown({size: timings}, {size: 0.0}, loads, plans, args))


async def main() -> None:
    args = parse_args()
    if args.compare:
        await compare(args)
        return
    if args.measure_only:
        await measure_only(args)
        return
    name, url = await create_database(args.postgres_url, "mosaic_growth")
    print(f"scratch database {name} ({url})", flush=True)
    results: dict[int, dict[str, Timing]] = {}
    seeding: dict[int, float] = {}
    loads: dict[int, str] = {}
    plans: dict[str, str] = {}
    try:
        await asyncio.to_thread(upgrade_database, url)
        engine = create_engine(url)
        connection = await asyncpg.connect(asyncpg_dsn(url))
        users = await seed_users(connection)
        seeded = 0
        with tempfile.TemporaryDirectory() as data_dir:
            settings = settings_for(url, Path(data_dir))
            for size in args.sizes:
                start = time.perf_counter()
                await seed_range(connection, users, seeded + 1, size)
                async with engine.begin() as totals:
                    # The totals kept over many studies (study/counters.py), from a count.
                    for statement in totals_repair_statements():
                        await totals.execute(statement)
                await vacuum_analyze(engine)
                seeding[size] = time.perf_counter() - start
                seeded = size
                print(f"{size:,} studies seeded in {seeding[size]:.0f} s", flush=True)
                loads[size] = load_average()
                timings, captured = await measure_size(
                    settings, users, size, rounds=args.rounds, warmup=args.warmup
                )
                results[size] = timings
                for endpoint, timing in timings.items():
                    print(
                        f"  {endpoint}: p50 {timing.p(0.5):.1f} ms, p95 {timing.p(0.95):.1f} ms",
                        flush=True,
                    )
                if size == args.sizes[-1]:
                    plans = await explain(engine, captured)
                if args.markdown:
                    args.markdown.write_text(markdown(results, seeding, loads, plans, args))
        await connection.close()
        await engine.dispose()
    finally:
        if not args.keep:
            await drop_database(args.postgres_url, name)
    if args.markdown:
        args.markdown.write_text(markdown(results, seeding, loads, plans, args))
    print(f"median load seen: {statistics.median([float(v.split()[0]) for v in loads.values()])}")


if __name__ == "__main__":
    asyncio.run(main())
