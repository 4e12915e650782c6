"""Shapes of the sequence-file routes that are theirs alone (a File itself is the study
module's ``FileRead``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ChecksumProblem(BaseModel):
    """An item of CHECKSUM_MISMATCH's ``errors``: a declared whole-file digest (hex) and the one
    computed from the bytes received."""

    algorithm: Literal["md5", "sha256"]
    declared: str
    computed: str
