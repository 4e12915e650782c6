"""Bulk insertion of many rows into one table, the way each driver takes them fastest, inside the
session's transaction: a binary COPY through asyncpg on PostgreSQL, one executemany of a
prepared INSERT of many rows at once on SQLite (and any other driver).

Values are converted by the columns' own types, column by column (a JSON column gets the same
text, a timestamp the same form, as an ORM or Core insert would write), and errors come out as
SQLAlchemy's, as from ``session.execute``: a duplicate key is an ``IntegrityError`` and a value
the database refuses a ``DBAPIError`` carrying its SQLSTATE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from itertools import chain, repeat
from typing import Any

from sqlalchemy import Dialect, Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import TypeEngine


def _bound(type_: TypeEngine[Any], values: Iterable[Any], dialect: Dialect) -> Iterable[Any]:
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    return values if processor is None else map(processor, values)


def works_in_server(dialect: Dialect) -> bool:
    """Whether an insert's database work runs outside this process: PostgreSQL's COPY runs in
    the server, so Python can do other work meanwhile. SQLite's runs in this process, on a
    thread that takes the GIL back for every statement: work done beside it in Python slows it
    down about as much as it saves (measured: an append pipelined so was 0.2 s slower)."""
    return dialect.driver == "asyncpg"


async def insert_rows(
    session: AsyncSession,
    table: Table,
    *,
    columns: Mapping[str, Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
    types: Mapping[str, TypeEngine[Any]] | None = None,
) -> int:
    """Insert ``len`` of the ``columns``' value lists rows: ``columns`` maps a column name to
    its values, one per row (a list given for two columns is converted once), ``constants`` a
    column name to the one value of every row, ``types`` a column name to the type its values
    are given as where it is not the column's own (``Uuid(as_uuid=False)``: ids as text).
    Returns the number of rows."""
    constants = constants or {}
    types = types or {}
    count = len(next(iter(columns.values())))
    if any(len(values) != count for values in columns.values()):
        raise ValueError("every column needs one value per row")
    connection = await session.connection()
    dialect = connection.dialect
    bound: list[Iterable[Any]] = []
    converted: dict[int, list[Any]] = {}
    for name, values in columns.items():
        if id(values) not in converted:
            type_ = types.get(name, table.c[name].type)
            converted[id(values)] = list(_bound(type_, values, dialect))
        bound.append(converted[id(values)])
    for name, value in constants.items():
        (single,) = _bound(types.get(name, table.c[name].type), [value], dialect)
        bound.append(repeat(single, count))
    rows = list(zip(*bound, strict=False))  # constants repeat without end
    names = [*columns, *constants]
    if dialect.driver == "asyncpg":
        await _copy(connection, table, names, rows)
        return count
    # Many rows a statement: sqlite3 releases the GIL while SQLite steps through a statement and
    # takes it again to bind the next one's values, so with one row a statement, a thread busy
    # in Python meanwhile (the next rows checked) slows the insert down severalfold; a statement
    # of ~1,800 rows is also as fast as one row a statement on its own.
    per_statement = max(1, _max_parameters(dialect) // len(names))
    whole = count - count % per_statement
    groups = [_flat(rows[n : n + per_statement]) for n in range(0, whole, per_statement)]
    if groups:
        statement = _insert_statement(table, names, dialect, rows=per_statement)
        await connection.exec_driver_sql(statement, _driver_rows(groups, dialect))
    if whole < count:
        statement = _insert_statement(table, names, dialect, rows=count - whole)
        await connection.exec_driver_sql(statement, _driver_rows([_flat(rows[whole:])], dialect))
    return count


def _flat(rows: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    return tuple(chain.from_iterable(rows))


def _max_parameters(dialect: Dialect) -> int:
    """The parameters one statement may take: SQLite's default limit since 3.32 (32,766), 999
    before it, and 999 for any other database (each takes at least that many)."""
    version = getattr(dialect.dbapi, "sqlite_version_info", None)
    if dialect.name == "sqlite" and version is not None and tuple(version) >= (3, 32):
        return 32_766
    return 999


# The parameter marker of each DB-API paramstyle, for the n-th value of a row (from 1). Named
# styles take each row as a mapping of these names (``_driver_rows``).
_MARKERS = {
    "qmark": "?",
    "format": "%s",
    "numeric": ":{n}",
    "numeric_dollar": "${n}",
    "named": ":v{n}",
    "pyformat": "%(v{n})s",
}


def _insert_statement(table: Table, names: Sequence[str], dialect: Dialect, *, rows: int) -> str:
    """``INSERT INTO table (names) VALUES (...), (...)`` of ``rows`` rows, its values numbered
    row after row (the parameters of a row given as ``_flat`` makes them)."""
    return _statement(table, tuple(names), dialect, rows)


@lru_cache(maxsize=64)
def _statement(table: Table, names: tuple[str, ...], dialect: Dialect, rows: int) -> str:
    # Cached: a sheet's chunks take the same few statements of some 30,000 parameters.
    quote = dialect.identifier_preparer.quote
    marker = _MARKERS[dialect.paramstyle]
    width = len(names)
    values = ", ".join(
        "(" + ", ".join(marker.format(n=n) for n in range(first, first + width)) + ")"
        for first in range(1, rows * width + 1, width)
    )
    columns = ", ".join(quote(name) for name in names)
    into = dialect.identifier_preparer.format_table(table)
    # Identifiers from the table's metadata, quoted by the dialect; values are parameters.
    return f"INSERT INTO {into} ({columns}) VALUES {values}"  # noqa: S608


def _driver_rows(rows: list[tuple[Any, ...]], dialect: Dialect) -> list[Any]:
    """The rows as the driver's paramstyle takes them: tuples, or mappings for named styles."""
    if dialect.paramstyle not in ("named", "pyformat"):
        return rows
    return [{f"v{n}": value for n, value in enumerate(row, 1)} for row in rows]


async def _copy(
    connection: AsyncConnection, table: Table, names: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """``COPY table (names) FROM STDIN (FORMAT binary)`` through the asyncpg connection under
    SQLAlchemy's: asyncpg encodes every value in C by the column's type."""
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter begins the transaction with its first statement.
        await connection.exec_driver_sql("SELECT 1")
    from asyncpg.exceptions import DataError, PostgresError

    try:
        await driver.copy_records_to_table(
            table.name, records=rows, columns=list(names), schema_name=table.schema
        )
    except PostgresError as error:
        raise _translated(raw.dbapi_connection, connection.dialect, table, error) from error
    except (OverflowError, TypeError, ValueError) as error:
        # A value asyncpg cannot encode for its column (an integer past int4): executemany
        # reports it as asyncpg's DataError (SQLSTATE 22000); so does this.
        refused = DataError(f"invalid input for COPY {table.name}: {error}")
        raise _translated(raw.dbapi_connection, connection.dialect, table, refused) from error


def _translated(adapted: Any, dialect: Dialect, table: Table, error: Exception) -> Exception:
    """An asyncpg error as ``session.execute`` would raise it: SQLAlchemy's adapter turns it into
    its DBAPI error (an IntegrityError for a duplicate key, with the SQLSTATE), which is then
    wrapped in SQLAlchemy's own."""
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        adapted._handle_exception(error)
    except dbapi_error as translated:
        return sa_exc.DBAPIError.instance(
            f"COPY {table.name}", None, translated, dbapi_error, dialect=dialect
        )
    return error
