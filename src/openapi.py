"""The OpenAPI document as clients see it: operation ids, optional authentication and errors.

Operation ids are the route functions' names (``list_studies``): short, snake_case and stable as
long as the function keeps its name, so every route has a function of its own (a download's GET
and HEAD included; FastAPI warns about a shared one).

Errors: each route declares the error classes it may raise (``error_responses``), which gives
each status its examples with their real codes; here every operation also shows what any
request may be answered (malformed input and a value the database refuses, 422; a busy
database, 503 with Retry-After), and ``ErrorOut.errors`` is typed as a list of any of the item
shapes the error classes name (``AppError.item``).

Security: FastAPI lists the schemes an operation's dependencies use, but not whether the caller
may leave them out. An operation reached only through schemes marked ``optional = True`` (the
optional caller, ``src/auth/dependencies.py``), or through none, also works anonymously; the
document says so with an empty ``{}`` alternative in its ``security``.
"""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext, iter_route_contexts
from fastapi.security.base import SecurityBase
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from src.exceptions import (
    AppError,
    ErrorOut,
    InvalidValueError,
    MalformedJsonError,
    MalformedRequestError,
    ServiceBusyError,
    error_example,
)

REF_TEMPLATE = "#/components/schemas/{model}"


def operation_id(route: Any) -> str:
    """The app's ``generate_unique_id_function``: the route function's name."""
    return str(route.name)


def _operations(app: FastAPI) -> Iterator[tuple[RouteContext, str]]:
    """Each documented (route, method), routers included, as the document lists them."""
    for route in iter_route_contexts(app.routes):
        if route.path_format is None or not getattr(route, "include_in_schema", False):
            continue
        for method in sorted(route.methods or ()):
            yield route, method.lower()


def _dependency_calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _dependency_calls(dependency)


def works_anonymously(dependant: Dependant | None) -> bool:
    """True unless a security scheme among the dependencies is required."""
    if dependant is None:
        return True
    calls = _dependency_calls(dependant)
    return all(getattr(call, "optional", False) for call in calls if isinstance(call, SecurityBase))


def _error_classes(base: type[AppError] = AppError) -> Iterator[type[AppError]]:
    for subclass in base.__subclasses__():
        yield subclass
        yield from _error_classes(subclass)


def _required_count(model: type[BaseModel]) -> int:
    return sum(field.is_required() for field in model.model_fields.values())


def _type_error_items(document: dict[str, Any]) -> None:
    """``ErrorOut.errors``: a list of any of the item shapes the error classes name."""
    items = {error.item for error in _error_classes() if error.item is not None}
    # Most required fields first: a generated client takes the first shape an item fits, and
    # {field, code, message} also fits {field, message}.
    models = sorted(items, key=lambda model: (-_required_count(model), model.__name__))
    _, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=REF_TEMPLATE
    )
    schemas = document["components"]["schemas"]
    # A shape some route already answers with (SheetIssueOut in a report) is there already.
    for name, schema in definitions.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    refs = [{"$ref": REF_TEMPLATE.format(model=model.__name__)} for model in models]
    schemas[ErrorOut.__name__]["properties"]["errors"] = {
        "anyOf": [{"type": "array", "items": {"anyOf": refs}}, {"type": "null"}],
        "title": "Errors",
        "description": "What exactly is wrong, where the refusal lists it: one shape per code.",
    }


# Refusals any operation may answer, whatever its route declares.
ANYWHERE: tuple[type[AppError], ...] = (MalformedRequestError, InvalidValueError, ServiceBusyError)
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}


def _anywhere_examples(operation: dict[str, Any]) -> None:
    """Any operation may answer 422 VALIDATION_ERROR or INVALID_VALUE (and MALFORMED_JSON for a
    JSON body) and 503 SERVICE_BUSY, also where the route declares that status itself, which
    replaces the app's declaration."""
    errors = list(ANYWHERE)
    if "application/json" in operation.get("requestBody", {}).get("content", {}):
        errors.append(MalformedJsonError)
    responses = operation.setdefault("responses", {})
    for error in errors:
        phrase = HTTPStatus(error.status_code).phrase
        response = responses.setdefault(str(error.status_code), {"description": phrase})
        content = response.setdefault("content", {}).setdefault("application/json", {})
        content.setdefault("schema", {"$ref": REF_TEMPLATE.format(model=ErrorOut.__name__)})
        content.setdefault("examples", {}).setdefault(str(error.code), error_example(error))
        if error is ServiceBusyError:
            response.setdefault("headers", {}).update(RETRY_AFTER)


def install_openapi(app: FastAPI) -> None:
    """Build the document with the anonymous alternatives, every operation's malformed-input
    examples and ``ErrorOut.errors`` typed by the items of every error class."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for route, method in _operations(app):
            operation = document["paths"].get(route.path_format, {}).get(method)
            if operation is None:
                continue
            if works_anonymously(getattr(route, "dependant", None)):
                security = operation.setdefault("security", [])
                if {} not in security:
                    security.append({})
            _anywhere_examples(operation)
        _type_error_items(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
