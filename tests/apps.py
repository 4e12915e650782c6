"""One application per test process, reset for each test.

Building an app is cheap, but its first request to each router is not: FastAPI prepares every
route of a router (parameter and response models, as pydantic TypeAdapters) the first time a
request is matched against it, 50-100 ms per router, and that work belongs to the app object.
With a new app per test it was a quarter of the suite's time. So the tests' apps are built once
per process for each shape (what ``create_app`` reads from the settings at build time: the CORS
origins) and, for each test, given back with the state of a new app: the test's settings, fresh
domain configurations and caches (``initial_state``), no dependency overrides and no cached
OpenAPI document. The lifespan still runs per test (engine, storage, auth state, workers).

A test that changed the app itself (added a route, a middleware or an exception handler) leaves
it to no one: the next test gets a new app.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from src.app import create_app, initial_state
from src.config import Settings

_built: dict[tuple[str, ...], tuple[FastAPI, Any]] = {}


def _shape(app: FastAPI) -> Any:
    """What a test could have changed in the app itself."""
    return (
        tuple(map(id, app.router.routes)),
        tuple(map(id, app.user_middleware)),
        tuple(app.exception_handlers.items()),
    )


def app_for(settings: Settings) -> FastAPI:
    """An app for ``settings``, as ``create_app`` would build it, shared between tests."""
    key = tuple(settings.cors_origins or ())
    built = _built.get(key)
    if built is not None and _shape(built[0]) == built[1]:
        app = built[0]
        app.state._state.clear()
        initial_state(app, settings)
        app.dependency_overrides.clear()
        app.openapi_schema = None
        return app
    app = create_app(settings)
    _built[key] = (app, _shape(app))
    return app
