"""Migrations: they build the schema the models describe, on SQLite and PostgreSQL, and every
one of them downgrades."""

from __future__ import annotations

import runpy
from functools import partial
from pathlib import Path

import anyio
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from src.database import create_engine, include_in_schema_comparison, upgrade_database

ROOT = Path(__file__).resolve().parent.parent
# Every model on Base, as Alembic sees them (alembic/ is not a package: loaded by path).
Base = runpy.run_path(str(ROOT / "alembic" / "models.py"))["Base"]


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


def _differences(connection: Connection) -> list[object]:
    include = partial(include_in_schema_comparison, dialect=connection.dialect.name)
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include}
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def _run(url: str, action: object) -> object:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(action)  # type: ignore[arg-type]
    finally:
        await engine.dispose()


class TestMigrations:
    async def test_models_and_migrations_agree(self, scratch_database_url: str) -> None:
        await anyio.to_thread.run_sync(upgrade_database, scratch_database_url)
        assert await _run(scratch_database_url, _differences) == []
        assert await _run(scratch_database_url, _tables) == set(Base.metadata.tables)

    async def test_every_migration_downgrades_and_upgrades_again(
        self, scratch_database_url: str
    ) -> None:
        config = alembic_config(scratch_database_url)
        revisions = list(ScriptDirectory.from_config(config).walk_revisions())
        await anyio.to_thread.run_sync(upgrade_database, scratch_database_url)
        for _ in revisions:
            await anyio.to_thread.run_sync(command.downgrade, config, "-1")
        assert await _run(scratch_database_url, _tables) == set()
        await anyio.to_thread.run_sync(upgrade_database, scratch_database_url)
        assert await _run(scratch_database_url, _differences) == []

    def test_migration_files_are_named_by_date_and_slug(self) -> None:
        names = [p.name for p in (ROOT / "alembic" / "versions").glob("*.py")]
        for name in names:
            assert name[:4].isdigit()
            assert name[4] == "-"
            assert name[10] == "_", name
