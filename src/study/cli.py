"""``python main.py recount [--repair] [--json]``: hold every study's kept counters (samples,
files, bytes, reads, bases: see ``counters.py``) against a recount from its samples and files,
and the totals kept over all studies (the number of published ones) against a count.

Prints one line per study whose counters differ (with ``--json`` one JSON document: ``clean``,
``repair``, ``drifted`` with each study's kept and counted values, ``drifted_totals`` with each
total's, ``repaired``). ``--repair`` sets the drifted counters and totals to the recount in one
transaction. Exit status: 0 when everything agreed, 1 when something did not (even if repaired:
the output says so), 2 when the database cannot be used. Logging goes to stderr, so stdout
holds only the report.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import anyio
from sqlalchemy.exc import SQLAlchemyError

from src.config import Settings
from src.database import create_engine, create_sessionmaker
from src.study import counters

logger = logging.getLogger("mosaic.recount")

EXIT_CLEAN = 0
EXIT_DRIFT = 1
EXIT_UNUSABLE = 2


async def _run(settings: Settings, *, repair: bool) -> dict[str, Any]:
    engine = create_engine(settings.effective_database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            drifts = await counters.find_drift(session)
            totals = await counters.find_total_drift(session)
            repaired = await counters.repair(session, drifts=drifts) if repair else 0
            if repair:
                repaired += await counters.repair_totals(session, drifts=totals)
        return {
            "clean": not drifts and not totals,
            "repair": repair,
            "drifted": [drift.as_dict() for drift in drifts],
            "drifted_totals": [drift.as_dict() for drift in totals],
            "repaired": repaired,
        }
    finally:
        await engine.dispose()


def summary(report: dict[str, Any]) -> str:
    if report["clean"]:
        return (
            "recount: every study's counters agree with its samples and files, "
            "and the kept totals with the studies\n"
        )
    lines = [
        f"recount: {len(report['drifted'])} studies and {len(report['drifted_totals'])} totals"
        f" differ, {report['repaired']} repaired:"
    ]
    for total in report["drifted_totals"]:
        kept, counted = total["kept"], total["counted"]
        differences = ", ".join(
            f"{name} {kept[name]} (counted {counted[name]})"
            for name in kept
            if kept[name] != counted[name]
        )
        lines.append(f"  total {total['name']}: {differences}")
    for drift in report["drifted"]:
        kept, counted = drift["kept"], drift["counted"]
        differences = ", ".join(
            f"{name} {kept[name]} (counted {counted[name]})"
            for name in counters.COLUMNS
            if kept[name] != counted[name]
        )
        lines.append(f"  {drift['accession']}: {differences}")
    if not report["repair"]:
        lines.append("run with --repair to set them to the recount")
    return "\n".join(lines) + "\n"


def recount(settings: Settings, *, repair: bool, as_json: bool) -> int:
    """Run the check, print the report; the exit status (see the module docstring)."""
    try:
        report = anyio.run(lambda: _run(settings, repair=repair))
    except (SQLAlchemyError, OSError) as exc:
        logger.error("recount cannot run: %s: %s", type(exc).__name__, exc)
        return EXIT_UNUSABLE
    sys.stdout.write(json.dumps(report) + "\n" if as_json else summary(report))
    return EXIT_CLEAN if report["clean"] else EXIT_DRIFT
