"""fsck: object storage held against the database, for ``python main.py fsck`` and the periodic
orphan sweep of the lifespan (one code path for both).

What it finds (``ProblemKind``):

- ``orphan_object``: a committed object that no file or upload row names (a crash between an
  object's commit and its row's, or a study whose objects outlived its rows);
- ``orphan_temporary``: temporary data of a write no upload row continues (a whole-file upload's
  temp file or S3 multipart upload, a tus upload's staged data after its row went);
- ``missing_object``: a valid or invalid file whose object is gone;
- ``missing_upload_data``: an unfinished tus upload whose stored bytes are gone;
- ``size_mismatch``: a stored object whose size is not its file's;
- ``checksum_mismatch`` (``verify``): an object whose MD5 or SHA-256, re-computed from its bytes,
  is not the one recorded; ``unreadable_object`` (``verify``): it could not be read.

Orphans are reported, and removed by ``repair``, only once older than the grace period: younger
data may belong to an upload still under way (the upload path commits the object, then its row).
Everything found is confirmed against the database (and the storage) once more before it is
reported or removed, so what changed while the storage was listed is not reported; a final
object is removed inside the transaction that confirmed it has no row (on SQLite that
transaction holds the write lock, so no row can be committed in between). ``repair`` never
removes a row, nor an object a row names: missing and corrupt objects are only reported.
Removal is idempotent, so two processes sweeping at once do no harm. Only keys under
``studies/`` (where every key is made) are looked at.
"""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from src.database import utcnow
from src.sampleFileUpload.config import FilesConfig
from src.storage import Storage, StorageError, StoredEntry, WriterBusyError
from src.study.constants import FileStatus
from src.study.models import SampleFile, Upload

logger = logging.getLogger(__name__)

# Entries looked up in the database at once, rows read per page, bytes hashed per step.
LOOKUP_BATCH = 500
ROW_PAGE = 1000
VERIFY_CHUNK = 1024 * 1024
STORED_STATUSES = (FileStatus.VALID, FileStatus.INVALID)
# Every storage key is made under it (files' ``new_storage_key``); nothing else in the bucket or
# directory is looked at, let alone removed.
SCANNED_PREFIX = "studies/"

Sessions = async_sessionmaker[AsyncSession]


class ProblemKind(StrEnum):
    ORPHAN_OBJECT = "orphan_object"
    ORPHAN_TEMPORARY = "orphan_temporary"
    MISSING_OBJECT = "missing_object"
    MISSING_UPLOAD_DATA = "missing_upload_data"
    SIZE_MISMATCH = "size_mismatch"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    UNREADABLE_OBJECT = "unreadable_object"


ORPHANS = frozenset({ProblemKind.ORPHAN_OBJECT, ProblemKind.ORPHAN_TEMPORARY})


@dataclass
class Problem:
    kind: ProblemKind
    key: str  # the object key, or the backend's name for temporary data
    detail: str
    removed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "key": self.key,
            "detail": self.detail,
            "removed": self.removed,
        }


@dataclass
class Report:
    """What one run saw and found; ``as_dict`` is the documented ``--json`` shape."""

    storage: str
    grace_seconds: float
    verify: bool = False
    repair: bool = False
    objects: int = 0  # committed objects listed
    temporary: int = 0  # temporary data listed (of running or dead writes)
    in_grace: int = 0  # data with no row, younger than the grace period: left alone
    files: int = 0  # file rows that should have an object
    uploads: int = 0  # unfinished upload rows
    verified: int = 0  # objects re-hashed
    problems: list[Problem] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return sum(problem.removed for problem in self.problems)

    @property
    def clean(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "storage": self.storage,
            "verify": self.verify,
            "repair": self.repair,
            "grace_seconds": self.grace_seconds,
            "counts": {
                "objects": self.objects,
                "temporary": self.temporary,
                "in_grace": self.in_grace,
                "files": self.files,
                "uploads": self.uploads,
                "verified": self.verified,
                "problems": len(self.problems),
                "removed": self.removed,
            },
            "problems": [problem.as_dict() for problem in self.problems],
        }


