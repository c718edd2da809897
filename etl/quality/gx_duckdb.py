"""Great Expectations 1.x on the DuckDB connection the pipeline already holds open.

Two problems stand between GX and DuckDB, and this module fixes both without patching GX:

1. **IndexError on every expectation** (GX issues #10738 and #11579). GX's
   ``SqlAlchemyExecutionEngine.execute_query`` runs the statement inside
   ``with engine.connect() as connection:`` and returns the *unfetched* result; the caller
   calls ``.fetchall()`` only after the ``with`` block has closed the connection. Closing a
   SQLAlchemy connection rolls back its (auto-begun) transaction, and on DuckDB that
   ``ROLLBACK`` runs on the same DuckDB connection as the pending query, which discards the
   pending result: ``fetchall()`` returns ``[]`` and GX's ``res[0]`` raises
   ``IndexError: list index out of range``. ``pool_reset_on_return=None`` is not enough (the
   rollback comes from ``Connection.close()``, not from the pool).

   Fix: the DB-API cursor we hand to SQLAlchemy (:class:`BufferedCursor`) fetches every row
   *inside* ``execute()``, while the statement's result is still alive, and serves
   ``fetchone/fetchmany/fetchall`` from that buffer. Whatever the connection does afterwards
   cannot lose rows any more. GX's metric queries are aggregates (one row each), so buffering
   costs nothing; the only multi-row queries are the bounded ``partial_unexpected_list`` ones.

2. **Opening the database a second time.** ``create_engine("duckdb:///file")`` cannot open a
   file the pipeline already holds open with another configuration ("Can't open a connection
   to same database file with a different configuration"), and a second instance would not see
   the pipeline's data anyway. Fix: ``creator=`` builds every pooled DB-API connection from
   ``con.cursor()``, a new DuckDB connection *to the same database instance*. It sees
   everything committed on ``con``, and GX's rollbacks and closes never touch ``con`` itself
   (an uncommitted transaction on ``con`` is therefore invisible to the checks: commit first).

Every such connection also gets a TEMP view (:data:`BATCH_VIEW`) over the relation to check,
with the suite's derived columns. Temp objects are private to that DuckDB connection: nothing
is written to the database file, and GX sees one unqualified table name (duckdb-engine's
reflection fails on SQLAlchemy 2.1, ``pg_catalog.pg_collation`` is missing, and GX's fallback
``SELECT * FROM <table> LIMIT 1`` drops the schema, so a schema-qualified table would break
``table.columns``).

``great_expectations`` is imported lazily, inside functions: importing it costs 5-7 s.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import duckdb
from duckdb_engine import ConnectionWrapper

if TYPE_CHECKING:  # pragma: no cover
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent.interfaces import Batch

BATCH_VIEW = "_etl_gx_batch"

# One identifier: plain, or double-quoted with "" escapes. A relation is 1-3 of them, dotted.
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_RELATION_RE = re.compile(rf"^{_IDENT}(?:\.{_IDENT}){{0,2}}$")


class BufferedCursor:
    """DB-API cursor that fetches the whole result inside ``execute()`` (see module doc, 1)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner  # duckdb_engine.CursorWrapper: keeps its error translation
        self._rows: list[tuple] = []
        self._pos = 0
        self.description: Any = None

    def execute(self, statement: str, parameters: Any = None, context: Any = None) -> None:
        self._rows, self._pos, self.description = [], 0, None
        self._inner.execute(statement, parameters, context)
        self.description = self._inner.description
        if self.description is not None:
            self._rows = self._inner.fetchall()

    def executemany(self, statement: str, parameters: Any = None, context: Any = None) -> None:
        self._rows, self._pos, self.description = [], 0, None
        self._inner.executemany(statement, parameters, context)

    @property
    def rowcount(self) -> int:
        return len(self._rows) if self.description is not None else -1

    def fetchone(self) -> tuple | None:
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        rows = self._rows[self._pos : self._pos + (1 if size is None else size)]
        self._pos += len(rows)
        return rows

    def fetchall(self) -> list[tuple]:
        rows = self._rows[self._pos :]
        self._pos = len(self._rows)
        return rows

    def close(self) -> None:
        self._rows, self._pos = [], 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class BufferedConnection(ConnectionWrapper):
    """duckdb-engine's connection wrapper, handing out :class:`BufferedCursor` s."""

    def cursor(self) -> BufferedCursor:  # type: ignore[override]
        return BufferedCursor(super().cursor())


