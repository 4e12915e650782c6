"""The error model: every refusal is an ``AppError`` subclass with a status and a stable code.

One handler renders them all as ``{"code", "detail", "request_id", "errors"?}``, and the same
envelope is used for unknown routes, wrong methods, malformed input and unexpected failures, so a
client only ever parses one error shape.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import StrEnum
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from src.database import is_busy, is_invalid_value
from src.logging import request_id_var

logger = logging.getLogger(__name__)


class KernelErrorCode(StrEnum):
    """Codes of the kernel; each domain adds its own in its constants.py."""

    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    MALFORMED_JSON = "MALFORMED_JSON"
    MALFORMED_MULTIPART = "MALFORMED_MULTIPART"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    HTTP_ERROR = "HTTP_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    SERVICE_BUSY = "SERVICE_BUSY"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    INVALID_VALUE = "INVALID_VALUE"


class ValidationIssue(BaseModel):
    """An item of a malformed request's ``errors``: where the input is wrong, and how."""

    loc: list[str]
    code: str
    message: str


class ComponentStatus(BaseModel):
    """An item of a not-ready service's ``errors``: a component that did not answer."""

    component: str
    status: str


class FieldProblem(BaseModel):
    """An item of ``errors`` naming a request field (a header's key) and what is wrong with it."""

    field: str
    message: str


class ErrorOut(BaseModel):
    """The error envelope, for OpenAPI. In the document, the items of ``errors`` are any of the
    shapes the error classes name (``AppError.item``; see ``src/openapi.py``)."""

    code: str
    detail: str
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


# The ``responses=`` of a route: status -> OpenAPI description of the answer.
Responses = dict[int | str, dict[str, Any]]


class AppError(Exception):
    """Base of every domain refusal. Subclasses set ``status_code``, ``code`` and ``message``."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "BAD_REQUEST"
    message: ClassVar[str] = "The request was refused."
    # How the OpenAPI document describes this refusal where a route declares it; None leaves
    # the status's own phrase ("Conflict").
    description: ClassVar[str | None] = None
    # The shape of one item of ``errors`` when this refusal lists them (None: it never does).
    item: ClassVar[type[BaseModel] | None] = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.message
        self.errors = [dict(e) for e in errors] if errors is not None else None
        self.headers = dict(headers) if headers else None
        # More top-level fields of the envelope, e.g. a sheet import's whole report.
        self.extra = dict(extra) if extra else None
        super().__init__(self.detail)


class MalformedRequestError(AppError):
    """Input that does not match the route's schema (rendered from RequestValidationError)."""

    status_code = 422
    code = KernelErrorCode.VALIDATION_ERROR
    message = "The request is malformed; see errors."
    description = "VALIDATION_ERROR"
    item = ValidationIssue


class ServiceUnavailableError(AppError):
    status_code = 503
    code = KernelErrorCode.SERVICE_UNAVAILABLE
    message = "The service is not ready."
    item = ComponentStatus


# Seconds a client is told to wait when the service is busy (a full hasher queue, a locked
# SQLite file, an exhausted connection pool): long enough for a queue to drain.
BUSY_RETRY_AFTER_SECONDS = 2


class ServiceBusyError(AppError):
    """The request could not get a shared resource in time (database, password hasher); it was
    not carried out and may be retried after ``Retry-After`` seconds."""

    status_code = 503
    code = KernelErrorCode.SERVICE_BUSY
    message = "The service is busy; retry after the number of seconds in Retry-After."

    def __init__(
        self, detail: str | None = None, *, retry_after: int = BUSY_RETRY_AFTER_SECONDS
    ) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class InvalidValueError(AppError):
    """A value the database refused to store or compare (a driver DataError): the text rule
    and the schemas should have refused it first, so it is logged."""

    status_code = 422
    code = KernelErrorCode.INVALID_VALUE
    message = "A value of the request cannot be stored."


class MalformedJsonError(AppError):
    """A JSON body that does not decode (rendered from FastAPI's own failures)."""

    status_code = 422
    code = KernelErrorCode.MALFORMED_JSON
    message = "The body is not valid JSON; see errors."
    item = ValidationIssue


class MalformedFormError(AppError):
    """A form body Starlette cannot parse (no boundary, broken framing)."""

    status_code = 422
    code = KernelErrorCode.MALFORMED_MULTIPART
    message = "The multipart body is malformed."


# The request id an example envelope shows.
EXAMPLE_REQUEST_ID = "3f2c9a7e1b6d4e0f8a5c2b9d7e1f4a6c"


