"""Spark's staging (etl.engine.spark.staging) against the DuckDB engine's on the same files:
small files sharing a task, a large file a task per span of whole lines, and the keys another
file holds.

Each test runs the DuckDB engine's `etl run` on a small data root, then Spark's staging of the
same files straight into DataFrames (through a folder of the test's; the only catalog tables
are the test's own, in `default`: the session's catalog is the other Spark tests' warehouse),
and holds the staged rows, the quarantine and the files' records to the DuckDB run's.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import DEFAULT_CONFIG

from etl.config.load import load_config
from etl.engine.spark.staging import (
    RowFiles,
    _schema,
    _settings,
    adopt,
    discard,
    pack,
    plan_tasks,
    stage_source,
)
from etl.readers import formats
from etl.run.load import LoadJob, LoadSizes, _staging_work
from etl.run.pipeline import run
from etl.run.plan import row_checkers
from etl.sources.fetch import read_pieces
from etl.sources.files import discover
from etl.stage.batch import empty_staging_frame

SPAN = 4096  # bytes: the courier months (16-20 KB) are read in 4-6 pieces
RECORD = ("status", "reason", "layout", "sha256", "rows_read", "rows_staged", "rows_flagged",
          "rows_quarantined", "blank_lines", "control_total")  # fmt: skip


def staged_by_spark(
    spark, config_path: Path, data: Path, source: str, run_id: str, held=None, wrap=None
):
    """Spark's staging of the files of `source` under `data` (of `run_id`), through a folder
    beside `data`; `wrap`: given the files' stager, what stages them instead."""
    config = load_config(config_path, formats())
    found = [f for f in discover(source, config.sources[source], data, {}, config.limits)]
    trips = tuple((ref, config.sources[source]) for ref in sorted(found, key=lambda f: f.path))
    job = LoadJob(run_id, config, row_checkers(config, config_path.parent), None, False,
                  LoadSizes(piece_bytes=SPAN))  # fmt: skip
    work = _staging_work(job, trips, None)
    if wrap is not None:
        work = dataclasses.replace(work, stage_file=wrap(work.stage_file))
    return trips, stage_source(spark, work, source, held, str(data.parent / f"staged_{source}"))


def duckdb_rows(path: Path, sql: str, params=()) -> pl.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(sql, params=list(params) or None).pl()


def as_text(frame: pl.DataFrame, order: list[str]) -> pl.DataFrame:
    """Every column as text (lists sorted), rows in `order`: frames of both engines alike."""
    columns = [
        pl.col(name).list.sort().cast(pl.List(pl.Utf8)).list.join("|")
        if isinstance(frame.schema[name], pl.List)
        else pl.col(name).cast(pl.Utf8)
        for name in frame.columns
    ]
    return frame.select(columns).sort(order)


def spark_frame(df) -> pl.DataFrame:
    return pl.DataFrame(df.toArrow())


def tasks_of(spark, group: str) -> list[int]:
    """The task count of each stage of the jobs of `group`, in job order."""
    tracker = spark.sparkContext.statusTracker()
    counts = []
    for job in sorted(tracker.getJobIdsForGroup(group)):
        for stage in tracker.getJobInfo(job).stageIds:
            counts.append(tracker.getStageInfo(stage).numTasks)
    return counts


@pytest.fixture
def small_spans(spark):
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(SPAN))
    yield
    spark.conf.unset("spark.sql.files.maxPartitionBytes")


