"""Studies benchmark: list, search and get latency and SQL statements per request, on a scratch
database seeded with 10k studies x 20 samples, through the real app in-process.

Seeds with bench/_seed.py (Core executemany in batches), starts ``create_app`` with its lifespan
and drives it with httpx over ASGITransport, one request at a time, after a warm-up. Statements are
counted with a ``before_cursor_execute`` listener on the app's own engine (the sessionmaker the
routes use is built on it), so the count is what each request really executes. On PostgreSQL the
study table is then topped up to ``--search-studies`` for the search scale test: ``EXPLAIN
(ANALYZE, BUFFERS)`` of the statements ``q`` runs, before and after ANALYZE, plus the API latency.

    .venv/bin/python bench/bench_studies.py --database both --markdown /tmp/studies.md

The PostgreSQL scratch database (``mosaic_bench_<random>``) lives on the server of
``--postgres-url`` and is dropped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._seed import COMMON_TERM, RARE_TERM, SeedStats, SeedUsers, seed_studies, seed_users
from src.app import create_app
from src.auth.config import AuthConfig
from src.auth.jwt import encode_access_token
from src.config import Settings
from src.database import create_engine, upgrade_database
from src.study.config import StudyConfig
from tests.databases import create_database, drop_database

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SECRET = "bench-secret-key-that-is-long-enough-0123456789abcdef"
API = "/api/v1/studies"
SHORT_TERM = "ch"  # two characters: no trigram to look up
ORGANISM = "Danio rerio"
TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA)\b", re.I)
TRGM_INDEX = "ix_study_search_text_trgm"


# ---------------------------------------------------------------------------------------------
# Counting statements on the app's engine.


@dataclass
class StatementLog:
    """Every statement the engine sends to the driver, while ``active``."""

    active: bool = False
    statements: list[tuple[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.statements.clear()

    def counts(self) -> tuple[int, int]:
        """(data statements, transaction-control statements such as SQLite's BEGIN IMMEDIATE)."""
        control = sum(1 for sql, _ in self.statements if TRANSACTION_CONTROL.match(sql))
        return len(self.statements) - control, control


def listen(engine: AsyncEngine, log: StatementLog) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        if log.active:
            log.statements.append((statement, parameters))


# ---------------------------------------------------------------------------------------------
# Endpoints and measurement.


@dataclass
class Endpoint:
    name: str
    who: str  # "reviewer" or "anonymous"
    path: Callable[[random.Random], str]
    deep: bool = False  # a deep page: costs O(offset), timed --deep-requests times only


@dataclass
class Result:
    database: str
    studies: int
    endpoint: str
    who: str
    timings_ms: list[float]
    statements: list[int]
    control: list[int]
    total: int | None

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.timings_ms)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

    @property
    def statement_range(self) -> str:
        low, high = min(self.statements), max(self.statements)
        return str(low) if low == high else f"{low}-{high}"


def query(**params: object) -> str:
    return f"{API}?{urlencode(params)}"


def endpoints(accessions: list[str], public: list[str], studies: int) -> list[Endpoint]:
    deep = max(1, int(studies * 0.8) // 20)
    return [
        Endpoint("list all, page 1", "reviewer", lambda _r: query(scope="all", page=1)),
        Endpoint(
            f"list all, page {deep}", "reviewer", lambda _r: query(scope="all", page=deep), True
        ),
        Endpoint("list public, page 1", "anonymous", lambda _r: query(scope="public")),
        Endpoint(f"search q={COMMON_TERM} (common)", "reviewer", search(COMMON_TERM)),
        Endpoint(f"search q={RARE_TERM} (rare)", "reviewer", search(RARE_TERM)),
        Endpoint(f"search q={SHORT_TERM} (2 chars)", "reviewer", search(SHORT_TERM)),
        Endpoint(
            f"filter organism={ORGANISM}",
            "reviewer",
            lambda _r: query(scope="all", organism=ORGANISM),
        ),
        Endpoint("get by accession", "reviewer", lambda r: f"{API}/{r.choice(accessions)}"),
        Endpoint("get public, anonymous", "anonymous", lambda r: f"{API}/{r.choice(public)}"),
    ]


def search(term: str) -> Callable[[random.Random], str]:
    return lambda _r: query(scope="all", q=term)


def search_endpoints() -> list[Endpoint]:
    return [
        Endpoint("list all, page 1", "reviewer", lambda _r: query(scope="all", page=1)),
        Endpoint(f"search q={COMMON_TERM} (common)", "reviewer", search(COMMON_TERM)),
        Endpoint(f"search q={RARE_TERM} (rare)", "reviewer", search(RARE_TERM)),
        Endpoint(f"search q={SHORT_TERM} (2 chars)", "reviewer", search(SHORT_TERM)),
        Endpoint(
            f"search public q={COMMON_TERM}",
            "anonymous",
            lambda _r: query(scope="public", q=COMMON_TERM),
        ),
    ]


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=url,
        data_dir=data_dir,
        secret_key=SECRET,
    )


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, StatementLog]]:
    app = create_app(settings)
    log = StatementLog()
    async with app.router.lifespan_context(app):
        listen(app.state.engine, log)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            yield app, client, log


