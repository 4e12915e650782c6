"""The application factory: settings in, a wired FastAPI app out.

``create_app(settings)`` registers the routers, the error handlers, the middleware and the
lifespan that builds (and on shutdown disposes) the database engine and the object storage. Nothing
is created at import time, so tests and workers each build their own.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from src import __version__
from src.auth.router import router as auth_router
from src.auth.state import start_auth
from src.config import Settings
from src.dashboard.cache import PublicStatsCache
from src.dashboard.config import DashboardConfig
from src.dashboard.router import router as dashboard_router
from src.dashboard.stats_router import stats_router
from src.database import create_engine, create_sessionmaker
from src.exceptions import (
    MalformedRequestError,
    ServiceUnavailableError,
    error_responses,
    install_error_handlers,
)
from src.logging import configure_logging
from src.middleware import RequestContextMiddleware, UnexpectedErrorMiddleware
from src.openapi import install_openapi, operation_id
from src.sampleFileUpload.config import FilesConfig, SheetConfig
from src.sampleFileUpload.files.fastq_workers import FastqWorkers
from src.sampleFileUpload.fsck import orphan_sweep
from src.sampleFileUpload.router import router as files_router
from src.sampleFileUpload.tus.cleanup import upload_cleanup
from src.storage import build_storage
from src.study.config import StudyConfig
from src.study.router import router as study_router
from src.study.router import samples_router
from src.text import text_rule

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DOCS_ASSETS = "/static/docs"

DESCRIPTION = """
MOSAIC: deposit sequencing studies (study metadata, a sample sheet and FASTQ files per sample),
have them reviewed and published with an accession, and search and download what is public.

Errors are always `{"code", "detail", "request_id", "errors"?}` with a stable `code`.
Authenticate with **Authorize** (email and password), or send `Authorization: Bearer <token>`.
Large files: use the resumable tus 1.0 endpoint under `/api/v1/uploads`.
"""

TAGS = [
    {"name": "service", "description": "Liveness and readiness."},
    {"name": "auth", "description": "Accounts, tokens and roles."},
    {"name": "studies", "description": "Studies: lifecycle, review, members, audit trail."},
    {"name": "samples", "description": "Samples of a study, checked against the checklist."},
    {"name": "sample-sheets", "description": "Sample sheets: templates, validation, import."},
    {"name": "files", "description": "Sequence files: uploads, validation, downloads."},
    {"name": "uploads", "description": "Resumable uploads (tus 1.0)."},
    {"name": "dashboard", "description": "Where the caller's submissions stand."},
    {"name": "statistics", "description": "Public totals over published studies."},
]

# Headers a browser client reads (API.md): CORS hides any other than the safelisted ones.
EXPOSED_HEADERS = [
    "X-Request-ID",
    "ETag",
    "Location",
    "Content-Disposition",
    "Content-Range",
    "Accept-Ranges",
    "X-Checksum-SHA256",
    "X-Checksum-MD5",
    "Repr-Digest",
    "Retry-After",
    "WWW-Authenticate",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-File-Id",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
]


@functools.cache
def settle_heap() -> None:
    """Once per process, when start-up is done: collect, then move every object alive into the
    garbage collector's permanent generation (``gc.freeze``). Start-up leaves hundreds of
    thousands of long-lived objects (modules, models, schemas, the common-password list); every
    full collection walked all of them again, which profiled as a fifth of a study list's CPU.
    Frozen objects are still freed when their last reference goes; only cycles among them wait.
    Once only: an app started again in the same process (the tests) adds nothing to freeze."""
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine(
        settings.effective_database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout,
        busy_timeout=settings.database_busy_timeout,
    )
    storage = build_storage(settings)
    await storage.startup()
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.auth = await start_auth(settings, app.state.sessionmaker)
    app.state.storage = storage
    app.state.fastq_workers = workers = FastqWorkers(app.state.files_config.fastq_workers)
    settle_heap()
    logger.info(
        "MOSAIC %s started",
        __version__,
        extra={"environment": settings.environment, "storage": settings.storage_backend},
    )
    try:
        async with upload_cleanup(app), orphan_sweep(app):
            yield
    finally:
        await app.state.auth.close()
        await anyio.to_thread.run_sync(workers.close)
        await storage.close()
        await engine.dispose()


service_router = APIRouter(tags=["service"])


@service_router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: 200 while the process runs."""
    return {"status": "ok"}


