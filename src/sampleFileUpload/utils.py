"""Helpers shared by the sheet and file routes: the OpenAPI description of a multipart body the
route reads as a stream itself."""

from __future__ import annotations

from typing import Any


def multipart_body(file_description: str, **fields: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a multipart form with a ``file`` part (for routes that read the
    body as a stream themselves, so FastAPI cannot describe it)."""
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": file_description},
        **fields,
    }
    schema = {"type": "object", "required": ["file"], "properties": properties}
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": schema}},
        }
    }