async def measure(
    client: httpx.AsyncClient,
    log: StatementLog,
    endpoint: Endpoint,
    headers: dict[str, dict[str, str]],
    *,
    requests: int,
    warmup: int,
    database: str,
    studies: int,
) -> Result:
    rng = random.Random(7)
    result = Result(database, studies, endpoint.name, endpoint.who, [], [], [], None)
    for index in range(warmup + requests):
        path = endpoint.path(rng)
        log.reset()
        log.active = True
        start = time.perf_counter()
        response = await client.get(path, headers=headers[endpoint.who])
        elapsed = time.perf_counter() - start
        log.active = False
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
        if index < warmup:
            continue
        data, control = log.counts()
        result.timings_ms.append(elapsed * 1000)
        result.statements.append(data)
        result.control.append(control)
        body = response.json()
        if isinstance(body, dict) and "total" in body:
            result.total = body["total"]
    return result


def tokens(settings: Settings, users: SeedUsers) -> dict[str, dict[str, str]]:
    token = encode_access_token(
        user_id=users.reviewer_id, secret=settings.jwt_secret, config=AuthConfig()
    )
    return {"reviewer": {"Authorization": f"Bearer {token}"}, "anonymous": {}}


async def run_endpoints(
    settings: Settings,
    users: SeedUsers,
    chosen: list[Endpoint],
    *,
    args: argparse.Namespace,
    database: str,
    studies: int,
    after: Callable[[FastAPI, httpx.AsyncClient, StatementLog], Any] | None = None,
) -> tuple[list[Result], Any]:
    results = []
    extra = None
    async with running_app(settings) as (app, client, log):
        headers = tokens(settings, users)
        for endpoint in chosen:
            result = await measure(
                client,
                log,
                endpoint,
                headers,
                requests=args.deep_requests if endpoint.deep else args.requests,
                warmup=min(args.warmup, 2) if endpoint.deep else args.warmup,
                database=database,
                studies=studies,
            )
            results.append(result)
            print(
                f"  {database} {studies:>6} {endpoint.name:<34} p50 {result.percentile(0.5):7.1f}"
                f" ms  p95 {result.percentile(0.95):7.1f} ms  max {max(result.timings_ms):7.1f}"
                f" ms  sql {result.statement_range} (+{max(result.control)} tx)"
                f"  total {result.total}",
                flush=True,
            )
        if after is not None:
            extra = await after(app, client, log)
    return results, extra


# ---------------------------------------------------------------------------------------------
# PostgreSQL: scratch database, EXPLAIN of the search statements.


