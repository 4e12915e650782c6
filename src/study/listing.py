"""The study list (``GET /studies``): one Core statement per kind of list, built once, that reads
a page of studies as plain rows, with their owner, the caller's membership and the total.

A list is the most frequent request, and building it like the other reads (ORM statements built
per request, studies loaded as models, the total in a statement of its own) spent most of its
time in SQLAlchemy rather than in the database: constructing the statements and their cache
keys, and creating an instance with its state for every row. Here each kind of list (scope,
sort, which filters are given) is built once with bound parameters for everything that varies,
so its cache key is computed once and its compiled form is reused; the rows are read as tuples
(Core, no identity map), and the total rides along on every row of the page as an uncorrelated
sub-query (PostgreSQL runs it once per statement). Only a page past the end, which has no rows,
asks for the total on its own.

A search's total is counted up to a limit (SEARCH_TOTAL_LIMIT, 1,000 by default, where code
search engines stop too), and past it the page says ``total_exact: false``: a common word
matches a fixed share of the archive, and counting every match is a scan that grows with it
(340 ms for 200k matches in 1M studies; 3.5 ms to 1,001), while the page itself stops at its
last row. ``?exact_total=true`` counts them all.

Who sees what is visibility.py's: the same scope rules in SQL, the same role per row
(``role_of``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    null,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.database import like_pattern, today
from src.schemas import Page, PageOf
from src.study import counters, visibility
from src.study.constants import StudySort, StudyStatus
from src.study.models import Sample, Study, StudyMember

STUDY = cast(Table, Study.__table__)
MEMBER = cast(Table, StudyMember.__table__)
SAMPLE = cast(Table, Sample.__table__)
USER = cast(Table, User.__table__)

# A row of a list's page: the study's columns the item shows, with the owner's id and name and
# the caller's member role where the item has its ``owner`` and ``my_role``, then the total.
# Items are built in StudyRead's field order, which is the order of the JSON written for them.
HEAD_COLUMNS = (
    "id",
    "accession",
    "title",
    "description",
    "authors",
    "status",
    "release_date",
    "review_comment",
)
TAIL_COLUMNS = (
    "sample_count",
    "file_count",
    "total_bytes",
    "created_at",
    "updated_at",
    "submitted_at",
    "published_at",
)
_HEAD = len(HEAD_COLUMNS)
_OWNER_ID, _OWNER_NAME, _MEMBER_ROLE = _HEAD, _HEAD + 1, _HEAD + 2
_TAIL = _HEAD + 3
_TOTAL = _TAIL + len(TAIL_COLUMNS)
_STATUS = HEAD_COLUMNS.index("status")
_RELEASE_DATE = HEAD_COLUMNS.index("release_date")


class ListKind(NamedTuple):
    """What a list statement depends on besides its parameters' values."""

    scope: visibility.Scope
    sort: StudySort
    signed_in: bool
    status: bool
    search: bool
    organism: bool
    # A search's total is counted up to this many and one more (None: every match).
    count_limit: int | None = None


def _sort_keys(sort: StudySort) -> list[tuple[ColumnElement[Any], bool]]:
    """The sort's key expressions on the study table, each with whether it is descending
    (the id breaks ties, so a page boundary is stable)."""
    c = STUDY.c
    keys: dict[str, list[tuple[ColumnElement[Any], bool]]] = {
        StudySort.NEWEST: [(c.created_at, True), (c.id, True)],
        StudySort.OLDEST: [(c.created_at, False), (c.id, False)],
        StudySort.RECENTLY_UPDATED: [(c.updated_at, True), (c.id, True)],
        StudySort.TITLE: [(func.lower(c.title), False), (c.id, False)],
    }
    return keys[sort]


def _ordered(keys: Sequence[tuple[ColumnElement[Any], bool]]) -> list[ColumnElement[Any]]:
    return [key.desc() if descending else key.asc() for key, descending in keys]