def error_example(error: type[AppError]) -> dict[str, Any]:
    """The OpenAPI example of one refusal: its real code and default message."""
    value = {"code": str(error.code), "detail": error.message, "request_id": EXAMPLE_REQUEST_ID}
    return {"summary": error.description or str(error.code), "value": value}


def error_responses(
    *errors: type[AppError], descriptions: Mapping[int, str | None] | None = None
) -> Responses:
    """The ``responses=`` of a route, from the errors it may raise: each error's status answers
    with the error envelope, one example per error (its real ``code``), described by the
    distinct ``description``s of its errors joined with " or " (none: the status's own phrase).
    ``descriptions`` rewords a status where a route describes it otherwise (None: the status's
    own phrase)."""
    described: dict[int, list[str]] = {}
    examples: dict[int, dict[str, Any]] = {}
    for error in errors:
        status, text = error.status_code, error.description
        examples.setdefault(status, {})[str(error.code)] = error_example(error)
        texts = described.setdefault(status, [])
        if text is not None and text not in texts:
            texts.append(text)
    responses: Responses = {}
    for status, texts in described.items():
        response: dict[str, Any] = {"model": ErrorOut}
        text = " or ".join(texts) or None
        if descriptions is not None and status in descriptions:
            text = descriptions[status]
        if text is not None:
            response["description"] = text
        if status in examples:
            response["content"] = {"application/json": {"examples": examples[status]}}
        responses[status] = response
    return responses


def error_response(
    status_code: int,
    code: str,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """Render the envelope; used by every handler below and by raw ASGI paths."""
    body: dict[str, Any] = {"code": code, "detail": detail, "request_id": request_id_var.get()}
    if errors is not None:
        body["errors"] = list(errors)
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return JSONResponse(body, status_code=status_code, headers=dict(headers) if headers else None)


def _http_code(status_code: int) -> str:
    if status_code == 404:
        return KernelErrorCode.NOT_FOUND
    if status_code == 405:
        return KernelErrorCode.METHOD_NOT_ALLOWED
    if status_code == 413:
        return KernelErrorCode.PAYLOAD_TOO_LARGE
    return KernelErrorCode.HTTP_ERROR


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        out.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "code": str(err.get("type", "invalid")),
                "message": str(err.get("msg", "invalid value")),
            }
        )
    return out


async def _app_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(
        exc.status_code,
        exc.code,
        exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


def _allowed_methods(request: Request) -> str:
    """Every method the app serves at this path (RFC 9110 Allow), not only one route's."""
    path, root_path = request.scope["path"], request.scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if route.methods and regex is not None and regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def _malformed_json(detail: str, errors: list[dict[str, Any]]) -> JSONResponse:
    return error_response(
        MalformedJsonError.status_code, MalformedJsonError.code, detail, errors=errors
    )


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # FastAPI answers a JSON body it cannot decode (not UTF-8, a lone BOM) 400 "There was an
    # error parsing the body"; it is malformed input like any broken JSON.
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError) and _is_json(request):
        return _malformed_json(
            "The body is not valid JSON text.",
            [{"loc": ["body"], "code": "json_invalid", "message": str(exc.__cause__)[:200]}],
        )
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    # Starlette answers a form body it cannot parse (no boundary, broken framing) 400.
    if exc.status_code == 400 and isinstance(exc.__context__, MultiPartException):
        return error_response(MalformedFormError.status_code, MalformedFormError.code, detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No such route."
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return error_response(
        exc.status_code, _http_code(exc.status_code), detail, headers=headers or None
    )


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    if errors and all(error["code"] == "json_invalid" for error in errors):
        return _malformed_json(MalformedJsonError.message, errors)
    return error_response(
        MalformedRequestError.status_code,
        MalformedRequestError.code,
        MalformedRequestError.message,
        errors=errors,
    )


def _render(error: AppError) -> JSONResponse:
    return error_response(error.status_code, error.code, error.detail, headers=error.headers)


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A database that cannot be had in time is 503 SERVICE_BUSY, a value it refuses is 422
    INVALID_VALUE, each logged as a warning naming it; anything else stays a 500."""
    where = f"{request.method} {request.url.path}"
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if is_busy(exc):
        logger.warning("busy: %s could not get the database in time: %s", where, first_line)
        return _render(ServiceBusyError())
    if is_invalid_value(exc):
        logger.warning("invalid value: the database refused a value of %s: %s", where, first_line)
        return _render(InvalidValueError())
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    """Register the one envelope for every kind of failure."""
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error_handler)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    # Unexpected exceptions are answered by UnexpectedErrorMiddleware (src/middleware.py).