def test_a_task_per_file_and_per_span_stages_what_duckdb_stages(
    spark, sample_data, tmp_path, small_spans
):
    """Courier months without their trailer (a file declaring its row count is one unit) are
    split into spans, a task each (a 4 KB span costs more than a task holds with the 4 MB
    Spark counts for opening a file); a key repeated in a later span of its file is a duplicate;
    a file whose later span fails leaves none of its rows. All as the DuckDB run has it."""
    data = tmp_path / "data"
    courier = data / "company" / "courier"
    courier.mkdir(parents=True)
    for month in sorted((sample_data / "company" / "courier").glob("*.csv"))[:3]:
        lines = month.read_text().splitlines(keepends=True)[:-1]  # no trailer
        (courier / month.name).write_text("".join([*lines, lines[1]]))  # line 2 again, at the end
    broken = sorted(courier.glob("*.csv"))[-1]
    broken.write_text(broken.read_text() + "x" * 2_000_000 + "\n")  # too long a line, last span
    config_path = tmp_path / "sources.yaml"
    (tmp_path / "schemas").symlink_to(DEFAULT_CONFIG.parent / "schemas")
    config_path.write_text(DEFAULT_CONFIG.read_text().replace("    trailer: '^TOTAL ROWS", "    #"))
    warehouse = tmp_path / "duck.duckdb"
    result = run(config_path, data, warehouse, sizes=LoadSizes(piece_bytes=SPAN))
    assert result.published, result.message  # exit 2: one file failed

    spark.sparkContext.setJobGroup("spark-staging-test", "a task per file")
    try:
        trips, staged = staged_by_spark(spark, config_path, data, "courier", result.run_id)
    finally:
        spark.sparkContext.setJobGroup("", "")
    # The pieces DuckDB's run read each file in (the long line unchecked: that file fails).
    pieces = [sum(1 for _ in read_pieces(ref, SPAN, lines=False)) for ref, _ in trips]
    assert tasks_of(spark, "spark-staging-test")[0] == sum(pieces) > len(trips)

    duck_staged = duckdb_rows(warehouse, "SELECT * EXCLUDE (_run_id) FROM staging.courier")
    spark_staged = spark_frame(staged.rows).drop("_run_id")
    assert as_text(spark_staged, ["_file", "_line"]).equals(
        as_text(duck_staged.select(spark_staged.columns), ["_file", "_line"])
    )
    quarantine = "SELECT file, line, reasons, raw, duplicate_of FROM quality.quarantine"
    duck_quarantine = as_text(duckdb_rows(warehouse, quarantine), ["file", "line"])
    spark_quarantine = spark_frame(staged.quarantine).select(duck_quarantine.columns)
    assert as_text(spark_quarantine, ["file", "line"]).equals(duck_quarantine)
    assert "duplicate_key" in " ".join(duck_quarantine["reasons"])
    # The files the engine gives the staging table hold these rows, and nothing else: not the
    # first staging of a span staged again (its duplicates marked), nor the failed file's.
    parts = spark_frame(spark.read.parquet(*staged.parts))
    assert parts.columns == staged.rows.columns
    assert as_text(parts.drop("_run_id"), ["_file", "_line"]).equals(
        as_text(spark_staged, ["_file", "_line"])
    )
    files = duckdb_rows(warehouse, f"SELECT path, {', '.join(RECORD)} FROM quality.files")
    assert {r.path: tuple(getattr(r, n) for n in RECORD) for r, _ in staged.records} == {
        row[0]: row[1:] for row in files.iter_rows()
    }
    assert [r.status for r, _ in staged.records].count("failed") == 1