@dataclass
class _Run:
    """The state of one run: settings, what the listing saw, the report being built."""

    sessions: Sessions
    storage: Storage
    report: Report
    cutoff: datetime  # orphans must be older than this
    started: datetime  # rows changed after this are live: not judged
    full: bool  # also rows against storage (fsck), not only orphans (sweep)
    sizes: dict[str, int] = field(default_factory=dict)  # committed objects (full runs)
    pending: dict[tuple[str, str], int] = field(default_factory=dict)  # (key, token): bytes


async def check(
    sessions: Sessions,
    storage: Storage,
    *,
    grace: timedelta,
    verify: bool = False,
    repair: bool = False,
    orphans_only: bool = False,
    now: datetime | None = None,
) -> Report:
    """Hold ``storage`` against the database; remove orphans with ``repair``. ``now`` stands in
    for the clock when judging ages (tests); ``orphans_only`` skips the rows' side (the sweep)."""
    started = utcnow()
    run = _Run(
        sessions=sessions,
        storage=storage,
        report=Report(
            storage=storage.backend,
            grace_seconds=grace.total_seconds(),
            verify=verify,
            repair=repair,
        ),
        cutoff=(now or started) - grace,
        started=started,
        full=not orphans_only,
    )
    batch: list[StoredEntry] = []
    async for entry in storage.scan(SCANNED_PREFIX):
        batch.append(entry)
        if len(batch) >= LOOKUP_BATCH:
            await _judge_entries(run, batch, repair=repair)
            batch = []
    await _judge_entries(run, batch, repair=repair)
    if run.full:
        await _check_files(run, verify=verify)
        await _check_uploads(run)
    return run.report


# ---------------------------------------------------------------------------------------------
# Storage against rows: orphans.


async def _judge_entries(run: _Run, entries: list[StoredEntry], *, repair: bool) -> None:
    if not entries:
        return
    keys = {entry.key for entry in entries}
    async with run.sessions() as session:
        named = await _named_keys(session, keys)
        states = await _upload_tokens(session, keys)
    for entry in entries:
        if entry.temporary:
            run.report.temporary += 1
            owned = entry.token is not None and entry.token in states.get(entry.key, ())
            if owned:
                assert entry.token is not None
                run.pending[(entry.key, entry.token)] = entry.size
                continue
        else:
            run.report.objects += 1
            if run.full:
                run.sizes[entry.key] = entry.size
            if entry.key in named:
                continue
        if entry.modified >= run.cutoff:
            run.report.in_grace += 1
            continue
        await _orphan(run, entry, repair=repair)


async def _named_keys(session: AsyncSession, keys: set[str]) -> set[str]:
    """The keys among ``keys`` that a file or an upload row names."""
    files = await session.scalars(
        select(SampleFile.storage_key).where(SampleFile.storage_key.in_(keys))
    )
    uploads = await session.scalars(select(Upload.storage_key).where(Upload.storage_key.in_(keys)))
    return set(files) | set(uploads)


async def _upload_tokens(session: AsyncSession, keys: set[str]) -> dict[str, set[str]]:
    """Per key, the writer token of the unfinished uploads writing it."""
    rows = await session.execute(
        select(Upload.storage_key, Upload.storage_state).where(Upload.storage_key.in_(keys))
    )
    tokens: dict[str, set[str]] = {}
    for key, state in rows:
        token = (state or {}).get("token")
        if isinstance(token, str):
            tokens.setdefault(key, set()).add(token)
    return tokens


async def _orphan(run: _Run, entry: StoredEntry, *, repair: bool) -> None:
    """Confirm an orphan (no row names it now either), report it, and remove it if asked; a
    final object is removed while the confirming transaction is still open."""
    kind = ProblemKind.ORPHAN_TEMPORARY if entry.temporary else ProblemKind.ORPHAN_OBJECT
    async with run.sessions() as session:
        keys = {entry.key}
        if entry.temporary:
            tokens = await _upload_tokens(session, keys)
            if entry.token is not None and entry.token in tokens.get(entry.key, ()):
                return
        elif await _named_keys(session, keys):
            return
        problem = Problem(kind, entry.name, _orphan_detail(entry))
        run.report.problems.append(problem)
        if repair:
            problem.removed = await _remove(run.storage, entry, problem)