def _filters(kind: ListKind) -> list[ColumnElement[bool]]:
    """The WHERE of a list: the scope the caller may see, then the filters asked for, each
    value a bound parameter (``status``, ``pattern``, ``organism``, ``today``)."""
    c = STUDY.c
    conditions: list[ColumnElement[bool]] = []
    if kind.scope == visibility.Scope.PUBLIC or not kind.signed_in:
        conditions.append(Study.public_clause(c, on=bindparam("today")))
    if kind.status:
        conditions.append(c.status == bindparam("status"))
    if kind.search:
        # Written into the statement's text when it runs (literal_execute), so PostgreSQL plans
        # it for the term: see database.contains.
        pattern = bindparam("pattern", type_=String(), literal_execute=True)
        conditions.append(c.search_text.like(pattern, escape="\\"))
    if kind.organism:
        conditions.append(
            exists().where(
                SAMPLE.c.study_id == c.id,
                func.lower(SAMPLE.c.organism) == bindparam("organism", type_=String()),
            )
        )
    return conditions


def _page_ids(kind: ListKind) -> tuple[Select[Any], ColumnElement[Any]]:
    """The ids of the page's studies (a sub-query's SELECT) and the total it is a page of."""
    c = STUDY.c
    conditions = _filters(kind)
    keys = _sort_keys(kind.sort)
    # Without filters, the total is kept, not counted (study/counters.py): it stays the same
    # price with 1k or 1M studies.
    unfiltered = not (kind.status or kind.search or kind.organism)
    if kind.scope != visibility.Scope.MINE or not kind.signed_in:
        matching = select(c.id).where(and_(true(), *conditions))
        total: ColumnElement[Any]
        if unfiltered and (kind.scope == visibility.Scope.PUBLIC or not kind.signed_in):
            total = counters.public_total_expression(on=bindparam("today"))
        elif unfiltered and kind.scope == visibility.Scope.ALL:
            total = counters.all_total_expression()
        else:
            total = _counted(matching, kind.count_limit)
        ids = (
            matching.order_by(*_ordered(keys)).offset(bindparam("offset")).limit(bindparam("limit"))
        )
        return ids, total
    # The caller's studies: those they own (by the owner index, in sort order) and those they
    # are a member of (by the membership index), each branch cut at the end of the page before
    # the two are merged, so the page costs the same with 10 or 100k studies of one's own; the
    # total is the two branches counted.
    user_id = bindparam("user_id", type_=c.owner_id.type)
    owned = [c.owner_id == user_id, *conditions]
    joined = [MEMBER.c.user_id == user_id, c.owner_id != user_id, *conditions]

    def branch(where: list[ColumnElement[bool]], *, member: bool) -> Select[Any]:
        statement = select(c.id, *(key.label(f"k{n}") for n, (key, _) in enumerate(keys)))
        if member:
            statement = statement.join(MEMBER, MEMBER.c.study_id == c.id)
        # Wrapped: SQLite takes no ORDER BY or LIMIT on a member of a UNION itself.
        cut = statement.where(*where).order_by(*_ordered(keys)).limit(bindparam("cut"))
        return select(cut.subquery())

    def counted(where: list[ColumnElement[bool]], *, member: bool) -> ColumnElement[Any]:
        statement = select(c.id)
        if member:
            statement = statement.join(MEMBER, MEMBER.c.study_id == c.id)
        return _counted(statement.where(*where), kind.count_limit)

    merged = union_all(branch(owned, member=False), branch(joined, member=True)).subquery()
    merged_keys = [(merged.c[f"k{n}"], descending) for n, (_, descending) in enumerate(keys)]
    ids = (
        select(merged.c.id)
        .order_by(*_ordered(merged_keys))
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )
    if unfiltered:
        return ids, counters.owned_total_expression(user_id) + counted(joined, member=True)
    return ids, counted(owned, member=False) + counted(joined, member=True)


