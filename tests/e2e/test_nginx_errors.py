"""CORS on the errors nginx raises itself, in front of the real API.

A browser app on an allowed origin must be able to read every answer, including the ones the API
never sees: nginx's 413 for a body over the route's limit. The API's own answers keep the API's
CORS headers (nginx adds nothing of its own to them). The API-down case (502) is in
tests/test_deploy.py, where nginx runs in front of a port nothing listens on.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import BROWSER_APP_ORIGIN, Stack
from tests.e2e.helpers import expect

pytestmark = pytest.mark.e2e

TOO_BIG = b'{"email": "' + b"x" * (2 * 1024 * 1024) + b'"}'
FOREIGN_ORIGINS = ["http://elsewhere.test", f"{BROWSER_APP_ORIGIN}.evil.test"]


def too_big_login(stack: Stack, origin: str) -> httpx.Response:
    with stack.client() as client:
        return client.post(
            "/api/v1/auth/login",
            content=TOO_BIG,
            headers={"Content-Type": "application/json", "Origin": origin},
        )


def test_nginx_413_carries_cors_for_the_apis_allowed_origin(local_stack: Stack) -> None:
    response = expect(too_big_login(local_stack, BROWSER_APP_ORIGIN), 413)
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert response.json()["request_id"] == response.headers["X-Request-ID"]
    assert response.headers.get_list("Access-Control-Allow-Origin") == [BROWSER_APP_ORIGIN]
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_nginx_413_gives_no_cors_to_another_origin(local_stack: Stack, origin: str) -> None:
    response = expect(too_big_login(local_stack, origin), 413)
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_the_apis_own_errors_keep_the_apis_cors_answer(local_stack: Stack) -> None:
    with local_stack.client() as client:
        response = expect(
            client.get("/api/v1/auth/me", headers={"Origin": BROWSER_APP_ORIGIN}), 401
        )
        foreign = expect(client.get("/api/v1/auth/me", headers={"Origin": FOREIGN_ORIGINS[0]}), 401)
    assert response.headers.get_list("Access-Control-Allow-Origin") == [BROWSER_APP_ORIGIN]
    # The API's list of exposed headers, not nginx's shorter one.
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in foreign.headers
