"""Schemas shared by every module, and the one paging path: ``Page`` (what a list was asked
for), ``paginate`` (the count and the page's query, run the same way for every list) and
``Paginated`` (the envelope a list endpoint answers with); and ``Input``, the base of every
request body, which keeps the text rule (src/text.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NotRequired, TypedDict, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import Select, func
from sqlalchemy.ext.asyncio import AsyncSession

from src import text

ItemT = TypeVar("ItemT")


class Input(BaseModel):
    """Base of every JSON request body: unknown fields are refused, and every string in it (in
    lists and dicts too, keys included) keeps the text rule: one line, no control characters,
    unless its annotation names ``MULTI_LINE`` or ``OWN_RULE`` (src/text.py). A nested model
    keeps its own rules (an Input checks itself; a checklist sample is the checklist's)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _text_rule(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is not None:
            text.check_nested(value, text.kind_of(cls.model_fields[info.field_name]))
        return value


class Paginated(BaseModel, Generic[ItemT]):
    """``{"items": [...], "total": N, "page": 1, "page_size": 20, "total_exact": true}``.

    ``total_exact`` is false only where a list counts up to a limit: a study search
    (src/study/listing.py) past SEARCH_TOTAL_LIMIT matches, where ``total`` is that limit."""

    model_config = ConfigDict(from_attributes=True)

    items: list[ItemT]
    total: int
    page: int
    page_size: int
    total_exact: bool = Field(
        default=True,
        description="false: more match than total says (a study search counts up to "
        "SEARCH_TOTAL_LIMIT; ask for exact_total=true to count them all)",
    )


@dataclass(frozen=True)
class Page:
    """Validated ``?page=&page_size=``, with the SQL offset it implies."""

    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


class PageOf(TypedDict, Generic[ItemT]):
    """One page of a list, as the service returns it: the route's ``Paginated[...]`` response
    model serialises it (the items may be ORM objects or views)."""

    items: list[ItemT]
    total: int
    page: int
    page_size: int
    total_exact: NotRequired[bool]  # true when left out


def plain_json(value: Any) -> bytes:
    """JSON of plain values, byte for byte what pydantic writes for them under a response model
    of the same shape (tests/study/test_studies.py compares the two for the study list): dicts,
    lists, str, int, None, UUIDs, dates, datetimes in UTC (``Z``), string enums.

    For a route whose values come typed from the database's columns: returned as a Response,
    they are serialised once, without FastAPI validating them into models and serialising those
    (for a page of 100 studies, 65 us instead of 340 us)."""
    return orjson.dumps(value, default=_uuid_text, option=orjson.OPT_UTC_Z)


def _uuid_text(value: Any) -> str:
    """What orjson leaves to us: UUIDs of a UUID subclass (asyncpg returns its own)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a plain JSON value")


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    *,
    page: Page,
    load: Callable[[Select[Any]], Awaitable[Sequence[ItemT]]] | None = None,
) -> PageOf[ItemT]:
    """The page of ``statement`` and the number of rows it matches.

    ``statement`` is the list's filtered and ordered SELECT, without loader options: the total
    counts rows of the same FROM and WHERE, the page is the statement with OFFSET and LIMIT.
    ``load`` runs the page's statement (to add loader options, or to load the page's rows by
    their ids); by default its scalars are the items."""
    counting = statement.with_only_columns(func.count(), maintain_column_froms=True)
    total = (await session.execute(counting.order_by(None))).scalar_one()
    paged = statement.offset(page.offset).limit(page.page_size)
    if load is None:
        items: Sequence[ItemT] = (await session.scalars(paged)).all()
    else:
        items = await load(paged)
    return {"items": list(items), "total": total, "page": page.page, "page_size": page.page_size}