def literal(value: Any) -> str:
    """A SQL literal for the bench's own captured parameters (never user input)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, uuid.UUID):
        return f"'{value}'::uuid"
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, date):
        return f"'{value.isoformat()}'::date"
    return "'" + str(value).replace("'", "''") + "'"


@dataclass
class Explained:
    label: str
    kind: str  # "count" or "page"
    plan: str
    uses_index: bool
    execution_ms: float | None


def summarise(label: str, kind: str, lines: list[str]) -> Explained:
    plan = "\n".join(lines)
    found = re.search(r"Execution Time: ([\d.]+) ms", plan)
    return Explained(
        label, kind, plan, TRGM_INDEX in plan, float(found.group(1)) if found else None
    )


async def capture(
    client: httpx.AsyncClient, log: StatementLog, headers: dict[str, str], path: str
) -> list[tuple[str, Any]]:
    """The study statements (count and page) one request runs, with their parameters."""
    log.reset()
    log.active = True
    response = await client.get(path, headers=headers)
    log.active = False
    response.raise_for_status()
    return [(sql, params) for sql, params in log.statements if "FROM study" in sql]


async def explain_statements(
    engine: AsyncEngine, captured: dict[str, list[tuple[str, Any]]], *, generic: bool
) -> list[Explained]:
    """EXPLAIN (ANALYZE, BUFFERS) of each captured statement with its own parameters; with
    ``generic``, of the generic plan a prepared statement falls back to after five executions."""
    out = []
    async with engine.connect() as connection:
        for label, statements in captured.items():
            for sql, params in statements:
                kind = describe(sql).split(",")[0]
                if not generic:
                    rows = await connection.exec_driver_sql(
                        f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params
                    )
                else:
                    await connection.exec_driver_sql(f"PREPARE bench_q AS {sql}")
                    await connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
                    # The search's term is in the statement's text (a literal), so the
                    # statement may have no parameters left.
                    arguments = ", ".join(literal(value) for value in params)
                    execute = f"EXECUTE bench_q({arguments})" if params else "EXECUTE bench_q"
                    rows = await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {execute}")
                    await connection.exec_driver_sql("RESET plan_cache_mode")
                    await connection.exec_driver_sql("DEALLOCATE bench_q")
                out.append(summarise(label, kind, [row[0] for row in rows]))
        await connection.rollback()
    return out


def describe(sql: str) -> str:
    kind = "count" if sql.lstrip().startswith("SELECT count(") else "page"
    return f"{kind}, {'public' if 'release_date IS NULL' in sql else 'all'}"


async def prepared_plans(app: FastAPI) -> list[tuple[str, int, int]]:
    """generic/custom plan counts of the app connection's prepared LIKE statements."""
    async with app.state.engine.connect() as connection:
        rows = await connection.exec_driver_sql(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%search_text LIKE%'"
            " AND statement NOT LIKE '%pg_prepared_statements%'"
        )
        found = [(describe(row[0]), row[1], row[2]) for row in rows]
        await connection.rollback()
    return found


