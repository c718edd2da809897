"""What a user reads from a Spark-built warehouse: `etl status`, `etl train` and `etl report`
open its readers' file (DuckDB views over the published Parquet versions) as they open a
DuckDB warehouse, and on the shared sample's Spark run they give what they give on the DuckDB
engine's run of the same files: the same run counts, training table, model metrics and report
sections. Only what names a run or a moment differs (ids, times, paths)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from .conftest import Reads, reads

# The first test here may be the one that waits for the session's whole Spark run (minutes on
# a busy machine); pytest's default per-test limit is 10 minutes.
pytestmark = pytest.mark.timeout(3600)

# The fields that name a run, a moment of it, or the warehouse: not content.
NAMING = {"run_id", "started_at", "finished_at", "generated_at", "warehouse", "out", "message"}
RUN_COUNTS = ("status", "exit_code", "published", "files_loaded", "files_skipped",
              "files_failed", "rows_read", "rows_staged", "rows_flagged", "rows_quarantined",
              "failed_checks")  # fmt: skip


@pytest.fixture(scope="module")
def duckdb_reads(sample_warehouse, tmp_path_factory: pytest.TempPathFactory) -> Reads:
    return reads(sample_warehouse.wh.path, tmp_path_factory.mktemp("duckdb_reads"))


def content(value: Any) -> Any:
    """A JSON value without the fields that name a run, a moment or a path; numbers to 9
    significant digits (the engines sum in other orders), in JSON text too (a check's observed
    value)."""
    if isinstance(value, dict):
        return {k: content(v) for k, v in value.items() if k not in NAMING}
    if isinstance(value, list):
        return [content(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, str) and value[:1] in "[{0123456789-":
        try:
            return content(json.loads(value))
        except ValueError:
            return value
    return value


def read_frame(warehouse: Path, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return pl.from_arrow(con.sql(sql).to_arrow_table())


def test_status_shows_the_run_and_its_counts_as_on_duckdb(spark_reads, duckdb_reads) -> None:
    (spark,), (duck,) = spark_reads.status, duckdb_reads.status
    assert spark["status"] == "published" and spark["rows_staged"] > 10_000
    assert {k: spark[k] for k in RUN_COUNTS} == {k: duck[k] for k in RUN_COUNTS}


def test_train_fits_the_same_table_and_models_as_on_duckdb(spark_reads, duckdb_reads) -> None:
    """The training table read from the Spark warehouse is DuckDB's, row for row, and the
    models trained on it score as DuckDB's do."""
    spark, duck = spark_reads.train, duckdb_reads.train
    assert spark["rows"]["training_table"] > 5_000
    assert content(spark) == content(duck)
    # time_precision: a DuckDB ENUM (read as Categorical) there, a string in Parquet here.
    tables = [
        pl.read_parquet(r.models / "training_table.parquet").with_columns(
            pl.col("time_precision").cast(pl.String)
        )
        for r in (spark_reads, duckdb_reads)
    ]
    assert_frame_equal(*tables)


@pytest.mark.parametrize(
    "section", ["last_run", "failed_files", "quarantine", "checks", "control_totals", "matches",
                "curated", "history", "model"],
)  # fmt: skip
def test_report_shows_what_it_shows_on_duckdb(spark_reads, duckdb_reads, section) -> None:
    spark, duck = spark_reads.report, duckdb_reads.report
    assert content(spark[section]) == content(duck[section])


def test_report_draws_the_daily_trips_as_on_duckdb(spark_reads, duckdb_reads) -> None:
    daily = [r.report["curated"]["daily"] for r in (spark_reads, duckdb_reads)]
    assert daily[1] and content(daily[0]) == content(daily[1])


@pytest.mark.parametrize("view", ["daily_by_source", "speed_by_hour", "od_grid"])
def test_analyst_views_read_as_on_duckdb(spark_run: Path, sample_warehouse, view) -> None:
    """The analyst views are in the readers' file (for `etl sql` and the report), made from
    the same SQL files over the published trips: the same rows as DuckDB's."""
    sql = f"SELECT * FROM curated.{view}"
    spark, duck = (read_frame(path, sql) for path in (spark_run, sample_warehouse.wh.path))
    assert spark.height > 0
    assert_frame_equal(spark, duck, check_row_order=False)


def test_report_is_of_the_spark_run(spark_reads, spark_run: Path) -> None:
    """Not two empty reports alike: the Spark run's own checks, totals, matches and trips,
    and the models trained on its warehouse."""
    report, (run,) = spark_reads.report, spark_reads.status
    assert report["last_run"]["run_id"] == run["run_id"]
    for section in ("checks", "control_totals", "matches"):
        assert report[section]["run_id"] == run["run_id"], section
    assert len(report["checks"]["checks"]) > 10 and report["control_totals"]["reconciles"]
    assert report["matches"]["total"] > 0 and report["quarantine"]["rows_by_reason"] > 0
    with duckdb.connect(str(spark_run), read_only=True) as con:
        (trips,) = con.execute("SELECT count(*) FROM curated.trips").fetchone()
    assert report["curated"]["trips"] == trips
    assert report["model"]["metrics"] == spark_reads.train["metrics"]