def check_relation_name(relation: str) -> str:
    """Return ``relation`` if it is a (1 to 3 part, optionally quoted) name, else raise."""
    if not _RELATION_RE.match(relation or ""):
        raise ValueError(f"not a table or view name: {relation!r}")
    return relation


def relation_columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    """Column names of a table or view, without reading its rows."""
    cur = con.cursor()
    try:
        cur.execute(f"DESCRIBE SELECT * FROM {check_relation_name(relation)}")
        return [row[0] for row in cur.fetchall()]
    except duckdb.CatalogException as exc:
        raise ValueError(
            f"{relation}: not visible to a new cursor of this connection ({exc}). The checks "
            "read committed data through con.cursor(): a TEMP table or view of con, or rows "
            "of a transaction still open on con, cannot be seen; use a regular table or view "
            "(or the suite's derived_columns) and commit first."
        ) from exc
    finally:
        cur.close()


def batch_select_sql(relation: str, derived: Mapping[str, str]) -> str:
    """``SELECT`` of ``relation``'s rows with the ``derived`` columns (name -> SQL) added."""
    extra = "".join(f', ({expr}) AS "{name}"' for name, expr in derived.items())
    return f"SELECT *{extra} FROM {check_relation_name(relation)}"


def batch_view_sql(relation: str, derived: Mapping[str, str]) -> str:
    """``CREATE TEMP VIEW`` over ``relation`` adding the ``derived`` columns (name -> SQL)."""
    return f"CREATE OR REPLACE TEMP VIEW {BATCH_VIEW} AS {batch_select_sql(relation, derived)}"


def new_context() -> AbstractDataContext:
    """An ephemeral GX context: in-memory stores, no progress bars, nothing written to disk."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from etl.quality.gx_import import import_great_expectations

    gx = import_great_expectations()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


@contextmanager
def duckdb_batch(
    context: AbstractDataContext,
    con: duckdb.DuckDBPyConnection,
    relation: str,
    derived: Mapping[str, str] | None = None,
) -> Iterator[Batch]:
    """A GX batch over ``relation`` (plus ``derived`` columns), read through ``con``.

    The datasource is registered under a fresh name and removed again on exit, and every
    DuckDB connection GX opened is closed, so one context serves many runs.
    """
    import sqlalchemy as sa

    view_sql = batch_view_sql(relation, derived or {})
    opened: list[BufferedConnection] = []

    def creator() -> BufferedConnection:
        cur = con.cursor()
        cur.execute(view_sql)
        wrapped = BufferedConnection(cur)
        opened.append(wrapped)
        return wrapped

    name = f"etl_duckdb_{uuid.uuid4().hex[:12]}"
    datasource = None
    try:
        # "duckdb://" only selects duckdb-engine's dialect: creator makes the connections.
        # StaticPool: one connection (one DuckDB cursor) per engine for the whole run.
        datasource = context.data_sources.add_sql(
            name=name,
            connection_string="duckdb://",
            kwargs={"creator": creator, "poolclass": sa.pool.StaticPool},
        )
        asset = datasource.add_table_asset(name="batch", table_name=BATCH_VIEW)
        yield asset.add_batch_definition_whole_table("whole").get_batch()
    finally:
        if datasource is not None:
            engines = [datasource.get_engine()]
            ee = getattr(datasource, "_execution_engine", None)
            if ee is not None:
                engines.append(ee.engine)
            for engine in engines:
                engine.dispose()
            context.data_sources.delete(name)
        for wrapped in opened:
            if not wrapped.closed:
                wrapped.close()