def test_a_zip_sent_again_under_another_name_is_quarantined_as_duckdb_does(
    spark, sample_data, tmp_path
):
    """The second night, the same zip under a second name: its members' rows are duplicates of
    the first's (duplicate_key, naming the member that holds the key), as in DuckDB's run. Its
    small members share tasks: as many as local[2] has cores."""
    data = tmp_path / "data"
    (data / "dc_taxi").mkdir(parents=True)
    shutil.copy(sample_data / "dc_taxi" / "taxi_2016.zip", data / "dc_taxi")
    warehouse = tmp_path / "duck.duckdb"
    first = run(DEFAULT_CONFIG, data, warehouse)
    assert first.exit_code == 0, first.message
    # What the first night staged (the other test holds Spark's staging to DuckDB's).
    staging = duckdb_rows(warehouse, "SELECT * FROM staging.dc_taxi").to_arrow()
    held = spark.createDataFrame(staging.select(["_run_id", "_file", "source_record_id"]))

    shutil.copy(data / "dc_taxi" / "taxi_2016.zip", data / "dc_taxi" / "taxi_2016 (1).zip")
    second = run(DEFAULT_CONFIG, data, warehouse)
    assert second.exit_code == 0, second.message
    resent = tmp_path / "resent"
    (resent / "dc_taxi").mkdir(parents=True)
    shutil.move(data / "dc_taxi" / "taxi_2016 (1).zip", resent / "dc_taxi")
    spark.sparkContext.setJobGroup("spark-resent-test", "small members share tasks")
    try:
        trips, staged = staged_by_spark(
            spark, DEFAULT_CONFIG, resent, "dc_taxi", second.run_id, held
        )
    finally:
        spark.sparkContext.setJobGroup("", "")
    # Members of ~0.1 MB, each counted 4 MB more (opening a file): two tasks, one a core.
    tasks = tasks_of(spark, "spark-resent-test")[0]
    assert len(trips) > 10 and tasks == 2, tasks

    assert spark_frame(staged.rows).height == 0
    quarantine = (
        "SELECT file, line, reasons, raw, duplicate_of FROM quality.quarantine WHERE run_id = ?"
    )
    duck = as_text(duckdb_rows(warehouse, quarantine, [second.run_id]), ["file", "line"])
    spark_quarantine = spark_frame(staged.quarantine).select(duck.columns)
    assert as_text(spark_quarantine, ["file", "line"]).equals(duck)
    assert duck["duplicate_of"].drop_nulls().str.contains(r"taxi_2016\.zip!").all()
    assert duck["duplicate_of"].drop_nulls().len() > 100
    files = duckdb_rows(
        warehouse, f"SELECT path, {', '.join(RECORD)} FROM quality.files WHERE run_id = ?",
        [second.run_id],
    )  # fmt: skip
    assert {r.path: tuple(getattr(r, n) for n in RECORD) for r, _ in staged.records} == {
        row[0]: row[1:] for row in files.iter_rows()
    }


def parquet_columns(path: str) -> list[tuple]:
    """A Parquet file's columns as stored: path, physical and logical type, the levels."""
    schema = pq.ParquetFile(path.removeprefix("file:")).schema
    return [(c.path, c.physical_type, str(c.logical_type), c.max_definition_level,
             c.max_repetition_level) for c in schema]  # fmt: skip


def assert_written_as_spark_writes(spark, staged, folder: Path) -> None:
    """The staged rows' files, which the tasks write themselves (pyarrow), store the columns
    as Spark's own write of the same rows does, and read back with the staging table's exact
    schema through Spark (its nullability included) and through DuckDB (its types, its rows)."""
    parts = [part.removeprefix("file:") for part in staged.parts]
    assert all(pq.ParquetFile(p).metadata.created_by.startswith("parquet-cpp-arrow") for p in parts)
    with _settings(spark, {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}):
        staged.rows.write.parquet(str(folder))  # as the engine has it (SparkEngine)
    spark_parts = [str(p) for p in folder.glob("*.parquet")]
    assert parquet_columns(parts[0]) == parquet_columns(spark_parts[0])
    assert spark.read.parquet(*staged.parts).schema == staged.rows.schema
    with duckdb.connect() as con:
        reads = (
            f"read_parquet({files!r}, hive_partitioning=false)" for files in (parts, spark_parts)
        )
        ours, spark_written = reads
        described = con.sql(f"DESCRIBE FROM {ours}").fetchall()
        assert described == con.sql(f"DESCRIBE FROM {spark_written}").fetchall()
        assert ("pickup_at", "TIMESTAMP WITH TIME ZONE") in [row[:2] for row in described]
        for a, b in ((ours, spark_written), (spark_written, ours)):
            assert con.sql(f"FROM {a} EXCEPT ALL FROM {b}").fetchall() == []


