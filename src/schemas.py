"""Schemas shared by every module: the page envelope of list endpoints."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

ItemT = TypeVar("ItemT")


class Paginated(BaseModel, Generic[ItemT]):
    """``{"items": [...], "total": N, "page": 1, "page_size": 20}``."""

    model_config = ConfigDict(from_attributes=True)

    items: list[ItemT]
    total: int
    page: int
    page_size: int
