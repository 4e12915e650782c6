"""The module's routes: sample sheets, sequence files and tus uploads, each from its
sub-package's router."""

from __future__ import annotations

from fastapi import APIRouter

from src.sampleFileUpload.files.router import files_router
from src.sampleFileUpload.sheets.router import sheet_router
from src.sampleFileUpload.tus.router import tus_router

router = APIRouter()
router.include_router(sheet_router)
router.include_router(files_router)
router.include_router(tus_router)
