"""``python main.py fsck [--verify] [--repair] [--json]``: hold the object storage against the
database (see ``fsck.py`` for what is checked).

Prints a summary for people, or with ``--json`` one JSON document for scripts (``Report.as_dict``:
``clean``, ``storage``, ``verify``, ``repair``, ``grace_seconds``, ``counts`` and ``problems``, each
``{kind, key, detail, removed}``). Exit status: 0 when nothing was found, 1 when a problem was
found (even if ``--repair`` removed it: the output says what was removed), 2 when the database or
the storage cannot be used (a configuration error). Logging goes to stderr, so stdout holds only
the report.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta

import anyio
from sqlalchemy.exc import SQLAlchemyError

from src.config import Settings
from src.database import create_engine, create_sessionmaker
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.fsck import Report, check
from src.storage import StorageError, build_storage

logger = logging.getLogger("mosaic.fsck")

EXIT_CLEAN = 0
EXIT_PROBLEMS = 1
EXIT_UNUSABLE = 2


async def _run(settings: Settings, *, verify: bool, repair: bool) -> Report:
    grace = timedelta(hours=FilesConfig().orphan_grace_hours)
    engine = create_engine(settings.effective_database_url)
    storage = build_storage(settings)
    try:
        await storage.startup()
        return await check(
            create_sessionmaker(engine), storage, grace=grace, verify=verify, repair=repair
        )
    finally:
        await storage.close()
        await engine.dispose()


def summary(report: Report) -> str:
    """The report for people: what was looked at, then one line per problem."""
    counts = report.as_dict()["counts"]
    lines = [
        f"fsck ({report.storage} storage): {counts['objects']} objects, "
        f"{counts['temporary']} temporary, {counts['files']} files, "
        f"{counts['uploads']} unfinished uploads checked"
        + (f", {counts['verified']} objects re-hashed" if report.verify else ""),
    ]
    if report.in_grace:
        lines.append(
            f"{report.in_grace} with no row yet but younger than the grace period "
            f"({report.grace_seconds / 3600:g} h): left alone"
        )
    if report.clean:
        lines.append("clean: no problems found")
        return "\n".join(lines) + "\n"
    lines.append(f"{len(report.problems)} problems, {report.removed} removed:")
    for problem in report.problems:
        mark = " [removed]" if problem.removed else ""
        lines.append(f"  {problem.kind.value}: {problem.key}: {problem.detail}{mark}")
    if not report.repair and any(p.kind.value.startswith("orphan") for p in report.problems):
        lines.append("run with --repair to remove the orphans")
    return "\n".join(lines) + "\n"


def fsck(settings: Settings, *, verify: bool, repair: bool, as_json: bool) -> int:
    """Run the check, print the report; the exit status (see the module docstring)."""
    try:
        report = anyio.run(lambda: _run(settings, verify=verify, repair=repair))
    except (SQLAlchemyError, StorageError, OSError) as exc:
        logger.error("fsck cannot run: %s: %s", type(exc).__name__, exc)
        return EXIT_UNUSABLE
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(summary(report))
    return EXIT_CLEAN if report.clean else EXIT_PROBLEMS