def test_the_staged_rows_become_the_tables_by_moving_the_tasks_files(spark, sample_data, tmp_path):
    """The staging table takes the tasks' Parquet files of the staged rows as they are (moved
    into its folder, not written again) and then holds its earlier rows and these; a table
    lacking one of their columns takes nothing (the engine appends to it instead). Those files
    are stored as Spark stores the table's rows (assert_written_as_spark_writes); the other
    kinds of rows are a file per task."""
    data = tmp_path / "data"
    (data / "dc_taxi").mkdir(parents=True)
    shutil.copy(sample_data / "dc_taxi" / "taxi_2016.zip", data / "dc_taxi")
    planned = spark.conf.get("spark.sql.optimizer.plannedWrite.enabled")
    trips, staged = staged_by_spark(spark, DEFAULT_CONFIG, data, "dc_taxi", "run-1")
    # What the table does not take is a file per task and kind: the members' records in as
    # many files as local[2]'s tasks (2), not a file each.
    records = list((tmp_path / "staged_dc_taxi" / "_kind=file").glob("*.parquet"))
    assert len(trips) > 10 and len(records) == 2, records
    # The tasks' unsorted write changes the session's settings only while it writes.
    assert spark.conf.get("spark.sql.optimizer.plannedWrite.enabled") == planned
    assert spark.conf.get("spark.sql.maxConcurrentOutputFileWriters") == "0"
    rows = spark_frame(staged.rows)
    assert rows.height > 1000 and len(staged.parts) > 1
    assert_written_as_spark_writes(spark, staged, tmp_path / "written_by_spark")
    table, narrower = "default.test_adopting", "default.test_adopting_narrower"
    folder = tmp_path / "table"
    for name in (table, narrower):
        spark.sql(f"DROP TABLE IF EXISTS {name}")
    staged.rows.limit(3).write.option("path", str(folder)).saveAsTable(table)
    staged.rows.drop("fare_usd").limit(0).write.option(
        "path", str(tmp_path / "narrower")
    ).saveAsTable(narrower)
    earlier = spark_frame(spark.table(table))
    try:
        assert not adopt(spark, staged, narrower, str(tmp_path / "narrower"))
        assert spark.table(narrower).count() == 0
        assert adopt(spark, staged, table, str(folder))
        held = spark_frame(spark.table(table))
    finally:
        for name in (table, narrower):
            spark.sql(f"DROP TABLE IF EXISTS {name}")
    order = ["_file", "_line"]
    assert as_text(held, order).equals(as_text(pl.concat([earlier, rows]), order))
    moved = {Path(part).name for part in staged.parts}
    assert moved <= {path.name for path in folder.glob("*.parquet")}
    assert not any(Path(part.removeprefix("file:")).exists() for part in staged.parts)


def test_a_task_writes_its_rows_where_pyarrow_can_in_the_sessions_codec(tmp_path):
    """The tasks write the staged rows' files themselves on a file system pyarrow opens, in the
    codec the session gives Spark's writes; for a path or a codec pyarrow lacks, none (Spark's
    write then writes the rows)."""
    config = load_config(DEFAULT_CONFIG, formats())
    empty = empty_staging_frame(config.sources["dc_taxi"])
    schema = _schema(empty)
    assert RowFiles.at("s3a://bucket/staged", schema, "snappy") is None
    assert RowFiles.at(str(tmp_path), schema, "lzo") is None
    RowFiles.at(f"file://{tmp_path}", schema, "ZSTD").write(empty.clear(n=2), 7, 31)
    (written,) = (tmp_path / "_kind=staged" / "_unit=7").glob("*.parquet")
    stored = pq.ParquetFile(written).metadata
    assert stored.num_rows == 2 and stored.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_schema(written).names == empty.columns


def test_small_units_share_a_task_and_the_tasks_cost_alike():
    """`pack`: largest first, each unit to the group that costs least so far; a unit that costs
    as much as the others together has a group of its own."""
    assert pack([5, 1, 1, 1, 1, 1], 2) == [[0], [1, 2, 3, 4, 5]]
    assert pack([10] * 5, 2) == [[0, 2, 4], [1, 3]]
    assert pack([3, 3], 4) == [[0], [1]]
    assert pack([], 2) == []


