"""Shapes of the tus routes' work: the checked target of a new upload and a checked PATCH. The
protocol speaks in headers, not bodies, so there are no request or response models."""

from __future__ import annotations

from dataclasses import dataclass

from src.sampleFileUpload.tus.protocol import ChunkChecksum
from src.study.constants import ReadKind
from src.study.models import Sample, Upload
from src.study.visibility import StudyView


@dataclass(frozen=True)
class UploadTarget:
    """What a new upload will become: a file of ``sample`` with these name, read and checksums."""

    view: StudyView
    sample: Sample
    filename: str
    read: ReadKind
    length: int
    declared_md5: str | None
    declared_sha256: str | None
    upload_metadata: str | None


@dataclass(frozen=True)
class ChunkRequest:
    """A PATCH whose headers were checked: the upload at the client's offset, and the chunk's
    declared checksum if any."""

    upload: Upload
    checksum: ChunkChecksum | None
