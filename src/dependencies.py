"""Kernel dependencies: the request's database session, paging and the object storage.

Routes declare what they need with these ``Annotated`` aliases. The caller and the role guards
are auth's (src/auth/dependencies.py); loading and authorising a domain's records is in that
domain's dependencies.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from src.database import get_session
from src.schemas import Page
from src.storage import Storage

MAX_PAGE_SIZE = 100

# scope="function": the transaction commits when the route returns, before the response is sent.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def paging(
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="items per page")] = 20,
) -> Page:
    return Page(page=page, page_size=page_size)


PageDep = Annotated[Page, Depends(paging)]


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


StorageDep = Annotated[Storage, Depends(get_storage)]
