"""`etl run --engine spark` on local[2] against the DuckDB engine on the same sample, and the
audit that stops a wrong-unit month (a driver killed in its publish: test_spark_cluster.py).

The Spark warehouse is read as its readers read it: the DuckDB file of views over the published
Parquet versions, which `etl status` and `etl sql` open. The sample run shares the session of
the other Spark tests (one catalog per JVM).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from dfhv import member_text, trip, write_zip
from typer.testing import CliRunner

from etl.cli.main import app
from etl.run.pipeline import EngineChoice

from .conftest import METASTORE_CALLS, metastore_calls

# A whole run on Spark takes minutes on a busy machine (the session and the catalog's first
# statements alone take up to a minute); pytest's default per-test limit is 10 minutes.
pytestmark = pytest.mark.timeout(3600)

# curated.trips's contract columns, as text both engines write alike (floats to 6 places).
CONTRACT = (
    "trip_id", "source", "source_record_id", "pickup_at", "dropoff_at", "pickup_lat",
    "pickup_lon", "dropoff_lat", "dropoff_lon", "distance_miles", "duration_s", "fare_usd",
    "time_precision", "location_precision", "seen_by",
)  # fmt: skip
FLOATS = {"pickup_lat", "pickup_lon", "dropoff_lat", "dropoff_lon", "distance_miles",
          "duration_s", "fare_usd"}  # fmt: skip


def content(con: duckdb.DuckDBPyConnection, table: str, columns=CONTRACT) -> tuple[int, int]:
    """Row count and an order-independent hash of the rows' contract columns."""
    parts = []
    for name in columns:
        if name in FLOATS:
            parts.append(f"round({name}, 6)::VARCHAR")
        elif name == "seen_by":
            parts.append("list_sort(seen_by)::VARCHAR")
        else:
            parts.append(f"{name}::VARCHAR")
    sql = f"SELECT count(*), sum(hash(concat_ws('|', {', '.join(parts)}))::HUGEINT) FROM {table}"
    count, digest = con.execute(sql).fetchone()
    return count, int(digest or 0)


def rows(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_curated_trips_on_spark_are_duckdbs(spark_run, sample_warehouse) -> None:
    with duckdb.connect(str(spark_run), read_only=True) as con:
        con.execute(f"ATTACH '{sample_warehouse.wh.path}' AS duck (READ_ONLY)")
        spark_trips = content(con, "curated.trips")
        assert spark_trips[0] > 10_000
        assert spark_trips == content(con, "duck.curated.trips")


# The ledger's rows that both engines write alike (run ids apart).
LEDGER_ROWS = (
    "SELECT source, file, line, list_sort(reasons) FROM quality.quarantine",
    "SELECT source, path, status, rows_read, rows_staged, rows_flagged, rows_quarantined, "
    "blank_lines, control_total, sha256 FROM quality.files",
    "SELECT source, rows_read, rows_quarantined, rows_staged, rows_excluded, rows_merged, "
    "rows_curated, round(fare_curated_usd, 2), unexplained_rows FROM quality.control_totals",
)


def test_quarantine_files_and_control_totals_are_duckdbs(spark_run, sample_warehouse) -> None:
    for sql in LEDGER_ROWS:
        spark = sorted(rows(spark_run, sql), key=repr)
        assert spark, sql
        assert spark == sorted(sample_warehouse.wh.query(sql), key=repr), sql


def test_matches_and_checks_are_duckdbs(spark_run, sample_warehouse) -> None:
    matches = (
        "SELECT left_source, left_id, right_source, right_id, round(time_gap_s, 3), "
        "round(distance_gap_m, 3), round(score, 6) FROM quality.matches"
    )
    assert sorted(rows(spark_run, matches)) == sorted(sample_warehouse.wh.query(matches))
    checks = "SELECT source, expectation, severity, success, observed_value FROM quality.checks"
    spark = {c[:4]: c[4] for c in rows(spark_run, checks)}
    duck = {c[:4]: c[4] for c in sample_warehouse.wh.query(checks)}
    assert spark.keys() == duck.keys()
    for key, observed in duck.items():
        if observed is None or spark[key] is None:
            assert observed == spark[key], key
        else:  # a number, or JSON of numbers (quantiles: their levels and values)
            assert _close(json.loads(spark[key]), json.loads(observed)), key


def _close(got: object, expected: object) -> bool:
    """Equal within float tolerance; pytest.approx does not take nested mappings."""
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(_close(got[k], v) for k, v in expected.items())
        )
    return got == pytest.approx(expected, rel=1e-9)


