"""Routes of the dashboard: read-only aggregates and public statistics."""

from fastapi import APIRouter

router = APIRouter(tags=["dashboard"])