async def vacuum_analyze(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("user", "study", "sample", "sample_file"):
            await connection.execute(text(f'VACUUM ANALYZE "{table}"'))


async def stats_state(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        row: Sequence[Any] = (
            await connection.exec_driver_sql(
                "SELECT n_live_tup, n_mod_since_analyze, last_analyze, last_autoanalyze"
                " FROM pg_stat_user_tables WHERE relname = 'study'"
            )
        ).one()
    return (
        f"n_live_tup={row[0]}, n_mod_since_analyze={row[1]}, "
        f"analyzed={'yes' if row[2] or row[3] else 'no'}"
    )


# ---------------------------------------------------------------------------------------------
# Runs.


@dataclass
class Run:
    database: str
    seed_seconds: dict[int, float] = field(default_factory=dict)
    seeded: dict[int, SeedStats] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    explains: dict[str, list[Explained]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


async def seed(engine: AsyncEngine, run: Run, args: argparse.Namespace) -> tuple[SeedUsers, Any]:
    start = time.perf_counter()
    users = await seed_users(engine)
    stats = await seed_studies(
        engine,
        owner_id=users.owner_id,
        count=args.studies,
        samples_per_study=args.samples_per_study,
        prefix=StudyConfig().accession_prefix,
    )
    run.seed_seconds[args.studies] = time.perf_counter() - start
    run.seeded[args.studies] = stats
    print(
        f"  seeded {stats.studies} studies, {stats.samples} samples, {stats.files} files"
        f" in {run.seed_seconds[args.studies]:.1f} s {stats.by_status}",
        flush=True,
    )
    return users, stats


async def public_accessions(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.exec_driver_sql(
            "SELECT accession FROM study WHERE status = 'published' AND release_date IS NULL"
        )
        return [row[0] for row in rows]


async def run_sqlite(args: argparse.Namespace) -> Run:
    run = Run("SQLite")
    with tempfile.TemporaryDirectory(prefix="mosaic-bench-") as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        print(f"SQLite: {url}", flush=True)
        await asyncio.to_thread(upgrade_database, url)
        engine = create_engine(url)
        try:
            users, stats = await seed(engine, run, args)
            async with engine.connect() as connection:
                await connection.exec_driver_sql("ANALYZE")
            public = await public_accessions(engine)
        finally:
            await engine.dispose()
        settings = settings_for(url, Path(folder) / "data")
        results, _ = await run_endpoints(
            settings,
            users,
            endpoints(stats.accessions, public, args.studies),
            args=args,
            database="SQLite",
            studies=args.studies,
        )
        run.results.extend(results)
    return run


async def run_postgres(args: argparse.Namespace) -> Run:
    run = Run("PostgreSQL")
    name, url = await create_database(args.postgres_url, "mosaic_bench")
    print(f"PostgreSQL: scratch database {name}", flush=True)
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            version = (await connection.exec_driver_sql("SHOW server_version")).scalar_one()
        run.notes.append(f"PostgreSQL {version}")
        await asyncio.to_thread(upgrade_database, url)
        users, stats = await seed(engine, run, args)
        await vacuum_analyze(engine)
        public = await public_accessions(engine)
        with tempfile.TemporaryDirectory(prefix="mosaic-bench-") as folder:
            settings = settings_for(url, Path(folder) / "data")
            results, _ = await run_endpoints(
                settings,
                users,
                endpoints(stats.accessions, public, args.studies),
                args=args,
                database="PostgreSQL",
                studies=args.studies,
            )
            run.results.extend(results)
            if args.search_studies > args.studies:
                await search_scale(engine, run, args, settings, users)
    finally:
        await engine.dispose()
        await drop_database(args.postgres_url, name)
        print(f"  dropped {name}", flush=True)
    return run


async def search_scale(
    engine: AsyncEngine,
    run: Run,
    args: argparse.Namespace,
    settings: Settings,
    users: SeedUsers,
) -> None:
    extra = args.search_studies - args.studies
    start = time.perf_counter()
    stats = await seed_studies(
        engine,
        owner_id=users.owner_id,
        first=args.studies + 1,
        count=extra,
        samples_per_study=args.search_samples_per_study,
        prefix=StudyConfig().accession_prefix,
    )
    run.seed_seconds[args.search_studies] = time.perf_counter() - start
    run.seeded[args.search_studies] = stats
    print(
        f"  topped up {stats.studies} studies, {stats.samples} samples"
        f" in {run.seed_seconds[args.search_studies]:.1f} s",
        flush=True,
    )
    before = await stats_state(engine)
    run.notes.append(f"statistics right after the bulk load: {before}")

    async def explain_all(app: FastAPI, client: httpx.AsyncClient, log: StatementLog) -> Any:
        reviewer = tokens(settings, users)["reviewer"]
        captured = {
            f"q={term}": await capture(client, log, reviewer, query(scope="all", q=term))
            for term in (COMMON_TERM, RARE_TERM, SHORT_TERM)
        }
        captured[f"public q={COMMON_TERM}"] = await capture(
            client, log, {}, query(scope="public", q=COMMON_TERM)
        )
        deep = 101  # offset 2000: enough to show the counts evaluated for skipped rows
        captured[f"list all page {deep}"] = await capture(
            client, log, reviewer, query(scope="all", page=deep)
        )
        return captured

    # Plans before ANALYZE (what a freshly bulk-loaded table gets until autovacuum runs).
    _, captured = await run_endpoints(
        settings,
        users,
        [],
        args=args,
        database="PostgreSQL",
        studies=args.search_studies,
        after=explain_all,
    )
    deep_label = next(label for label in captured if label.startswith("list all page"))
    deep_page = {deep_label: captured.pop(deep_label)}
    run.explains["before ANALYZE"] = await explain_statements(engine, captured, generic=False)
    await vacuum_analyze(engine)
    run.notes.append(f"after VACUUM ANALYZE: {await stats_state(engine)}")
    run.explains["after ANALYZE"] = await explain_statements(
        engine, captured | deep_page, generic=False
    )
    run.explains["after ANALYZE, generic plan"] = await explain_statements(
        engine, captured, generic=True
    )

    async def plans(app: FastAPI, _client: httpx.AsyncClient, _log: StatementLog) -> Any:
        return await prepared_plans(app)

    results, prepared = await run_endpoints(
        settings,
        users,
        search_endpoints(),
        args=args,
        database="PostgreSQL",
        studies=args.search_studies,
        after=plans,
    )
    run.results.extend(results)
    for statement, generic, custom in prepared:
        run.notes.append(
            f"app's prepared q statement ({statement}): {generic} generic / {custom} custom plans"
        )


# ---------------------------------------------------------------------------------------------
# Report.


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def markdown(runs: list[Run], args: argparse.Namespace, command: str, seconds: float) -> str:
    lines = [
        "# Studies benchmark",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores (nproc), {memory()} RAM, "
        f"Python {platform.python_version()}",
        f"- command: `{command}` (total {seconds / 60:.1f} min)",
        f"- data: {args.studies} studies x {args.samples_per_study} samples, R1+R2 files on 2"
        " samples per study; about 55% published (some embargoed), 25% draft, 20% in review;"
        f" {args.requests} timed requests per row after {args.warmup} warm-up"
        f" ({args.deep_requests} after 2 for the deep page), one at a time,"
        " in-process (httpx ASGITransport, real app and lifespan).",
        "- SQL = statements per request counted by `before_cursor_execute` on the app's engine"
        " (user lookup included; BEGIN/COMMIT excluded; SQLite also sends one `BEGIN IMMEDIATE`).",
        "",
    ]
    for run in runs:
        for size, stats in run.seeded.items():
            lines.append(
                f"- {run.database} seed to {size} studies: +{stats.studies} studies, "
                f"{stats.samples} samples, {stats.files} files in {run.seed_seconds[size]:.0f} s"
            )
        lines.extend(f"- {run.database}: {note}" for note in run.notes)
    lines += [
        "",
        "| database | studies | endpoint | caller | matches | p50 ms | p95 ms | max ms | SQL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for result in run.results:
            total = "" if result.total is None else str(result.total)
            lines.append(
                f"| {result.database} | {result.studies} | {result.endpoint} | {result.who} | "
                f"{total} | {result.percentile(0.5):.1f} | {result.percentile(0.95):.1f} | "
                f"{max(result.timings_ms):.1f} | {result.statement_range} |"
            )
    for run in runs:
        if not run.explains:
            continue
        lines += [
            "",
            f"## EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL at {args.search_studies} studies",
            "",
            "| plans | search | statement | trigram index used | execution ms |",
            "|---|---|---|---|---|",
        ]
        for stage, explained in run.explains.items():
            lines.extend(
                f"| {stage} | {item.label} | {item.kind} | "
                f"{'yes' if item.uses_index else 'no'} | {item.execution_ms} |"
                for item in explained
            )
        lines += ["", "<details><summary>plans after ANALYZE</summary>"]
        for item in run.explains.get("after ANALYZE", []):
            lines += ["", f"{item.label}, {item.kind}:", "", "```", item.plan, "```"]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def all_plans(runs: list[Run]) -> str:
    lines = []
    for run in runs:
        for stage, explained in run.explains.items():
            for item in explained:
                lines += [f"--- {stage}, {item.label}, {item.kind}:", item.plan, ""]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--samples-per-study", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--deep-requests", type=int, default=20, help="timed deep-page requests")
    parser.add_argument(
        "--search-studies",
        type=int,
        default=100_000,
        help="PostgreSQL search scale test: top the study table up to this many (0: skip)",
    )
    parser.add_argument("--search-samples-per-study", type=int, default=20)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    command = "python bench/bench_studies.py " + " ".join(sys.argv[1:])
    start = time.perf_counter()
    runs = []
    if args.database in ("sqlite", "both"):
        runs.append(await run_sqlite(args))
    if args.database in ("postgres", "both"):
        runs.append(await run_postgres(args))
    report = markdown(runs, args, command.strip(), time.perf_counter() - start)
    print()
    print(all_plans(runs))
    print(report)
    if args.markdown:
        args.markdown.write_text(report)


if __name__ == "__main__":
    asyncio.run(main())