def test_small_files_share_tasks_a_multiple_of_the_cores_and_large_ones_have_their_own():
    """Units from 4 MB up (Spark's price of opening a file) are a task each; the small ones
    share tasks of up to `maxPartitionBytes` or their total over the cores, a multiple of the
    cores in number."""
    mb = 1 << 20
    sizes = [50 * mb, *[30_000] * 6, 200 * mb]
    assert plan_tasks(sizes, 128 * mb, 4 * mb, 2) == [[0], [7], [1, 3, 5], [2, 4, 6]]
    # 365 small files: 31 of ~4 MB's cost fill 128 MB; 12 tasks, 6 a core.
    assert [len(t) for t in plan_tasks([30_000] * 365, 128 * mb, 4 * mb, 2)] == [31] * 5 + [30] * 7
    # Spans cut at a 4 KB maxPartitionBytes: a task each.
    assert plan_tasks([4096] * 5, 4096, 4 * mb, 2) == [[0], [1], [2], [3], [4]]


def test_a_retried_task_stages_its_rows_once_and_the_failed_attempts_files_go(
    spark, sample_data, tmp_path
):
    """Every staging task fails on its first attempt after staging a unit (its staged rows'
    file written) and Spark retries it (the session's master, local[2,2], allows a retry; a
    cluster's `spark.task.maxFailures`): the rows are staged once, as the records count them,
    and the files the failed attempts wrote are neither read nor adopted, and go with the
    stage's folder. With one name for every attempt of a task, the retry would write over the
    failed attempt's file, and on a cluster a speculative copy, or a lost executor's attempt
    still writing, over the kept one's."""
    data = tmp_path / "data"
    (data / "dc_taxi").mkdir(parents=True)
    shutil.copy(sample_data / "dc_taxi" / "taxi_2016.zip", data / "dc_taxi")
    by_unit = tmp_path / "staged_dc_taxi" / "_by_unit" / "_kind=staged"
    failed_log = tmp_path / "failed_attempts.txt"

    class FailsOnceAfterWriting:
        """The files' stager, but a task's first attempt fails at its second unit, having
        listed the files its first unit's rows went to. Each file (a zip member) is a unit,
        numbered as the driver asks for them."""

        def __init__(self, stager):
            self.stager, self.numbers, self.done = stager, {}, []

        def units(self, *args):
            (unit,) = self.stager.units(*args)
            self.numbers[unit[0].path] = len(self.numbers)
            return [unit]

        def assemble(self, *args):
            return self.stager.assemble(*args)

        def __call__(self, unit, marks):
            from pyspark import TaskContext

            if TaskContext.get().attemptNumber() == 0 and self.done:
                written = [p for n in self.done for p in (by_unit / f"_unit={n}").glob("*")]
                with failed_log.open("a") as log:
                    log.write("".join(f"{p}\n" for p in written))
                raise RuntimeError("a task's first attempt fails after writing")
            self.done.append(self.numbers[unit[0].path])
            return self.stager(unit, marks)

    _, staged = staged_by_spark(
        spark, DEFAULT_CONFIG, data, "dc_taxi", "run-1", wrap=FailsOnceAfterWriting
    )
    failed_files = set(failed_log.read_text().split())
    assert failed_files, "no task failed after writing its first unit's file"

    rows = spark_frame(staged.rows)
    counted = sum(record.rows_staged for record, _ in staged.records)
    assert rows.height == counted == rows.select("_file", "_line").n_unique() > 1000
    parts = [Path(part.removeprefix("file:")) for part in staged.parts]
    assert spark_frame(spark.read.parquet(*staged.parts)).height == counted
    assert failed_files.isdisjoint(str(part) for part in parts)
    discard(spark, str(tmp_path / "staged_dc_taxi"))
    assert not any(Path(path).exists() for path in failed_files)
