"""Sample sheets against a study: validate, append or replace in one transaction, export.

Parsing, checking and writing (``parse.py``, ``validate.py``, ``write.py``) run in a worker
thread; this file adds what needs the database: sample_ids already in the study, the atomic
apply, the audit event. No FastAPI here: the routes in ``router.py`` call these.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
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
from src.sampleFileUpload.sheets.validate import SheetChecker, SheetReport
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


def _parse(
    data: bytes, filename: str | None, format: str | None, limits: SheetLimits
) -> ParsedSheet:
    return parse_sheet(
        data, filename=filename, format=format, max_bytes=limits.max_bytes, max_rows=limits.max_rows
    )


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
        parsed = await anyio.to_thread.run_sync(
            partial(_parse, data, filename, format.value if format else None, limits)
        )
        if parsed.too_large:
            raise SheetTooLargeError(errors=[issue.as_dict() for issue in parsed.errors])
        if mode == SheetMode.APPEND:
            taken = await study_service.sample_ids(session, study=study)
            checker = SheetChecker(parsed, taken=taken)
            try:
                async with session.begin_nested():
                    created = await study_service.insert_samples(
                        session, study=study, samples=_valid_batches(checker)
                    )
            except _InvalidRowsError:
                raise SheetInvalidError(_outcome(parsed, checker.report, mode)) from None
            return await _applied(
                session, study, filename, parsed, checker.report, mode, created, 0, actor
            )
        checker = SheetChecker(parsed)
        await anyio.to_thread.run_sync(checker.check_rest)
        checked = checker.finish()
        if mode == SheetMode.VALIDATE:
            return _outcome(parsed, checked, mode)
        if not checked.valid:
            raise SheetInvalidError(_outcome(parsed, checked, mode))
        existing = await study_service.all_samples(session, study=study)
        await study_service.delete_samples(
            session, study=study, samples=existing, storage=storage, actor=actor, record=False
        )
        created = await study_service.insert_samples(
            session,
            study=study,
            samples=[(sample.values, sample.attributes) for sample in checked.samples],
        )
        return await _applied(
            session, study, filename, parsed, checked, mode, created, len(existing), actor
        )


class _InvalidRowsError(Exception):
    """A sheet being appended has an invalid row: nothing of it is to be inserted."""


async def _valid_batches(
    checker: SheetChecker,
) -> AsyncGenerator[list[study_service.SampleInput]]:
    """The sheet's samples a chunk at a time, each chunk checked in a worker thread, for
    ``insert_samples`` to insert (on PostgreSQL one while the next is checked). At the first
    invalid row the rest of the sheet is checked (the report lists every error) and
    ``_InvalidRowsError`` raised instead of another chunk; the chunks given before it are then
    rolled back."""
    while not checker.done:
        samples = await anyio.to_thread.run_sync(checker.check_next)
        if not checker.valid:
            break
        yield [(sample.values, sample.attributes) for sample in samples]
    await anyio.to_thread.run_sync(checker.check_rest)
    if not checker.finish().valid:
        raise _InvalidRowsError


def _outcome(
    parsed: ParsedSheet,
    checked: SheetReport,
    mode: SheetMode,
    created: int = 0,
    replaced: int = 0,
    *,
    applied: bool = False,
) -> SheetOutcome:
    report = checked.as_dict()
    report.update({"mode": mode.value, "created": created, "replaced": replaced})
    return SheetOutcome(report, parsed, checked, applied=applied)


async def _applied(
    session: AsyncSession,
    study: Study,
    filename: str | None,
    parsed: ParsedSheet,
    checked: SheetReport,
    mode: SheetMode,
    created: int,
    replaced: int,
    actor: User,
) -> SheetOutcome:
    """The outcome of a sheet applied, with its audit event."""
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
    return _outcome(parsed, checked, mode, created, replaced, applied=True)


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
