"""The app against its own OpenAPI document, with schemathesis generating the requests.

The document is the app's own (``app.openapi()``, what /openapi.json serves); each operation is
called through ASGI with generated data (positive and negative) anonymously, as a throw-away
researcher and as an admin, and every answer must be no 5xx and match the document: status
code, content type, headers and body schema.
Examples are bounded (``MAX_EXAMPLES`` per operation and caller), so the module costs minutes.

The app runs with real commits on a database of its own (SQLite in a temporary folder, or a
fresh PostgreSQL database beside TEST_DATABASE_URL's), started once for the module by
schemathesis' ASGI transport and shut down at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from src.app import create_app
from src.config import Settings
from src.database import is_sqlite, upgrade_database
from tests.databases import create_database, drop_database

# Per operation and caller; MOSAIC_FUZZ_EXAMPLES raises it for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("MOSAIC_FUZZ_EXAMPLES", "6"))
ADMIN_EMAIL = "fuzz-admin@example.org"
PASSWORD = "fuzz-password-0123456"
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Seconds one generated request may take before the run calls it hung. Schemathesis' default, 10 s,
# is a speed limit: on a loaded 2-core CI machine ordinary in-process work was seen to stall for
# 15-24 s (a fixture's set-up, a sheet parse), and a DELETE answered 422 was cut at 10 s. A
# request that never ends still fails; a slow machine no longer does.
REQUEST_TIMEOUT = 300
# Logging out ends the caller's access tokens (logout-all every session of the caller): either
# would leave the rest of the run unauthenticated.
EXCLUDED = ["logout", "logout_all"]
# A tus chunk (PATCH, creation-with-upload) is raw bytes, sent as octet-stream bodies are.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


@dataclass
class Served:
    app: FastAPI
    headers: dict[str, dict[str, str]]


def _login(client: asgi.ASGIClient, email: str) -> dict[str, str]:
    response = client.post(
        f"http://{asgi.HOST}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory: Path = tmp_path_factory.mktemp("fuzz")
    base = os.environ.get("TEST_DATABASE_URL")
    name = None
    if not base or is_sqlite(base):
        url = f"sqlite+aiosqlite:///{directory / 'fuzz.db'}"
    else:
        name, url = asyncio.run(create_database(base, "mosaic_fuzz"))
    environment = pytest.MonkeyPatch()
    # Read by the auth module's own settings at start-up.
    for variable, value in {
        "FIRST_ADMIN_EMAIL": ADMIN_EMAIL,
        "FIRST_ADMIN_PASSWORD": PASSWORD,
        "LOGIN_RATE_LIMIT": "100000/minute",
        "LOGIN_IP_RATE_LIMIT": "100000/minute",
        "REGISTER_RATE_LIMIT": "100000/minute",
        "LOOKUP_RATE_LIMIT": "100000/minute",
    }.items():
        environment.setenv(variable, value)
    try:
        upgrade_database(url)
        app = create_app(
            Settings(
                _env_file=None,
                environment="test",
                database_url=url,
                data_dir=directory / "data",
                secret_key="fuzz-secret-key-that-is-long-enough-0123456789",
            )
        )
        with asgi.get_client(app) as client:  # type: ignore[arg-type]  # Starlette's ASGI types are wider than schemathesis's
            researcher = f"fuzz-{uuid.uuid4().hex[:8]}@example.org"
            registered = client.post(
                f"http://{asgi.HOST}/api/v1/auth/register",
                json={"email": researcher, "password": PASSWORD, "full_name": "Fuzz Researcher"},
            )
            assert registered.status_code == 201, registered.text
            headers = {
                "anonymous": {},
                "researcher": _login(client, researcher),
                "admin": _login(client, ADMIN_EMAIL),
            }
        yield Served(app=app, headers=headers)
    finally:
        asgi.shutdown_lifespans()
        environment.undo()
        if name is not None:
            assert base is not None
            asyncio.run(drop_database(base, name))


def _document() -> dict[str, Any]:
    """The app's document, as /openapi.json serves it. Building an app touches no database (its
    lifespan does), so the operations are known when tests are collected; ``from_fixture``'s lazy
    schema, which would load it through ASGI, does not run under this pytest."""
    return create_app(Settings(_env_file=None, environment="test", secret_key="x" * 40)).openapi()


schema = schemathesis.openapi.from_dict(_document()).exclude(operation_id=EXCLUDED)
BASE_URL = f"http://{asgi.HOST}"

bounded = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _call_and_validate(case: Any, served: Served, caller: str) -> None:
    case.call_and_validate(
        app=served.app,
        base_url=BASE_URL,
        headers=served.headers[caller],
        checks=CHECKS,
        timeout=REQUEST_TIMEOUT,
    )


@schema.parametrize()
@bounded
def test_anonymous_answers_match_the_document(case: Any, served: Served) -> None:
    _call_and_validate(case, served, "anonymous")


@schema.parametrize()
@bounded
def test_researcher_answers_match_the_document(case: Any, served: Served) -> None:
    _call_and_validate(case, served, "researcher")


@schema.parametrize()
@bounded
def test_admin_answers_match_the_document(case: Any, served: Served) -> None:
    _call_and_validate(case, served, "admin")
