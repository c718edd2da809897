"""The run history that `etl status` shows: what each run loaded, quarantined and published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from etl.paths import QUERIES_DIR
from etl.report.query import run_query


def last_runs(warehouse: Path, limit: int = 10) -> list[dict[str, Any]]:
    """The newest runs first, each as a dict of column to value."""
    query = (QUERIES_DIR / "last_runs.sql").read_text()
    columns, rows = run_query(warehouse, query, {"limit": limit})
    return [dict(zip(columns, row, strict=True)) for row in rows]