@service_router.get("/readyz", responses=error_responses(ServiceUnavailableError))
async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the database and the storage answer, else 503 naming what failed."""
    checks: dict[str, str] = {}
    try:
        async with request.app.state.sessionmaker() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        logger.warning("readiness: database unavailable: %s", exc)
        checks["database"] = "unavailable"
    try:
        await request.app.state.storage.ping()
        checks["storage"] = "ok"
    except Exception as exc:
        logger.warning("readiness: storage unavailable: %s", exc)
        checks["storage"] = "unavailable"
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        raise ServiceUnavailableError(
            f"Not ready: {', '.join(failing)} unavailable.",
            errors=[{"component": name, "status": checks[name]} for name in failing],
        )
    return JSONResponse({"status": "ok", "checks": checks})


# ReDoc's sidebar footer shows a logo fetched from Redocly's CDN; the bundle is served with that
# address replaced by an inline image, so the page makes no request outside this server.
REDOC_REMOTE_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
REDOC_INLINE_LOGO = (
    b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    b"%3Ccircle cx='8' cy='8' r='6' fill='%23888'/%3E%3C/svg%3E"
)
REDOC_BUNDLE = "redoc.offline.js"


@functools.cache
def _offline_redoc_bundle() -> bytes:
    bundle = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    if REDOC_REMOTE_LOGO not in bundle:
        logger.warning("ReDoc bundle: the remote logo address was not found; check the docs")
    return bundle.replace(REDOC_REMOTE_LOGO, REDOC_INLINE_LOGO)


def _docs_routes(app: FastAPI) -> None:
    """Swagger UI and ReDoc from assets served by the app itself: no CDN, works offline."""

    # Before the mount below, which would otherwise answer for every path under it.
    @app.get(f"{DOCS_ASSETS}/{REDOC_BUNDLE}", include_in_schema=False)
    async def redoc_bundle() -> Response:
        bundle = await anyio.to_thread.run_sync(_offline_redoc_bundle)
        return Response(
            bundle,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    assets = files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            # validatorUrl: none, or Swagger UI asks validator.swagger.io about the document.
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API reference",
            redoc_js_url=f"{DOCS_ASSETS}/{REDOC_BUNDLE}",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def initial_state(app: FastAPI, settings: Settings) -> None:
    """What ``app.state`` holds before the lifespan starts: the settings and each domain's
    configuration. The lifespan adds the engine, the storage and the rest."""
    app.state.settings = settings
    app.state.study_config = StudyConfig()
    app.state.files_config = FilesConfig()
    app.state.sheet_config = SheetConfig()
    app.state.public_stats = PublicStatsCache(max_age=DashboardConfig().stats_max_age_seconds)


def create_app(settings: Settings | None = None, **overrides: Any) -> FastAPI:
    """Build the application. With no settings, they are read from the environment and logging
    is set up from them: that is how uvicorn's factory starts each worker process."""
    if settings is None:
        settings = Settings(**overrides)
        configure_logging(settings.log_level, settings.log_format)
    app = FastAPI(
        title="MOSAIC",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Malformed input, on every route; described by its status alone (auth's routes name
        # the VALIDATION_ERROR code themselves).
        responses=error_responses(MalformedRequestError, descriptions={422: None}),
        generate_unique_id_function=operation_id,
        # The text rule of every query and path parameter (JSON bodies: src/schemas.Input).
        dependencies=[Depends(text_rule)],
    )
    initial_state(app, settings)
    install_error_handlers(app)
    app.include_router(service_router)
    # A request is matched against the routes in this order, every route of a router included
    # before it (about a microsecond each): the most requested ones, the studies', come first.
    # None of theirs shadows another router's path.
    app.include_router(study_router, prefix=API_PREFIX)
    app.include_router(auth_router, prefix=API_PREFIX)
    # Before the samples' routes: /samples/export must win over /samples/{sample_id}.
    app.include_router(files_router, prefix=API_PREFIX)
    app.include_router(samples_router, prefix=API_PREFIX)
    app.include_router(dashboard_router, prefix=API_PREFIX)
    app.include_router(stats_router, prefix=API_PREFIX)
    install_openapi(app)
    _docs_routes(app)
    # Innermost, so the 500 it renders still passes through CORS on its way out.
    app.add_middleware(UnexpectedErrorMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
        )
    # Outermost, so every response (CORS preflights and errors included) gets a request id.
    app.add_middleware(RequestContextMiddleware)
    return app
