"""Routes of the sample-sheet and sequence-file module."""

from fastapi import APIRouter

router = APIRouter()
