"""The error model: every refusal is an ``AppError`` subclass with a status and a stable code.

One handler renders them all as ``{"code", "detail", "request_id", "errors"?}``, and the same
envelope is used for unknown routes, wrong methods, malformed input and unexpected failures, so a
client only ever parses one error shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from src.logging import request_id_var


class KernelErrorCode(StrEnum):
    """Codes of the kernel; each domain adds its own in its constants.py."""

    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    HTTP_ERROR = "HTTP_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


class ErrorOut(BaseModel):
    """The error envelope, for OpenAPI."""

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


class ServiceUnavailableError(AppError):
    status_code = 503
    code = KernelErrorCode.SERVICE_UNAVAILABLE
    message = "The service is not ready."


def error_responses(
    *errors: type[AppError] | int, descriptions: Mapping[int, str | None] | None = None
) -> Responses:
    """The ``responses=`` of a route, from the errors it may raise: each error's status answers
    with the error envelope, described by the distinct ``description``s of its errors joined
    with " or " (none: the status's own phrase). ``descriptions`` rewords a status where a route
    describes it otherwise (None: the status's own phrase). A bare status number declares the
    envelope with no error class; sampleFileUpload's routes still do, until they move over."""
    described: dict[int, list[str]] = {}
    for error in errors:
        status, text = (
            (error, None) if isinstance(error, int) else (error.status_code, error.description)
        )
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


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No such route."
    return error_response(exc.status_code, _http_code(exc.status_code), detail, headers=exc.headers)


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        MalformedRequestError.status_code,
        MalformedRequestError.code,
        MalformedRequestError.message,
        errors=_validation_errors(exc),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the one envelope for every kind of failure."""
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    # Unexpected exceptions are answered by RequestContextMiddleware (src/middleware.py).
