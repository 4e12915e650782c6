"""Alembic environment: async engine, the same migrations on PostgreSQL and SQLite.

The URL comes from ``config.attributes["database_url"]`` when the app runs the migrations, else
from the settings. SQLite gets batch mode so ALTERs become table rebuilds.
"""

import asyncio
import runpy
from functools import partial
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy.engine import Connection, make_url

from src.config import Settings
from src.database import create_engine, include_in_schema_comparison, is_sqlite

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# models.py beside this file imports every module's models onto Base (this directory is not a
# package, so by path).
target_metadata = runpy.run_path(str(Path(__file__).with_name("models.py")))["Base"].metadata


def _database_url() -> str:
    url = config.attributes.get("database_url")
    return str(url) if url else Settings().effective_database_url


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    database_url = url or _database_url()
    dialect = (
        connection.dialect.name
        if connection is not None
        else make_url(database_url).get_backend_name()
    )
    context.configure(
        include_object=partial(include_in_schema_comparison, dialect=dialect),
        connection=connection,
        url=None if connection is not None else database_url,
        target_metadata=target_metadata,
        render_as_batch=is_sqlite(database_url),
        compare_type=True,
        compare_server_default=True,
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    _configure(url=_database_url())
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
