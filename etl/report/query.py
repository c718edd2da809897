"""Read-only SQL on the warehouse, for `etl sql` and anything else that only reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from etl.publish.warehouse import WarehouseError, connect


class QueryError(Exception):
    """A query that cannot run; one line for the user."""


def run_query(
    warehouse: Path, query: str, params: dict[str, Any] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of a query, on a read-only connection (writes are refused)."""
    try:
        con = connect(warehouse, read_only=True)
    except WarehouseError as exc:
        raise QueryError(str(exc)) from None
    try:
        cursor = con.execute(query, params) if params else con.execute(query)
        if cursor.description is None:
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()
    except duckdb.Error as exc:
        raise QueryError(str(exc).strip().splitlines()[0]) from None
    finally:
        con.close()
