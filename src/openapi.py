"""The OpenAPI document as clients see it: operation ids, tags and optional authentication.

Operation ids are the route functions' names (``list_studies``): short, snake_case and stable as
long as the function keeps its name. Two routes of one function (a download's GET and HEAD) would
share an id, so the one that does not serve GET gets its method as a suffix.

Security: FastAPI lists the schemes an operation's dependencies use, but not whether the caller
may leave them out. An operation reached only through schemes marked ``optional = True`` (the
optional caller, ``src/dependencies.py``), or through none, also works anonymously; the document
says so with an empty ``{}`` alternative in its ``security``.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext, iter_route_contexts
from fastapi.security.base import SecurityBase


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


def _settle_operation_ids(document: dict[str, Any]) -> None:
    operations = [
        (method, operation)
        for item in document["paths"].values()
        for method, operation in item.items()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    by_id: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for method, operation in operations:
        by_id[operation["operationId"]].append((method, operation))
    for shared, group in by_id.items():
        if len(group) > 1:
            for method, operation in group:
                if method != "get":
                    operation["operationId"] = f"{shared}_{method}"
    ids = [operation["operationId"] for _, operation in operations]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        warnings.warn(f"Duplicate operation id {duplicate}", stacklevel=2)


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


def install_openapi(app: FastAPI, *, tags: Mapping[Callable[..., Any], list[str]]) -> None:
    """Build the document with unique operation ids, the anonymous alternatives and ``tags``
    for the operations of these endpoints (set here where their router is not to change)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        with warnings.catch_warnings():
            # Resolved below, where a duplicate that remains is reported again.
            warnings.filterwarnings("ignore", message="Duplicate Operation ID")
            document = build()
        for route, method in _operations(app):
            operation = document["paths"].get(route.path_format, {}).get(method)
            if operation is None:
                continue
            if route.endpoint is not None and route.endpoint in tags:
                operation["tags"] = list(tags[route.endpoint])
            if works_anonymously(getattr(route, "dependant", None)):
                security = operation.setdefault("security", [])
                if {} not in security:
                    security.append({})
        _settle_operation_ids(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
