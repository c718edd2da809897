"""Batch suites through Great Expectations' Spark datasource (etl.quality.gx_spark) give
DuckDB's quality.checks rows.

The batch is the shared sample's run, as the DuckDB engine staged it: its staging rows and
manifest are handed to Spark as global temporary views (no catalog needed), and the Spark
audit's rows are held to the ones the DuckDB run recorded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import pytest

from etl.config.load import load_config
from etl.paths import PROJECT_ROOT
from etl.quality import audit as duckdb_audit
from etl.quality.audit import check_rows
from etl.quality.gx_spark import audit_run, row_count_params

CONFIG = load_config(PROJECT_ROOT / "sources.yaml")
SUITED = [name for name, source in CONFIG.sources.items() if source.suite]
SPEED = "median implied speed 3-45 mph"
VIEWS = "global_temp"


def to_spark(spark, con: duckdb.DuckDBPyConnection, query: str, view: str) -> None:
    """The rows of a DuckDB query as a Spark global temporary view."""
    spark.createDataFrame(con.sql(query).to_arrow_table()).createOrReplaceGlobalTempView(view)


def run_of(con: duckdb.DuckDBPyConnection) -> tuple[str, dict[str, int]]:
    """The warehouse's one run and the files it loaded per source."""
    (run_id,) = con.execute("SELECT run_id FROM quality.runs").fetchone()
    sql = "SELECT source, count(*) FROM quality.files WHERE run_id = ? AND status = 'loaded' "
    return run_id, dict(con.execute(sql + "GROUP BY source", [run_id]).fetchall())


def same_value(a: Any, b: Any) -> bool:
    """Equal JSON values, numbers within float tolerance (the engines sum in other orders)."""
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_value, a, b))
    return a == b


COUNTS = ("element_count", "unexpected_count", "missing_count")


def assert_same_rows(duck: list[tuple], spark: list[tuple]) -> None:
    """quality.checks rows: run, source, suite, expectation, severity, success equal; the
    observed value equal within tolerance; the row counts behind it equal."""
    assert [r[:6] for r in spark] == [r[:6] for r in duck]
    for d, s in zip(duck, spark, strict=True):
        observed = [None if r[6] is None else json.loads(r[6]) for r in (d, s)]
        assert same_value(*observed), (d[3], observed)
        details = [{k: v for k, v in json.loads(r[7]).items() if k in COUNTS} for r in (d, s)]
        assert details[0] == details[1], (d[3], details)


@pytest.fixture(scope="module")
def sample_run(spark, sample_warehouse) -> tuple[str, dict[str, int], list[tuple]]:
    """The shared sample's run: its id, files per source and quality.checks rows; its staged
    rows and manifest are in Spark."""
    with duckdb.connect(str(sample_warehouse.wh.path), read_only=True) as con:
        run_id, files = run_of(con)
        for source in SUITED:
            to_spark(spark, con, f"SELECT * FROM staging.{source}", source)
        to_spark(spark, con, "SELECT * FROM quality.manifest", "manifest")
        checks = con.execute(
            "SELECT * FROM quality.checks WHERE run_id = ? ORDER BY rowid", [run_id]
        ).fetchall()
    return run_id, files, checks


def test_spark_suites_record_the_rows_duckdb_recorded(spark, sample_run) -> None:
    run_id, files, duck = sample_run
    assert set(SUITED) <= set(files)  # every suite has a batch to check

    checks = audit_run(spark, CONFIG, PROJECT_ROOT, run_id, files, staging=VIEWS, quality=VIEWS)

    assert len(duck) == 15 * len(SUITED)
    assert_same_rows(duck, check_rows(run_id, checks))
    # The checks measured something: the speeds are observed, not skipped.
    speeds = [json.loads(r[6]) for r in duck if r[3] == SPEED]
    assert len(speeds) == len(SUITED) and all(3 < s < 45 for s in speeds)
    assert not any(c.blocks_publish for c in checks)


def test_row_count_band_from_the_manifest_as_on_duckdb(spark, sample_run, sample_warehouse):
    run_id, files, _ = sample_run
    suited = {source: files[source] for source in SUITED}
    # As the next run sees it: this run's files are history then.
    bands = row_count_params(spark, "next-run", suited, VIEWS)
    with duckdb.connect(str(sample_warehouse.wh.path), read_only=True) as con:
        for source in SUITED:
            expected = duckdb_audit._row_count_params(con, source, "next-run", files[source])
            assert expected, source
            assert bands[source] == pytest.approx(expected)
    assert row_count_params(spark, run_id, suited, VIEWS) == {source: {} for source in SUITED}


def test_a_wrong_unit_month_fails_the_audit_on_spark_as_on_duckdb(
    spark, sample_warehouse, tmp_path: Path
) -> None:
    """Durations in minutes read as seconds: the median speed check fails, an error, on both."""
    wh = sample_warehouse.copy(tmp_path)
    with duckdb.connect(str(wh.path)) as con:
        run_id, files = run_of(con)
        con.execute("UPDATE staging.dc_taxi SET duration_s = duration_s / 60")
        taxi = {"dc_taxi": files["dc_taxi"]}
        on_duckdb = duckdb_audit.audit_run(con, CONFIG, PROJECT_ROOT, run_id, taxi)
        duck = check_rows(run_id, on_duckdb)
        original = spark.table(f"{VIEWS}.dc_taxi")
        to_spark(spark, con, "SELECT * FROM staging.dc_taxi", "dc_taxi")
    try:
        on_spark = audit_run(spark, CONFIG, PROJECT_ROOT, run_id, taxi, VIEWS, VIEWS)
    finally:  # the module's other tests see the sample's rows
        original.createOrReplaceGlobalTempView("dc_taxi")

    assert_same_rows(duck, check_rows(run_id, on_spark))
    for checks in (on_duckdb, on_spark):
        assert [c.result.expectation for c in checks if c.blocks_publish] == [SPEED]
    speed = next(c.result for c in on_spark if c.result.expectation == SPEED)
    assert json.loads(speed.observed_value) > 300  # about 60 times a city speed
