"""Every failure answers with the one envelope, a stable code and the request id."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from src.exceptions import (
    EXAMPLE_REQUEST_ID,
    AppError,
    ErrorOut,
    error_example,
    error_responses,
)


class TeapotError(AppError):
    status_code = 418
    code = "TEAPOT"
    message = "I am a teapot."


class Payload(BaseModel):
    count: int


@pytest.fixture
def app_with_test_routes(app: FastAPI) -> FastAPI:
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    async def refuse() -> None:
        raise TeapotError(errors=[{"field": "x"}], headers={"Retry-After": "3"})

    async def echo(payload: Payload) -> Payload:
        return payload

    app.add_api_route("/test/boom", boom, methods=["GET"])
    app.add_api_route("/test/refuse", refuse, methods=["GET"])
    app.add_api_route("/test/echo", echo, methods=["POST"])
    return app


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body)


class TestEnvelope:
    async def test_unknown_route_is_404(self, client: httpx.AsyncClient) -> None:
        assert_envelope(await client.get("/no/such/route"), 404, "NOT_FOUND")

    async def test_wrong_method_is_405(self, client: httpx.AsyncClient) -> None:
        response = await client.delete("/healthz")
        assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
        assert "GET" in response.headers["allow"]

    async def test_malformed_body_is_422_with_each_error(
        self, app_with_test_routes: FastAPI, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/test/echo", json={"count": "many"})
        body = assert_envelope(response, 422, "VALIDATION_ERROR")
        assert body["errors"] == [
            {
                "loc": ["body", "count"],
                "code": "int_parsing",
                "message": "Input should be a valid integer, unable to parse string as an integer",
            }
        ]

    @pytest.mark.parametrize(
        ("content", "content_type"),
        [
            (b"{not json", "application/json"),
            (b"\xff\xfe{", "application/json"),
            (b"\xff\xfe{", "application/json; charset=utf-8"),
            (b'{"count": "\xe9"}', "application/json"),
            (b'{"count": 1', "application/json"),
            (b"[1, 2", "application/merge-patch+json"),
        ],
    )
    async def test_malformed_json_is_422_with_one_code(
        self,
        app_with_test_routes: FastAPI,
        client: httpx.AsyncClient,
        content: bytes,
        content_type: str,
    ) -> None:
        response = await client.post(
            "/test/echo", content=content, headers={"content-type": content_type}
        )
        assert_envelope(response, 422, "MALFORMED_JSON")
        errors = response.json()["errors"]
        assert errors
        assert {error["code"] for error in errors} == {"json_invalid"}

    async def test_malformed_json_on_a_real_endpoint(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/v1/auth/login",
            content=b"\xff\xfe{",
            headers={"content-type": "application/json"},
        )
        assert_envelope(response, 422, "MALFORMED_JSON")

    @pytest.mark.parametrize(
        ("content", "content_type"),
        [
            (b"username=a", "multipart/form-data"),
            (b"\xff\xfe--xyz--", "multipart/form-data; boundary=xyz"),
        ],
    )
    async def test_broken_multipart_is_422_with_one_code(
        self, client: httpx.AsyncClient, content: bytes, content_type: str
    ) -> None:
        response = await client.post(
            "/api/v1/auth/token", content=content, headers={"content-type": content_type}
        )
        assert_envelope(response, 422, "MALFORMED_MULTIPART")

    async def test_well_formed_json_of_the_wrong_shape_stays_a_validation_error(
        self, app_with_test_routes: FastAPI, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/test/echo", content=b"[]", headers={"content-type": "application/json"}
        )
        assert_envelope(response, 422, "VALIDATION_ERROR")

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("OPTIONS", "/api/v1/auth/me", "GET, PATCH"),
            ("PUT", "/api/v1/auth/me", "GET, PATCH"),
            ("POST", "/api/v1/files/00000000-0000-0000-0000-000000000000", "DELETE, GET"),
            ("PUT", "/api/v1/files/00000000-0000-0000-0000-000000000000/download", "GET, HEAD"),
            ("GET", "/api/v1/uploads", "OPTIONS, POST"),
        ],
    )
    async def test_wrong_method_allows_every_method_of_the_resource(
        self, client: httpx.AsyncClient, method: str, path: str, allow: str
    ) -> None:
        response = await client.request(method, path)
        assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["allow"] == allow

    async def test_app_error_keeps_status_code_errors_and_headers(
        self, app_with_test_routes: FastAPI, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/test/refuse")
        body = assert_envelope(response, 418, "TEAPOT")
        assert body["detail"] == "I am a teapot."
        assert body["errors"] == [{"field": "x"}]
        assert response.headers["retry-after"] == "3"

    async def test_unexpected_error_is_500_without_internals_and_logged_with_request_id(
        self,
        app_with_test_routes: FastAPI,
        client: httpx.AsyncClient,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        with caplog.at_level(logging.ERROR):
            response = await client.get("/test/boom", headers={"X-Request-ID": "trace-me"})
        body = assert_envelope(response, 500, "INTERNAL_ERROR")
        assert "hunter2" not in response.text
        assert "Traceback" not in response.text
        assert body["request_id"] == "trace-me"
        logged = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert logged
        assert logged[0].exc_info is not None
        assert "hunter2" in str(logged[0].exc_info[1])
        assert getattr(logged[0], "request_id", None) == "trace-me"


class _GoneError(AppError):
    status_code = 410
    code = "GONE_FOR_GOOD"
    description = "The thing is gone"


class _AlsoGoneError(AppError):
    status_code = 410
    code = "ALSO_GONE"
    description = "Archived"


class _UndescribedError(AppError):
    status_code = 410
    code = "UNDESCRIBED"


class _ConflictError(AppError):
    status_code = 409
    code = "CONFLICTING"


def _content(*errors: type[AppError]) -> dict[str, Any]:
    examples = {str(error.code): error_example(error) for error in errors}
    return {"application/json": {"examples": examples}}


class TestErrorResponses:
    def test_the_status_comes_from_each_class(self) -> None:
        assert error_responses(_GoneError, _ConflictError) == {
            410: {
                "model": ErrorOut,
                "description": "The thing is gone",
                "content": _content(_GoneError),
            },
            409: {"model": ErrorOut, "content": _content(_ConflictError)},
        }

    def test_each_class_is_an_example_with_its_real_code(self) -> None:
        examples = error_responses(_GoneError, _AlsoGoneError)[410]["content"]["application/json"]
        assert examples["examples"] == {
            "GONE_FOR_GOOD": {
                "summary": "The thing is gone",
                "value": {
                    "code": "GONE_FOR_GOOD",
                    "detail": AppError.message,
                    "request_id": EXAMPLE_REQUEST_ID,
                },
            },
            "ALSO_GONE": {
                "summary": "Archived",
                "value": {
                    "code": "ALSO_GONE",
                    "detail": AppError.message,
                    "request_id": EXAMPLE_REQUEST_ID,
                },
            },
        }

    def test_descriptions_of_one_status_are_joined_once_each(self) -> None:
        responses = error_responses(_GoneError, _UndescribedError, _AlsoGoneError, _GoneError)
        assert responses == {
            410: {
                "model": ErrorOut,
                "description": "The thing is gone or Archived",
                "content": _content(_GoneError, _UndescribedError, _AlsoGoneError),
            }
        }

    def test_a_route_may_reword_a_status(self) -> None:
        assert error_responses(
            _GoneError, _ConflictError, descriptions={410: None, 409: "Busy"}
        ) == {
            410: {"model": ErrorOut, "content": _content(_GoneError)},
            409: {"model": ErrorOut, "description": "Busy", "content": _content(_ConflictError)},
        }
