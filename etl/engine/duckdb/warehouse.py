"""Open the DuckDB warehouse and keep its fixed tables in place."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from etl.errors import WarehouseError
from etl.paths import DDL_DIR


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse file; a writer also creates it and its fixed tables."""
    if read_only and not path.exists():
        raise WarehouseError(f"{path}: no warehouse yet (run `etl run` first)")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    # DuckDB's buffer pool may take 80% of RAM by default and keeps what a load wrote cached;
    # a nightly job shares its machine, so the pool is capped (ETL_DUCKDB_MEMORY to change).
    # The curated build of 20 M rows runs as fast at 1 GB as at 2 GB: beyond it, DuckDB spills.
    config = {"memory_limit": os.environ.get("ETL_DUCKDB_MEMORY", "1GB")}
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.Error as exc:
        raise WarehouseError(f"{path}: cannot open the warehouse: {_first_line(exc)}") from None
    if not read_only:
        for ddl in sorted(DDL_DIR.glob("*.sql")):
            con.execute(ddl.read_text())
    return con


@contextmanager
def memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """Cap DuckDB's buffer pool at `limit` (if lower than the cap it has) for a block of work.

    The blocks an INSERT writes stay cached in the pool until it is full, so during a load
    that only appends, the pool would grow with the rows loaded and nothing would read them.
    """
    configured = _setting(con, "memory_limit")
    if _bytes(limit) >= _bytes(configured):
        yield
        return
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:  # as DuckDB wrote it: '953.6 MiB' for 1GB, within 0.1%
        con.execute(f"SET memory_limit = '{configured}'")


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> str:
    return con.execute("SELECT current_setting(?)", [name]).fetchone()[0]


_UNITS = {"": 1, "b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def _bytes(size: str) -> float:
    """'1GB', '953.6 MiB' (as DuckDB writes its settings): a size in bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", size)
    if match is None or match.group(2).lower() not in _UNITS:
        raise WarehouseError(f"not a memory size: {size!r}")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """A block of work that commits whole or, if it raises, not at all."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[None]:
    """`frame` queryable as `name` on `con` for a block of work, and gone after it.

    Handed over as Arrow in polars' own layout (strings as views), which DuckDB reads as it is.
    Registered as a polars frame, it reached DuckDB in Arrow's older layout, every string
    copied into it: 0.65 against 0.75 CPU s to insert a million staged DFHV rows.
    """
    con.register(name, frame.to_arrow(compat_level=pl.CompatLevel.newest()))
    try:
        yield
    finally:
        con.unregister(name)


def create_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    select: str,
    generated: Sequence[tuple[str, str]] = (),
    uncompressed: Collection[str] = (),
) -> None:
    """CREATE OR REPLACE a table of a SELECT's columns and rows, with `generated` columns
    (name, SQL expression: computed on read, not stored) and the `uncompressed` text columns
    stored as they are. DuckDB declares both only in a column list, so the SELECT is described
    to write one. Raises WarehouseError for an uncompressed column the SELECT does not have."""
    described = con.execute(f"DESCRIBE {select}").fetchall()
    unknown = set(uncompressed) - {name for name, *_ in described}
    if unknown:
        raise WarehouseError(f"uncompressed: no column {', '.join(sorted(unknown))}")
    columns = [f'"{name}" AS ({expression})' for name, expression in generated]
    columns += [
        f'"{name}" {column_type}'
        + (" USING COMPRESSION uncompressed" if name in uncompressed else "")
        for name, column_type, *_ in described
    ]
    con.execute(f"CREATE OR REPLACE TABLE {table} ({', '.join(columns)})")
    con.execute(f"INSERT INTO {table} BY NAME {select}")


def append(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pl.DataFrame,
    uncompressed: Collection[str] = (),
) -> None:
    """Insert a frame by column name, creating the table or adding new columns as needed.

    A config edit may map a new field; the table grows a column rather than the load failing.
    `uncompressed` columns are stored as they are when the table is created (`create_table`).
    """
    schema, name = table.split(".")
    existing = {
        row[0]: row[1]
        for row in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ?",
            [schema, name],
        ).fetchall()
    }
    with registered(con, "_incoming", frame):
        if not existing:
            create_table(con, table, "SELECT * FROM _incoming", uncompressed=uncompressed)
            return
        incoming = con.execute("DESCRIBE SELECT * FROM _incoming").fetchall()
        for column, column_type, *_ in incoming:
            if column not in existing:
                con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {column_type}')
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether `schema.name` is a table (a view of that name does not count)."""
    return object_kind(con, table) == "TABLE"


def object_kind(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """TABLE or VIEW: what `schema.name` is in the warehouse, if anything."""
    schema, table = name.split(".")
    # fetchall: DuckDB 2 keeps a result open until it is read to the end.
    rows = con.execute(
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return ("VIEW" if rows[0][0] == "VIEW" else "TABLE") if rows else None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def named_statements(path: Path) -> dict[str, str]:
    """The statements of a SQL file made of parts, each introduced by a line `-- name: <name>`
    (the text before the first is the file's documentation)."""
    parts = _NAME_LINE.split(path.read_text(encoding="utf-8"))
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def quote_identifier(name: str) -> str:
    """A name as a DuckDB identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'
