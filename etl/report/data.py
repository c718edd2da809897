"""What the data-quality report shows, read from the warehouse (read-only).

Every number comes from a `warehouse/queries/report_*.sql` file; this module only runs them and
arranges the rows into one dict, which `etl report --json` prints and `etl.report.html` renders.
A section whose tables are empty (no runs yet, nothing published) comes back empty, not as an
error: the renderer says so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from etl.paths import QUERIES_DIR
from etl.report.query import run_query
from etl.report.status import last_runs

HISTORY_RUNS = 20  # runs in the history, and runs whose failed files are listed
TOP_REASONS = 5  # quarantine reasons that get an example record

Row = dict[str, Any]


def report_query(warehouse: Path, name: str, params: dict[str, Any] | None = None) -> list[Row]:
    """Rows of `warehouse/queries/report_<name>.sql`, each a dict of column to value."""
    sql = (QUERIES_DIR / f"report_{name}.sql").read_text()
    columns, rows = run_query(warehouse, sql, params)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def first_value(rows: list[Row], key: str) -> Any:
    """The value of `key` in the first row, or None when there are no rows."""
    return rows[0][key] if rows else None


def collect(warehouse: Path) -> dict[str, Any]:
    """Every section of the report. Raises QueryError when the warehouse cannot be read."""
    last = report_query(warehouse, "last_run")
    return {
        "warehouse": str(warehouse),
        "generated_at": datetime.now(UTC),
        "last_run": last[0] if last else None,
        "failed_files": {
            "runs": HISTORY_RUNS,
            "files": report_query(warehouse, "failed_files", {"runs": HISTORY_RUNS}),
        },
        "quarantine": quarantine(warehouse),
        "checks": checks(warehouse, first_value(last, "run_id")),
        "control_totals": control_totals(warehouse),
        "matches": matches(warehouse),
        "curated": curated(warehouse),
        "history": last_runs(warehouse, HISTORY_RUNS),
    }


def quarantine(warehouse: Path) -> dict[str, Any]:
    """Quarantined rows per source and reason, and an example record for the top reasons."""
    by_reason = report_query(warehouse, "quarantine_reasons")
    return {
        "rows_by_reason": sum(r["rows"] for r in by_reason),
        "by_source_and_reason": by_reason,
        "examples": report_query(warehouse, "quarantine_examples", {"top": TOP_REASONS}),
    }


def checks(warehouse: Path, last_run_id: str | None) -> dict[str, Any]:
    """The batch checks of the newest run that ran any, failures first."""
    rows = report_query(warehouse, "checks")
    run_id = first_value(rows, "run_id")
    return {
        "run_id": run_id,
        "is_last_run": run_id is not None and run_id == last_run_id,
        "failed_errors": sum(not r["success"] and r["severity"] == "error" for r in rows),
        "failed_warnings": sum(not r["success"] and r["severity"] != "error" for r in rows),
        "checks": rows,
    }


def control_totals(warehouse: Path) -> dict[str, Any]:
    """Control totals of the newest published run that recounted them, per source."""
    rows = report_query(warehouse, "control_totals")
    return {
        "run_id": first_value(rows, "run_id"),
        "started_at": first_value(rows, "started_at"),
        "reconciles": all(r["reconciles"] for r in rows) if rows else None,
        "sources": rows,
    }


def matches(warehouse: Path) -> dict[str, Any]:
    """Cross-silo matches of the newest run that recorded any, per pair of sources."""
    rows = report_query(warehouse, "matches")
    return {
        "run_id": first_value(rows, "run_id"),
        "total": sum(r["matches"] for r in rows),
        "pairs": rows,
    }


def curated(warehouse: Path) -> dict[str, Any]:
    """Published trips per source and per day; `published` is false before the first publish."""
    tables = {r["name"] for r in report_query(warehouse, "curated_tables")}
    has_trips = "curated.trips" in tables
    sources = report_query(warehouse, "curated_sources") if has_trips else []
    daily = report_query(warehouse, "curated_daily") if "curated.daily_by_source" in tables else []
    return {
        "published": has_trips,
        "trips": sum(s["trips"] for s in sources),
        "sources": sources,
        "daily": daily,
    }