def _orphan_detail(entry: StoredEntry) -> str:
    when = entry.modified.isoformat(timespec="seconds")
    if entry.upload_id is not None:
        what = f"multipart upload {entry.upload_id} of {entry.key} with no upload row"
    elif entry.temporary:
        what = f"temporary data of {entry.key} with no upload row"
    else:
        what = "object with no file or upload row"
    return f"{what}; {entry.size} bytes, last changed {when}"


async def _remove(storage: Storage, entry: StoredEntry, problem: Problem) -> bool:
    try:
        await storage.remove_entry(entry)
    except WriterBusyError:
        problem.detail += "; not removed: a writer still holds it"
        return False
    except StorageError as exc:
        problem.detail += f"; not removed: {exc}"
        return False
    logger.info("removed %s %s (%s)", problem.kind.value, problem.key, problem.detail)
    return True


# ---------------------------------------------------------------------------------------------
# Rows against storage: missing, wrong size, corrupt.


@dataclass(frozen=True)
class _FileRow:
    id: uuid.UUID
    key: str
    size: int
    md5: str | None
    sha256: str | None


class _Keyed(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


_Row = TypeVar("_Row", bound=_Keyed)


async def _pages(
    sessions: Sessions,
    query: Select[*tuple[Any, ...]],
    key: InstrumentedAttribute[uuid.UUID],
    make: Callable[..., _Row],
) -> AsyncIterator[list[_Row]]:
    """The rows of ``query`` (its first column ``key``) made by ``make``, in pages by ``key``,
    each page read in a session of its own."""
    after: uuid.UUID | None = None
    while True:
        page = query.order_by(key).limit(ROW_PAGE)
        if after is not None:
            page = page.where(key > after)
        async with sessions() as session:
            rows = [make(*row) for row in await session.execute(page)]
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _file_pages(sessions: Sessions, started: datetime) -> AsyncIterator[list[_FileRow]]:
    """Files that should have an object, recorded before the run began, in pages by id."""
    query = select(
        SampleFile.id, SampleFile.storage_key, SampleFile.size, SampleFile.md5, SampleFile.sha256
    ).where(SampleFile.status.in_(STORED_STATUSES), SampleFile.created_at < started)
    return _pages(sessions, query, SampleFile.id, _FileRow)


async def _check_files(run: _Run, *, verify: bool) -> None:
    async for rows in _file_pages(run.sessions, run.started):
        for row in rows:
            run.report.files += 1
            await _check_file(run, row, verify=verify)


async def _check_file(run: _Run, row: _FileRow, *, verify: bool) -> None:
    size = run.sizes.get(row.key)
    if size is None:
        size = await run.storage.size(row.key)  # committed after the listing passed it?
        if size is None:
            await _confirm_file(run, row, ProblemKind.MISSING_OBJECT, "file row with no object")
            return
    if size != row.size:
        size = await run.storage.size(row.key)
        if size is not None and size != row.size:
            detail = f"object has {size} bytes, its file row {row.size}"
            await _confirm_file(run, row, ProblemKind.SIZE_MISMATCH, detail)
        return
    if verify:
        await _verify(run, row)


async def _confirm_file(run: _Run, row: _FileRow, kind: ProblemKind, detail: str) -> None:
    """Report a file's problem if the row is still what it was (not deleted meanwhile)."""
    async with run.sessions() as session:
        current = await session.execute(
            select(
                SampleFile.storage_key, SampleFile.size, SampleFile.md5, SampleFile.sha256
            ).where(SampleFile.id == row.id, SampleFile.status.in_(STORED_STATUSES))
        )
        if current.one_or_none() == (row.key, row.size, row.md5, row.sha256):
            run.report.problems.append(Problem(kind, row.key, f"{detail} (file {row.id})"))


def _update(hashes: tuple[Any, Any], chunk: bytes) -> None:
    for digest in hashes:
        digest.update(chunk)


async def _verify(run: _Run, row: _FileRow) -> None:
    """Re-hash the object, streaming (one chunk in memory), and compare with the row."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    try:
        async for chunk in run.storage.open_range(row.key, chunk_size=VERIFY_CHUNK):
            await anyio.to_thread.run_sync(_update, (md5, sha256), chunk)
            size += len(chunk)
    except StorageError as exc:
        await _confirm_file(run, row, ProblemKind.UNREADABLE_OBJECT, f"could not read: {exc}")
        return
    run.report.verified += 1
    differ = [
        f"{name} {actual} (recorded {recorded})"
        for name, actual, recorded in (
            ("size", str(size), str(row.size)),
            ("md5", md5.hexdigest(), row.md5),
            ("sha256", sha256.hexdigest(), row.sha256),
        )
        if recorded is not None and actual != recorded
    ]
    if differ:
        detail = "stored bytes differ: " + ", ".join(differ)
        await _confirm_file(run, row, ProblemKind.CHECKSUM_MISMATCH, detail)


@dataclass(frozen=True)
class _UploadRow:
    id: uuid.UUID
    key: str
    state: dict[str, Any]
    updated_at: datetime


def _upload_pages(sessions: Sessions, started: datetime) -> AsyncIterator[list[_UploadRow]]:
    """Unfinished uploads not touched since the run began, in pages by id."""
    query = select(Upload.id, Upload.storage_key, Upload.storage_state, Upload.updated_at).where(
        Upload.finished_at.is_(None), Upload.updated_at < started
    )
    return _pages(sessions, query, Upload.id, _UploadRow)


async def _check_uploads(run: _Run) -> None:
    async for rows in _upload_pages(run.sessions, run.started):
        for row in rows:
            run.report.uploads += 1
            await _check_upload(run, row)


async def _check_upload(run: _Run, row: _UploadRow) -> None:
    """An unfinished upload's flushed bytes must be stored, unless its object is already
    committed (a stranded upload, which the tus clean-up finishes)."""
    token, size = (row.state or {}).get("token"), (row.state or {}).get("size")
    if not isinstance(token, str) or not isinstance(size, int) or size <= 0:
        return  # nothing flushed yet: nothing to lose
    if run.pending.get((row.key, token), -1) >= size or row.key in run.sizes:
        return
    if await run.storage.size(row.key) is not None:
        return
    async with run.sessions() as session:
        current = await session.execute(
            select(Upload.storage_state, Upload.updated_at).where(Upload.id == row.id)
        )
        if current.one_or_none() != (row.state, row.updated_at):
            return  # it moved on (or went) meanwhile
    stored = run.pending.get((row.key, token), 0)
    detail = f"unfinished upload {row.id}: {stored} of its {size} recorded bytes are stored"
    run.report.problems.append(Problem(ProblemKind.MISSING_UPLOAD_DATA, row.key, detail))


# ---------------------------------------------------------------------------------------------
# The periodic sweep.


async def sweep_orphans(sessions: Sessions, storage: Storage, *, grace: timedelta) -> Report:
    """Remove orphans older than ``grace``, logging each; the report."""
    report = await check(sessions, storage, grace=grace, repair=True, orphans_only=True)
    left = [problem for problem in report.problems if not problem.removed]
    for problem in left:
        logger.warning("orphan sweep could not remove %s: %s", problem.key, problem.detail)
    return report


@asynccontextmanager
async def orphan_sweep(app: FastAPI) -> AsyncIterator[None]:
    """While the app runs: sweep orphans about every ORPHAN_SWEEP_INTERVAL_SECONDS (0: never),
    each wait drawn at random around it so that the workers of one server spread their sweeps."""
    config: FilesConfig = app.state.files_config
    interval = config.orphan_sweep_interval_seconds
    if not interval:
        yield
        return
    grace = timedelta(hours=config.orphan_grace_hours)

    async def loop(sweep: Callable[[], Awaitable[Report]]) -> None:
        while True:
            # Workers started together would otherwise all list the storage at the same moment.
            await anyio.sleep(interval * random.uniform(0.75, 1.25))  # noqa: S311 (not secret)
            try:
                report = await sweep()
                if report.removed:
                    logger.info("orphan sweep removed %d orphans", report.removed)
            except Exception:
                logger.exception("orphan sweep failed")

    async with anyio.create_task_group() as group:
        group.start_soon(
            loop, lambda: sweep_orphans(app.state.sessionmaker, app.state.storage, grace=grace)
        )
        try:
            yield
        finally:
            group.cancel_scope.cancel()
