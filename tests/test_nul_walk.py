"""Every operation of the OpenAPI document, with a NUL in each of its query and path
parameters and in each top-level string field of its JSON or form body, anonymously, as the
study's owner and as an admin: always a 4xx (422 where the value reaches validation), never a
5xx. The other parameters are valid: an existing study, sample, file and user."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.config import Settings
from src.study.models import Study
from tests.factories import auth_headers, create_user
from tests.study.factories import create_study

NUL = "a\x00b"
HTTP_METHODS = {"get", "put", "post", "delete", "head", "patch"}
JSON, FORM = "application/json", "application/x-www-form-urlencoded"


@dataclass
class Attempt:
    method: str
    path: str
    target: str  # where the NUL is, e.g. "query q", "path study", "body title"
    params: dict[str, str] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _types(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    schema = _resolve(document, schema)
    found = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    if "enum" in schema:
        found.add("string")
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= _types(document, option)
    return found


def _valid(document: dict[str, Any], name: str, schema: dict[str, Any]) -> Any:
    """A plausible valid value of a body field."""
    schema = _resolve(document, schema)
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return _valid(document, name, option)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "array":
        return []
    if kind == "integer":
        return 1
    if kind == "boolean":
        return True
    if kind == "object":
        return {}
    if schema.get("format") == "email" or name == "email":
        return "someone@example.org"
    return "correct-horse-battery-staple"


def _body_attempts(
    document: dict[str, Any], method: str, path: str, content: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """(field, body) pairs: a valid body with a NUL in one top-level string field."""
    media = next(
        (m for m in ("application/json", "application/x-www-form-urlencoded") if m in content), None
    )
    if media is None:
        return []
    schema = _resolve(document, content[media]["schema"])
    properties: dict[str, Any] = schema.get("properties", {})
    valid = {
        name: _valid(document, name, sub)
        for name, sub in properties.items()
        if name in schema.get("required", [])
    }
    out = []
    for name, sub in properties.items():
        kinds = _types(document, sub)
        if "string" in kinds:
            out.append((name, {**valid, name: NUL}))
        elif "array" in kinds:
            out.append((name, {**valid, name: [NUL]}))
    return out


def attempts(document: dict[str, Any], values: dict[str, str]) -> list[Attempt]:
    found: list[Attempt] = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            parameters = [
                p for p in operation.get("parameters", []) if p["in"] in {"query", "path"}
            ]
            for parameter in parameters:
                name, where = parameter["name"], parameter["in"]
                if where == "path":
                    target_path = path.replace("{" + name + "}", quote(NUL, safe=""))
                    found.append(Attempt(method, target_path, f"path {name}"))
                else:
                    found.append(Attempt(method, path, f"query {name}", params={name: NUL}))
            content = operation.get("requestBody", {}).get("content", {})
            for name, body in _body_attempts(document, method, path, content):
                is_json = JSON in content
                found.append(
                    Attempt(
                        method,
                        path,
                        f"body {name}",
                        json=body if is_json else None,
                        form=None if is_json else {k: str(v) for k, v in body.items()},
                    )
                )
    for attempt in found:
        for name, value in values.items():
            attempt.path = attempt.path.replace("{" + name + "}", value)
    return found


@pytest.fixture
async def values(session: AsyncSession, owner: User, app: FastAPI) -> dict[str, str]:
    study: Study = await create_study(session, owner=owner, samples=1, files=True)
    return {
        "study": study.accession,
        "sample_id": "S1",
        "filename": "S1_R1.fastq",
        "file_id": "00000000-0000-4000-8000-000000000000",
        "upload_id": "00000000-0000-4000-8000-000000000001",
        "user_id": str(owner.id),
    }


async def send(
    client: httpx.AsyncClient, attempt: Attempt, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(
        attempt.method.upper(),
        attempt.path,
        params=attempt.params,
        json=attempt.json,
        data=attempt.form,
        headers={**headers, "Tus-Resumable": "1.0.0"},
    )


async def test_a_nul_anywhere_is_never_a_5xx(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    headers: dict[str, str],
    values: dict[str, str],
) -> None:
    admin = auth_headers(settings, await create_user(session, role="admin"))
    document = app.openapi()
    found = attempts(document, values)
    assert len(found) > 60
    assert {a.target for a in found} >= {"query q", "path study", "body title", "body full_name"}
    failures = []
    for attempt in found:
        for caller, caller_headers in (("anonymous", {}), ("owner", headers), ("admin", admin)):
            response = await send(client, attempt, caller_headers)
            status = response.status_code
            if not 400 <= status < 500:
                failures.append((caller, attempt.method, attempt.path, attempt.target, status))
            elif caller == "owner" and status != 422 and attempt.target.split()[0] != "body":
                # A NUL in a query or path parameter reaches validation before anything else.
                failures.append((caller, attempt.method, attempt.path, attempt.target, status))
    assert failures == []
