"""Read-only SQL on the warehouse, for `etl sql` and anything else that only reads.

A read-only DuckDB connection alone does not make a query harmless: ATTACH opens other
databases read-write, COPY and EXPORT write files anywhere, INSTALL reaches the network, SET
changes what the engine may do. So a query is held twice:

1. by DuckDB's own parser: exactly one statement, and of the SELECT family (SELECT, WITH,
   VALUES, FROM-first, DESCRIBE, SHOW, SUMMARIZE); everything else is refused before it runs;
2. by the engine's own locks, before the query runs: no external access except reading under
   the directories the caller names (and the warehouse file itself), no extension loading, and
   the configuration locked so that nothing in the query can undo it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from etl.engine.duckdb.warehouse import connect
from etl.engine.spark.readers import tables_folder
from etl.errors import QueryError, WarehouseError


def run_query(
    warehouse: Path,
    query: str,
    params: dict[str, Any] | None = None,
    readable: Sequence[Path] = (),
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of one read-only query; files it may read lie under `readable`."""
    statement = read_only_statement(query)
    try:
        con = connect(warehouse, read_only=True)
    except WarehouseError as exc:
        raise QueryError(str(exc)) from None
    try:
        # A warehouse the Spark engine built is views over its Parquet files, beside it.
        _lock_down(con, (*readable, tables_folder(warehouse), *_spark_tables(con)))
        cursor = con.execute(statement, params) if params else con.execute(statement)
        if cursor.description is None:
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()
    except duckdb.Error as exc:
        raise QueryError(_first_line(exc)) from None
    finally:
        con.close()


def _spark_tables(con: duckdb.DuckDBPyConnection) -> list[Path]:
    """The folders of Parquet files a Spark-built warehouse's views read (etl.engine.spark)."""
    found = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = 'spark_tables'"
    ).fetchall()
    if not found:
        return []
    return [Path(folder) for (folder,) in con.execute("SELECT folder FROM spark_tables").fetchall()]


def read_only_statement(query: str) -> duckdb.Statement:
    """The query's one statement, if DuckDB parses it as a SELECT; QueryError otherwise."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(_first_line(exc)) from None
    if not statements:
        raise QueryError("empty query: give one SELECT statement")
    if len(statements) > 1:
        raise QueryError(f"{len(statements)} statements: give one SELECT statement")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryError(
            f"{kind.name} is not allowed: the warehouse is read-only, give one SELECT statement "
            "(SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW or SUMMARIZE)"
        )
    return statements[0]


def _lock_down(con: duckdb.DuckDBPyConnection, readable: Sequence[Path]) -> None:
    """Close what a read-only connection leaves open, and lock the settings that close it."""
    # A trailing slash, so that the prefix `data/` does not also allow `data2/`.
    directories = [str(path.resolve()).rstrip("/") + "/" for path in readable]
    con.execute("SET allowed_directories = ?", [directories])
    for setting in (
        "enable_external_access",
        "autoinstall_known_extensions",
        "autoload_known_extensions",
        "allow_community_extensions",
    ):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