def _counted(matching: Select[Any], limit: int | None) -> ColumnElement[Any]:
    """The number of rows ``matching`` selects, or of its first ``limit + 1`` (more than
    ``limit`` means past the limit); in its own FROM, never correlated with the page's row."""
    if limit is None:
        counting = matching.with_only_columns(func.count(), maintain_column_froms=True)
    else:
        # A constant in the statement's text (each limit has its own statement), so the
        # planner knows the scan may stop after that many rows.
        first = matching.limit(literal_column(str(limit + 1))).subquery()
        counting = select(func.count()).select_from(first)
    return counting.correlate(None).scalar_subquery()


@functools.cache
def statements(kind: ListKind) -> tuple[Select[Any], Select[Any]]:
    """The page's statement (the items' columns, the owner's id and name, the caller's member
    role, the total) and the total's own, for a page with no rows; built once per kind."""
    c = STUDY.c
    ids_select, total = _page_ids(kind)
    ids = ids_select.subquery()
    if kind.signed_in:
        member_role: ColumnElement[Any] = (
            select(MEMBER.c.role)
            .where(MEMBER.c.study_id == c.id, MEMBER.c.user_id == bindparam("user_id"))
            .correlate(STUDY)
            .scalar_subquery()
        )
    else:
        member_role = null()
    page = (
        select(
            *(c[name] for name in HEAD_COLUMNS),
            USER.c.id,
            USER.c.full_name,
            member_role,
            *(c[name] for name in TAIL_COLUMNS),
            total.label("total"),
        )
        .select_from(ids)
        .join(STUDY, c.id == ids.c.id)
        .join(USER, USER.c.id == c.owner_id)
        .order_by(*_ordered(_sort_keys(kind.sort)))
    )
    return page, select(total.label("total"))


async def list_studies(
    session: AsyncSession,
    *,
    user: User | None,
    scope: visibility.Scope,
    status: StudyStatus | None,
    q: str | None,
    organism: str | None,
    sort: StudySort,
    page: Page,
    search_total_limit: int | None = None,
) -> PageOf[dict[str, Any]]:
    """A page of the studies ``user`` may see in ``scope``, as the plain values of StudyRead.
    A search counts its matches up to ``search_total_limit`` (None: all of them)."""
    term = q.strip().casefold() if q else ""
    organism_name = organism.strip().lower() if organism else ""
    kind = ListKind(
        scope=scope,
        sort=sort,
        signed_in=user is not None,
        status=status is not None,
        search=bool(term),
        organism=bool(organism_name),
        count_limit=search_total_limit if term else None,
    )
    page_statement, total_statement = statements(kind)
    parameters: dict[str, Any] = {
        "offset": page.offset,
        "limit": page.page_size,
        "cut": page.offset + page.page_size,
        "today": today(),
        "status": status,
        "pattern": like_pattern(term),
        "organism": organism_name,
        "user_id": user.id if user is not None else None,
    }
    # A statement takes the parameters it names and leaves the others.
    rows = (await session.execute(page_statement, parameters)).all()
    if rows:
        total = rows[0][_TOTAL]
    else:
        total = (await session.execute(total_statement, parameters)).scalar_one()
    limit = kind.count_limit
    exact = limit is None or total <= limit
    if limit is not None and not exact:
        total = limit
    items = []
    for row in rows:
        role = visibility.role_of(
            row[_OWNER_ID], row[_STATUS], row[_RELEASE_DATE], user, row[_MEMBER_ROLE]
        )
        if role is None:  # filtered in SQL already; kept as a guard against a visibility leak
            continue
        item = dict(zip(HEAD_COLUMNS, row, strict=False))
        item["owner"] = {"id": row[_OWNER_ID], "full_name": row[_OWNER_NAME]}
        item["my_role"] = role
        item.update(zip(TAIL_COLUMNS, row[_TAIL:_TOTAL], strict=True))
        items.append(item)
    return {
        "items": items,
        "total": total,
        "page": page.page,
        "page_size": page.page_size,
        "total_exact": exact,
    }
