"""The run ledger's small tables (`quality.runs`, `quality.files`) as polars frames.

Parquet tables take no UPDATE: the engine reads these two (a row per run, a row per file a run
handled: small beside the data), changes them here, and writes them back whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from etl.engine.base import FileRecord, ManifestEntry, RunRecord

FILE_COLUMNS = (
    "source", "path", "layout", "size_bytes", "sha256", "fingerprint", "rows_read",
    "rows_staged", "rows_flagged", "rows_quarantined", "blank_lines", "control_total",
    "status", "reason", "mtime_ns",
)  # fmt: skip
RUN_COUNTS = (
    "files_seen", "files_loaded", "files_skipped", "files_failed", "rows_read",
    "rows_staged", "rows_flagged", "rows_quarantined",
)  # fmt: skip


def now() -> datetime:
    return datetime.now(UTC)


def started(runs: pl.DataFrame, run_id: str, config_path: str, data_root: str) -> pl.DataFrame:
    row = {"run_id": run_id, "started_at": now(), "status": "running", "published": False,
           "config_path": config_path, "data_root": data_root}  # fmt: skip
    return pl.concat([runs, pl.DataFrame([row]).cast(_schema(runs, row))], how="diagonal")


def updated(runs: pl.DataFrame, run_id: str, **values: object) -> pl.DataFrame:
    """`runs` with the run's row given `values`."""
    mine = pl.col("run_id") == run_id
    changes = [
        pl.when(mine).then(pl.lit(value, runs.schema[name])).otherwise(pl.col(name)).alias(name)
        for name, value in values.items()
    ]
    return runs.with_columns(changes)


def failed(runs: pl.DataFrame, run_id: str, exit_code: int, message: str) -> pl.DataFrame:
    """An error ended the run: after its publish, the message says so."""
    published = runs.filter(pl.col("run_id") == run_id)["published"].any()
    prefix = "published, then " if published else ""
    return updated(runs, run_id, status="error", exit_code=exit_code, finished_at=now(),
                   message=prefix + message)  # fmt: skip


def finished(runs: pl.DataFrame, record: RunRecord) -> pl.DataFrame:
    counts = {name: getattr(record, name) for name in RUN_COUNTS}
    return updated(runs, record.run_id, finished_at=now(), status=record.status,
                   exit_code=record.exit_code, message=record.message, **counts)  # fmt: skip


def crashed(working: pl.DataFrame, published: pl.DataFrame) -> pl.DataFrame:
    """The runs a dead process left: started in the working ledger, never published, so not
    in the published one; recorded as crashed."""
    dead = working.join(published.select("run_id"), on="run_id", how="anti")
    return dead.with_columns(pl.lit("crashed").alias("status"), pl.lit(False).alias("published"))


def file_rows(files: pl.DataFrame, run_id: str, records: Sequence[FileRecord]) -> pl.DataFrame:
    """`files` with a row for each record, as a run handled it."""
    if not records:
        return files
    rows = [{"run_id": run_id, "recorded_at": now()}
            | {name: getattr(r, name) for name in FILE_COLUMNS} for r in records]  # fmt: skip
    new = pl.DataFrame(rows, infer_schema_length=None).cast(_schema(files, rows[0]))
    return pl.concat([files, new], how="diagonal")


def manifest(files: pl.DataFrame) -> list[ManifestEntry]:
    """The current version of each file: its newest row with status loaded."""
    current = (
        files.filter(pl.col("status") == "loaded")
        .sort("recorded_at")
        .group_by("path")
        .last()
        .sort("path")
    )
    columns = current.select("path", "size_bytes", "mtime_ns", "fingerprint")
    return [ManifestEntry(*row) for row in columns.iter_rows()]


def touched(files: pl.DataFrame, mtimes: pl.DataFrame) -> pl.DataFrame:
    """New mtimes of files whose content is unchanged, on their current rows."""
    current = files.with_row_index("_row").filter(pl.col("status") == "loaded")
    newest = current.sort("recorded_at").group_by("path").last().select("_row", "path")
    new = newest.join(mtimes, on="path").select("_row", pl.col("mtime_ns").alias("_new"))
    joined = files.with_row_index("_row").join(new, on="_row", how="left")
    return joined.with_columns(pl.coalesce("_new", "mtime_ns").alias("mtime_ns")).drop(
        "_row", "_new"
    )


def _schema(table: pl.DataFrame, row: dict) -> dict[str, pl.DataType]:
    return {name: table.schema[name] for name in row}