def test_status_and_sql_read_the_spark_warehouse(spark_run) -> None:
    runner = CliRunner()
    status = runner.invoke(app, ["status", "--warehouse", str(spark_run), "--json"])
    assert status.exit_code == 0, status.output
    assert '"published"' in status.output
    sql = runner.invoke(
        app,
        ["sql", "SELECT count(*) AS n FROM curated.trips", "--warehouse", str(spark_run),
         "--format", "json"],
    )  # fmt: skip
    assert sql.exit_code == 0, sql.output
    assert (
        json.loads(sql.output)[0]["n"]
        == rows(spark_run, "SELECT count(*) FROM curated.trips")[0][0]
    )


def test_a_wrong_unit_month_fails_the_audit_on_spark_and_publishes_nothing(
    spark, spark_run, spark_reads, sample_data, tmp_path
) -> None:
    """A second run on the shared sample's warehouse (what the readers read from the first is
    taken before: `spark_reads`)."""
    from conftest import DEFAULT_CONFIG

    from etl.run.pipeline import run

    data = tmp_path / "data"
    shutil.copytree(sample_data, data)
    before = rows(spark_run, "SELECT count(*) FROM staging.dc_taxi")
    with duckdb.connect(str(spark_run), read_only=True) as con:
        trips_before = content(con, "curated.trips")
    # A month whose DURATION came in minutes: 10-29 "seconds" for 2.1-mile trips.
    minutes = [trip(900_000 + k, DURATION=str(10 + k % 20)) for k in range(1, 41)]
    write_zip(data / "dc_taxi" / "taxi_2017.zip", {"taxi_2017_02.txt": member_text(minutes)})

    calls = metastore_calls(spark)
    result = run(DEFAULT_CONFIG, data, spark_run, engine_choice=EngineChoice("spark"))
    METASTORE_CALLS["the wrong-unit run"] = metastore_calls(spark) - calls

    assert result.exit_code == 1 and not result.published
    with duckdb.connect(str(spark_run), read_only=True) as con:
        assert content(con, "curated.trips") == trips_before
    assert rows(spark_run, "SELECT count(*) FROM staging.dc_taxi") == before
    failed = rows(
        spark_run,
        "SELECT source, expectation FROM quality.checks WHERE NOT success "
        f"AND severity = 'error' AND run_id = '{result.run_id}'",
    )
    assert [source for source, _ in failed] == ["dc_taxi"] and "speed" in failed[0][1]
    assert rows(
        spark_run, "SELECT status FROM quality.files WHERE path LIKE '%taxi_2017_02.txt'"
    ) == [("audit_failed",)]


