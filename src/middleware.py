"""Pure-ASGI middleware: request ids, one access-log line per request, and the 500 envelope.

Written against the raw ASGI interface, not Starlette's request/response middleware base class,
so streaming request and response bodies pass through untouched and context variables set here
are seen by the handlers.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.exceptions import KernelErrorCode, error_response
from src.logging import request_id_var, user_id_var

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("mosaic.access")

REQUEST_ID_HEADER = b"x-request-id"
# A client's id is kept only if it is short and plain, so it cannot forge log lines.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            return candidate if _SANE_REQUEST_ID.match(candidate) else None
    return None


class RequestContextMiddleware:
    """Binds a request id (the client's if sane, else a new one), returns it, logs the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        rid_token = request_id_var.set(request_id)
        uid_token = user_id_var.set(None)
        started = time.perf_counter()
        status_code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            access_logger.info(
                "%s %s %s",
                scope.get("method"),
                scope.get("path"),
                status_code,
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status_code,
                    "duration_ms": duration_ms,
                    "client": (scope.get("client") or (None,))[0],
                    "request_id": request_id,
                    "user_id": user_id_var.get(),
                },
            )
            user_id_var.reset(uid_token)
            request_id_var.reset(rid_token)


class UnexpectedErrorMiddleware:
    """Answers an unhandled exception with the 500 envelope and logs its traceback.

    Handled here rather than by Starlette's outermost error middleware, so the 500 still carries
    the envelope and the request id; and added innermost, inside CORS, so it carries the CORS
    headers too (RequestContextMiddleware, outermost, binds the request id it logs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def send_tracking(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            logger.exception(
                "unhandled error on %s %s",
                scope.get("method"),
                scope.get("path"),
                extra={"request_id": request_id_var.get()},
            )
            if response_started:
                raise
            response = error_response(500, KernelErrorCode.INTERNAL_ERROR, "Internal server error.")
            await response(scope, receive, send)
