"""MOSAIC's entry point.

    python main.py [serve] [--host H] [--port P] [--workers N] [--reload]
    python main.py migrate [--revision REV]
    python main.py create-admin --email E        (password from a prompt, or stdin when piped)
    python main.py openapi [--output FILE]       the OpenAPI document (docs/openapi.json)
    python main.py fsck [--verify] [--repair] [--json]
                                                 storage against the database; exit 0 clean,
                                                 1 problems found, 2 cannot run
    python main.py recount [--repair] [--json]   every study's kept counters against a
                                                 recount; exit 0 clean, 1 drift, 2 cannot run

``serve`` runs the migrations once, then starts uvicorn with the application factory.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from src.config import Settings
from src.database import upgrade_database
from src.logging import configure_logging

logger = logging.getLogger("mosaic")


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            sys.stderr.write(f"configuration error: {field.upper()}: {error['msg']}\n")
        raise SystemExit(2) from None


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    upgrade_database(settings.effective_database_url)
    host = args.host or settings.host
    port = args.port or settings.port
    logger.info("serving on http://%s:%s (docs at /docs)", host, port)
    uvicorn.run(
        "src.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        reload=args.reload,
        log_config=None,
        proxy_headers=True,
        server_header=False,
    )
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    upgrade_database(settings.effective_database_url, args.revision)
    logger.info("database at revision %s", args.revision)
    return 0


def _openapi(settings: Settings, args: argparse.Namespace) -> int:
    """Write the document the app serves at /openapi.json; building the app touches nothing."""
    import json
    from pathlib import Path

    from src.app import create_app

    text = json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        logger.info("wrote %s", args.output)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="MOSAIC backend")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run migrations, then serve the API (default)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--reload", action="store_true")
    migrate = commands.add_parser("migrate", help="upgrade the database schema")
    migrate.add_argument("--revision", default="head")
    admin = commands.add_parser("create-admin", help="create an admin account")
    admin.add_argument("--email", required=True)
    openapi = commands.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument("--output", default="docs/openapi.json", help="a file, or - for stdout")
    fsck = commands.add_parser(
        "fsck",
        help="check the object storage against the database (exit 1 when a problem is found)",
    )
    fsck.add_argument(
        "--verify", action="store_true", help="re-hash every stored object (MD5, SHA-256)"
    )
    fsck.add_argument(
        "--repair", action="store_true", help="remove orphans older than ORPHAN_GRACE_HOURS"
    )
    fsck.add_argument("--json", action="store_true", help="print the report as JSON")
    recount = commands.add_parser(
        "recount",
        help="check every study's kept counters against a recount (exit 1 when one differs)",
    )
    recount.add_argument(
        "--repair", action="store_true", help="set the studies that differ to the recount"
    )
    recount.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _load_settings()
    configure_logging(settings.log_level, settings.log_format)
    command = args.command or "serve"
    if command == "serve":
        if args.command is None:
            args = _parser().parse_args(["serve"])
        return _serve(settings, args)
    if command == "migrate":
        return _migrate(settings, args)
    if command == "openapi":
        return _openapi(settings, args)
    if command == "fsck":
        from src.sampleFileUpload.cli import fsck

        for handler in logging.getLogger().handlers:  # stdout holds the report
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.stderr)
        return fsck(settings, verify=args.verify, repair=args.repair, as_json=args.json)
    if command == "recount":
        from src.study.cli import recount

        for handler in logging.getLogger().handlers:  # stdout holds the report
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.stderr)
        return recount(settings, repair=args.repair, as_json=args.json)
    from src.auth.cli import create_admin

    return create_admin(settings, email=args.email)


if __name__ == "__main__":
    raise SystemExit(main())