def test_the_ledger_kept_between_reads_is_the_ledger_read_again(spark_run) -> None:
    """The engine keeps what it wrote of `quality.runs` and `quality.files` instead of reading
    them again: that frame must be what a fresh read of the table gives, in types and values
    (NULLs and timestamps included). A new run's row and a new file's row are written to the
    sample's working ledger, compared, and the ledger written back as it was."""
    from conftest import DEFAULT_CONFIG

    from etl.config.load import load_config
    from etl.engine.base import FileRecord
    from etl.engine.spark import ledger
    from etl.engine.spark.engine import FILES, RUNS, open_spark_engine
    from etl.paths import project_models
    from etl.readers import formats

    config = load_config(DEFAULT_CONFIG, formats())
    engine = open_spark_engine(spark_run, project_models(DEFAULT_CONFIG.parent), config)
    new = FileRecord("dc_taxi", "/data/x.zip!a.txt", "loaded", rows_read=3, mtime_ns=1)
    changes = {
        RUNS: lambda runs: ledger.updated(
            ledger.started(runs, "ledger-test", "sources.yaml", "/data"),
            "ledger-test", exit_code=2, published=False,
        ),
        FILES: lambda files: ledger.file_rows(files, "ledger-test", [new]),
    }  # fmt: skip
    for table, change in changes.items():
        before = engine._read(table)
        try:
            engine._write(table, change(before))
            kept = engine._read(table)
            engine._ledger.clear()
            read = engine._read(table)
        finally:
            engine._write(table, before)
        assert kept.schema == read.schema, table
        order = ["run_id", "path"] if table == FILES else ["run_id"]
        assert kept.sort(order).equals(read.sort(order)), table
        assert kept.height == before.height + 1
        assert kept.null_count().sum_horizontal()[0] > before.null_count().sum_horizontal()[0]


def test_staged_rows_spark_writes_when_their_files_cannot_be_moved_publish_the_same(
    spark_run, spark_reads, sample_data, sample_warehouse, tmp_path, monkeypatch
) -> None:
    """When the staging table cannot take the tasks' files as they are (`adopt`: a column it
    lacks, a type it holds otherwise), Spark writes the staged rows into it instead. Forced
    here, in a second run on the shared sample's warehouse that loads a new month (the last
    test of this file: it publishes; what the readers read from the first run is taken
    before, `spark_reads`): the published tables are what the DuckDB engine publishes from
    the same files, as the moved files' are (the tests above)."""
    from conftest import DEFAULT_CONFIG

    from etl.engine.spark import engine
    from etl.run.pipeline import run

    data = tmp_path / "data"
    shutil.copytree(sample_data, data)
    march = [trip(950_000 + k, DURATION=str(600 + k * 30)) for k in range(1, 31)]
    # The first trip sent twice: the second is quarantined (duplicate_key).
    write_zip(
        data / "dc_taxi" / "taxi_2018.zip", {"taxi_2018_03.txt": member_text([*march, march[0]])}
    )
    duck = tmp_path / "duck.duckdb"
    shutil.copy(sample_warehouse.wh.path, duck)
    assert run(DEFAULT_CONFIG, data, duck).exit_code == 0
    staged = "SELECT _file, _line, source_record_id FROM staging.dc_taxi"
    staged_before = len(rows(spark_run, staged))
    refused = []

    def refuse(_spark, _staged, table: str, _folder) -> bool:
        refused.append(table)
        return False

    monkeypatch.setattr(engine, "adopt", refuse)

    result = run(DEFAULT_CONFIG, data, spark_run, engine_choice=EngineChoice("spark"))

    assert result.exit_code == 0 and result.published, result.message
    assert refused == ["staging.dc_taxi"]
    assert len(rows(spark_run, staged)) == staged_before + 30
    with duckdb.connect(str(spark_run), read_only=True) as con:
        con.execute(f"ATTACH '{duck}' AS duck (READ_ONLY)")
        assert content(con, "curated.trips") == content(con, "duck.curated.trips")
    assert sorted(rows(spark_run, staged)) == sorted(rows(duck, staged))
    # This run's ledger rows (the wrong-unit test's run may have added its own to Spark's).
    duck_run = rows(duck, "SELECT run_id FROM quality.runs ORDER BY started_at DESC LIMIT 1")
    for sql in LEDGER_ROWS:
        spark_rows = rows(spark_run, f"{sql} WHERE run_id = '{result.run_id}'")
        assert spark_rows, sql
        duck_rows = rows(duck, f"{sql} WHERE run_id = '{duck_run[0][0]}'")
        assert sorted(spark_rows, key=repr) == sorted(duck_rows, key=repr), sql
