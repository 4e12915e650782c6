"""Sample sheets against a study: validate, append or replace in one transaction, export.

Parsing, checking and writing (``parse.py``, ``validate.py``, ``write.py``) run in a worker
thread; this file adds what needs the database: sample_ids already in the study, the atomic
apply, the audit event. No FastAPI here: the routes in ``router.py`` call these.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.sampleFileUpload.config import SheetLimits
from src.sampleFileUpload.sheets.exceptions import SheetInvalidError, SheetTooLargeError
from src.sampleFileUpload.sheets.parse import ParsedSheet, parse_sheet
from src.sampleFileUpload.sheets.schemas import (
    ExportFormat,
    ReportFormat,
    SheetFormat,
    SheetMode,
    TemplateFormat,
)
from src.sampleFileUpload.sheets.utils import fewer_collections
from src.sampleFileUpload.sheets.validate import SheetReport, flag_taken_sample_ids, validate_sheet
from src.sampleFileUpload.sheets.write import template as write_template
from src.sampleFileUpload.sheets.write import write_report, write_sheet
from src.storage import Storage
from src.study import service as study_service
from src.study.checklist import FIELD_NAMES
from src.study.constants import EventAction
from src.study.models import Sample, Study


@dataclass
class SheetOutcome:
    """The report of one import, and what was parsed (for an annotated-sheet report)."""

    report: dict[str, Any]
    parsed: ParsedSheet
    checked: SheetReport
    applied: bool


def _parse_and_check(
    data: bytes, filename: str | None, format: str | None, limits: SheetLimits
) -> tuple[ParsedSheet, SheetReport]:
    parsed = parse_sheet(
        data, filename=filename, format=format, max_bytes=limits.max_bytes, max_rows=limits.max_rows
    )
    return parsed, validate_sheet(parsed)


def sample_as_row(sample: Sample) -> dict[str, Any]:
    """A stored sample in the shape the sheet writers take (API names plus attributes)."""
    row: dict[str, Any] = {name: getattr(sample, name) for name in FIELD_NAMES}
    row["attributes"] = dict(sample.attributes)
    return row


async def import_sheet(
    session: AsyncSession,
    *,
    study: Study,
    data: bytes,
    filename: str | None,
    format: SheetFormat | None,
    mode: SheetMode,
    limits: SheetLimits,
    storage: Storage,
    actor: User,
) -> SheetOutcome:
    """Check a sheet; in append/replace mode apply it, all rows or none. The collector runs
    less often meanwhile (fewer_collections)."""
    with fewer_collections():
        parsed, checked = await anyio.to_thread.run_sync(
            partial(_parse_and_check, data, filename, format.value if format else None, limits)
        )
        if parsed.too_large or checked.too_large:
            raise SheetTooLargeError(errors=[issue.as_dict() for issue in parsed.errors])
        if mode == SheetMode.APPEND:
            flag_taken_sample_ids(checked, await study_service.sample_ids(session, study=study))
        report = checked.as_dict()
        report.update({"mode": mode.value, "created": 0, "replaced": 0})
        if mode == SheetMode.VALIDATE:
            return SheetOutcome(report, parsed, checked, applied=False)
        if not checked.valid:
            raise SheetInvalidError(SheetOutcome(report, parsed, checked, applied=False))
        replaced = 0
        if mode == SheetMode.REPLACE:
            existing = await study_service.all_samples(session, study=study)
            await study_service.delete_samples(
                session, study=study, samples=existing, storage=storage, actor=actor, record=False
            )
            replaced = len(existing)
        created = await study_service.insert_samples(
            session,
            study=study,
            samples=[(sample.values, sample.attributes) for sample in checked.samples],
        )
        study_service.record_event(
            session,
            study=study,
            actor=actor,
            action=EventAction.SHEET_IMPORTED,
            detail={
                "mode": mode.value,
                "filename": filename,
                "created": created,
                "replaced": replaced,
            },
        )
        await session.flush()
        report.update({"created": created, "replaced": replaced})
        return SheetOutcome(report, parsed, checked, applied=True)


async def annotated_report(outcome: SheetOutcome, *, format: ReportFormat) -> bytes:
    """The user's own sheet with errors and warnings added row by row."""
    return await anyio.to_thread.run_sync(
        partial(write_report, outcome.parsed, outcome.checked, format=format.value)
    )


async def export_samples(session: AsyncSession, *, study: Study, format: ExportFormat) -> bytes:
    """The study's samples as a sheet that imports back unchanged."""
    samples = await study_service.all_samples(session, study=study)
    rows = [sample_as_row(sample) for sample in samples]
    return await anyio.to_thread.run_sync(partial(write_sheet, rows, format=format.value))


async def template(*, format: TemplateFormat) -> bytes:
    """The template in ``format``: the checklist headers and one example row."""
    return await anyio.to_thread.run_sync(partial(write_template, format.value))
