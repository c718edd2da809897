"""Files staged as Spark tasks: a file is the unit of work; small ones share a task.

The run hands over a picklable `stage_file` (etl.run.load.FileStager: the readers, the mapping
and the pandera-polars row checks) and the files. A plain text file larger than the session's
`spark.sql.files.maxPartitionBytes` is staged as spans of whole lines, cut where the piece
reader cuts it (`FileStager.units`); a zip member is one unit, since it cannot be entered at a
byte offset. Small units are packed into tasks of about the bytes Spark gives a read's
partition of files (`_tasks`): a night's hundreds of small files take a few tasks, not one each. A
DataFrame of one row per task, one partition each, goes through `mapInArrow`: a task stages
its units one by one and yields, for each, its staged rows, quarantined rows, record and
the keys of its rows that were not staged, as rows of one output told apart by `_kind`, with
the staging table's columns and the unit's number. A unit's staged rows are a Parquet file of
exactly the table's columns (in a folder by kind and unit, `BY_UNIT`), which the staging table
can take as it is (`adopt`: moved, not written again); the other kinds carry what the table has
no column for as JSON in `_run_id` (a quarantined row's fields, a record). A staged row is its
own key row. The task writes its staged rows' file itself, with pyarrow, where the folder's
file system allows (`RowFiles`), and hands Spark only the small kinds, written a file per task
and kind: Spark's write would turn every staged row into a JVM row first, and a file per unit
and kind is hundreds of tiny files a night, each written, committed, listed and opened.
Where pyarrow cannot write, Spark writes every kind by kind and unit.

Then the keys another file holds are looked up over the source's rows at once (`_marks`), as
DuckDB's `warehouse/audit/keys_staged_elsewhere.sql` does a batch at a time: a record key is
held by a staged row of an earlier run's current file, else of the first file of this run
(in the run's order) that staged it; the rows of the other files with that key, in its scope,
are duplicates of it. So is a key repeated in an earlier span of its own file. The units with
such rows are staged again, those rows marked: their rows, reasons and counts are then what
DuckDB's staging gives them. A file's record adds up its units' (`FileStager.assemble`): a
unit that failed fails its file, and none of the file's rows stay.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from etl.engine.base import FileRecord, FileStaging, StagingWork

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

KIND, UNIT, HELD = "_kind", "_unit", "_held"
STAGED, QUARANTINED, RECORD, KEY = "staged", "quarantine", "file", "key"  # the kinds
# The column of the staging table that carries, as JSON, what the other kinds hold.
PAYLOAD = "_run_id"
DUPLICATE_OF, SCOPE, RANK = "duplicate_of", "_scope", "_rank"
# In a unit's record (JSON), the name of the file its task wrote its staged rows to, if any.
STAGED_FILE = "_staged_file"
# quality.quarantine's columns (warehouse/ddl/quality.sql), as JSON in the staging output.
QUARANTINE = pa.schema(
    [("run_id", pa.string()), ("source", pa.string()), ("file", pa.string()),
     ("line", pa.int64()), ("reasons", pa.list_(pa.string())), ("raw", pa.string()),
     ("duplicate_of", pa.string())]
)  # fmt: skip
Records = list[tuple[FileRecord, dict[str, int]]]
# Spark's Parquet codecs that pyarrow writes too, by pyarrow's name (its "lz4" is Parquet's
# LZ4_RAW); not Hadoop's framed lz4, nor lzo.
CODECS = {"none": "none", "uncompressed": "none", "snappy": "snappy", "gzip": "gzip",
          "brotli": "brotli", "zstd": "zstd", "lz4_raw": "lz4"}  # fmt: skip
# Under a stage's folder, the staged rows' files by kind and unit (`_kind=staged/_unit=N/`): a
# unit's are the staging table's to take, the others' not. The name begins with "_", so Spark's
# read of the stage's folder, which holds the small kinds a file per task and kind, skips it.
BY_UNIT = "_by_unit"
# The folders of the units' staged rows, one a unit, are listed by the driver, not by a Spark
# job of a task per folder (Spark's way past 32 folders): hundreds of tasks, each a scheduling
# round trip, to list what a local or HDFS listing returns in milliseconds.
LISTED_HERE = {"spark.sql.sources.parallelPartitionDiscovery.threshold": str(2**31 - 1)}
# A task's output goes to one folder per kind: written by a file writer each, open side by side,
# instead of Spark's default, which sorts the task's rows by folder first (a planned write):
# about 20 of 150 CPU seconds on 5 M rows.
UNSORTED_WRITE = {
    "spark.sql.optimizer.plannedWrite.enabled": "false",
    "spark.sql.maxConcurrentOutputFileWriters": "8",
}


@dataclasses.dataclass(frozen=True)
class Staged:
    """A source's staged rows, quarantine rows, and its files' records in their order; `parts`:
    the Parquet files that hold the staged rows, and only them."""

    rows: DataFrame
    quarantine: DataFrame
    records: Records
    parts: list[str]


def stage_source(
    spark: SparkSession, work: StagingWork, source: str, staging: DataFrame | None, out: str
) -> Staged:
    """Stage the files of `source` as tasks, through the folder `out` (and `out`_again), on the
    warehouse's file system, each replaced. `staging`: the source's staged rows of earlier
    runs, whose keys hold against this run's but for the files it loads again (all, on a full
    refresh)."""
    from pyspark.sql import functions as F

    files = [f for f, name in zip(work.files, work.sources, strict=True) if name == source]
    paths = [p for p, name in zip(work.paths, work.sources, strict=True) if name == source]
    size = _conf_bytes(spark, "spark.sql.files.maxPartitionBytes")
    stager = work.stage_file
    units = [(n, unit) for n, file in enumerate(files) for unit in stager.units(file, size)]
    schema = _schema(work.empty[source])
    first = _run(spark, dict(enumerate(unit for _, unit in units)), stager, schema, {}, out)
    table, outcomes, parts = first.table, first.outcomes, first.parts
    unit_files = [n for n, _ in units]
    records = _records(outcomes, unit_files, len(files), stager)
    if source in work.keys:
        fields, scope = work.keys[source]
        failed = _failed(paths, records)
        loaded = [path for path in paths if path not in failed]
        held = None
        if staging is not None and not work.full_refresh:
            held = staging.where(~F.col("_file").isin(loaded))
        marks = _marks(spark, table, failed, fields, scope, loaded, held)
        if marks:
            again = _run(spark, {u: units[u][1] for u in marks}, stager, schema, marks,
                         out + "_again")  # fmt: skip
            table = table.where(~F.col(UNIT).isin(list(marks))).unionByName(again.table)
            outcomes |= again.outcomes
            parts = {u: p for u, p in parts.items() if u not in marks} | again.parts
            records = _records(outcomes, unit_files, len(files), stager)
    failed = _failed(paths, records)
    kept = [p for u, found in sorted(parts.items()) if paths[unit_files[u]] not in failed
            for p in found]  # fmt: skip
    return _split(table, work.empty[source], failed, records, kept)


def _failed(paths: list[str], records: Records) -> list[str]:
    return [path for path, (record, _) in zip(paths, records, strict=True)
            if record.status == "failed"]  # fmt: skip


def _schema(empty: pl.DataFrame) -> Any:
    """The tasks' output: the staging table's columns, then the kind and the unit (the folders
    it is partitioned by, not in its files)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    fields = [*empty.to_arrow().schema, pa.field(KIND, pa.string()), pa.field(UNIT, pa.int64())]
    return from_arrow_schema(pa.schema(fields))


@dataclasses.dataclass(frozen=True)
class Output:
    """What `_run` staged: the tasks' rows of every kind; by unit, its record's fields (JSON)
    and the Parquet files of its staged rows, as the attempt of its task that Spark kept wrote
    them."""

    table: DataFrame
    outcomes: dict[int, dict[str, Any]]
    parts: dict[int, list[str]]


def _run(
    spark: SparkSession,
    units: dict[int, Any],
    stage_file: FileStaging,
    spark_schema: Any,
    marks: dict[int, pl.DataFrame],
    out: str,
) -> Output:
    """Stage `units` (by number), packed into tasks, into the folder `out` (replaced), read back;
    `marks`: by unit, the rows whose key another file holds."""
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow_schema = to_arrow_schema(spark_schema)
    numbers = sorted(units)
    packed = _tasks(spark, [_size(units[n]) for n in numbers])
    tasks = [[numbers[n] for n in task] for task in packed]
    codec = spark.conf.get("spark.sql.parquet.compression.codec")
    by_unit = f"{out}/{BY_UNIT}"
    files = RowFiles.at(by_unit, spark_schema, codec)

    def stage(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        attempt = TaskContext.get().taskAttemptId()  # unique in the application
        for batch in batches:
            for task in batch.column(0).to_pylist():
                for unit in tasks[task]:
                    result = stage_file(units[unit], marks.get(unit))
                    yield from _unit_rows(result, arrow_schema, unit, files, attempt)

    folder, system = _hadoop_path(spark, out)
    system.delete(folder, True)  # replaced: the tasks write into it, then Spark's job commits
    ids = spark.range(0, len(tasks), 1, numPartitions=max(len(tasks), 1))
    output = ids.mapInArrow(stage, spark_schema).write.mode("append")
    with _settings(spark, UNSORTED_WRITE):
        if files is None:  # the staged rows too: a unit's in a folder of their own
            output.partitionBy(KIND, UNIT).parquet(by_unit)
        else:
            output.partitionBy(KIND).parquet(out)
    if files is None:
        return _written_by_spark(spark, spark_schema, by_unit)
    return _written_by_tasks(spark, spark_schema, out, by_unit)


def _written_by_spark(spark: SparkSession, spark_schema: Any, by_unit: str) -> Output:
    """Every kind written by Spark, by kind and unit under `by_unit`: its commit protocol left
    only the files of the attempt it kept of each task, so all there is is read."""
    folder, system = _hadoop_path(spark, by_unit)
    system.mkdirs(folder)  # read even if no unit had a row
    with _settings(spark, LISTED_HERE):
        table = spark.read.schema(spark_schema).parquet(by_unit)
    return Output(table, _outcomes(table), _listed(spark, by_unit))


def _written_by_tasks(spark: SparkSession, spark_schema: Any, out: str, by_unit: str) -> Output:
    """The small kinds written by Spark under `out`; the staged rows by the tasks (RowFiles)
    under `by_unit`, of which only the files the kept attempts' records name are read."""
    small = spark.read.schema(spark_schema).parquet(out)
    outcomes = _outcomes(small)
    parts = {unit: [f"{by_unit}/{KIND}={STAGED}/{UNIT}={unit}/{fields[STAGED_FILE]}"]
             for unit, fields in outcomes.items() if fields[STAGED_FILE]}  # fmt: skip
    named = [part for found in parts.values() for part in found]
    return Output(small.unionByName(_read_parts(spark, spark_schema, by_unit, named)),
                  outcomes, parts)  # fmt: skip


def _outcomes(table: DataFrame) -> dict[int, dict[str, Any]]:
    """By unit, its record's fields (`_unit_rows`): of the task attempts Spark committed."""
    from pyspark.sql import functions as F

    rows = table.where(F.col(KIND) == RECORD).select(UNIT, PAYLOAD).collect()
    return {unit: json.loads(text) for unit, text in rows}


def _read_parts(
    spark: SparkSession, spark_schema: Any, by_unit: str, parts: list[str]
) -> DataFrame:
    """The staged rows of the files `parts` (under `by_unit`), with their kind and unit from the
    folders: only these, not the files a duplicate attempt of a task left beside them."""
    if not parts:
        return spark.createDataFrame([], spark_schema)
    with _settings(spark, LISTED_HERE):
        return spark.read.schema(spark_schema).option("basePath", by_unit).parquet(*parts)


def _size(unit: tuple) -> int:
    """The bytes a unit reads: its span's, else its file's (a zip member's uncompressed)."""
    ref, _, *span = unit
    return span[0].end - span[0].start if span else ref.size_bytes


def _tasks(spark: SparkSession, sizes: Sequence[int]) -> list[list[int]]:
    """The units (by place in `sizes`, their bytes) as tasks: a task each for those of at least
    `openCostInBytes` (Spark's price of opening a file); the smaller ones packed, sized as Spark
    sizes a read's partitions of files (FilePartition): a unit costs its bytes plus that price,
    a task up to `maxPartitionBytes`, less when that would leave a core idle. A task per small
    unit costs a Python worker's start of the stage function each, which for the hundreds of
    small files of a night outweighs their staging; large units, a task each, keep the cores
    evenly busy. Small units take a multiple of the cores' tasks, filled evenly (`pack`)."""
    most = _conf_bytes(spark, "spark.sql.files.maxPartitionBytes")
    opening = _conf_bytes(spark, "spark.sql.files.openCostInBytes")
    return plan_tasks(sizes, most, opening, spark.sparkContext.defaultParallelism)


def plan_tasks(sizes: Sequence[int], most: int, opening: int, cores: int) -> list[list[int]]:
    """`_tasks` given the session's settings and its default parallelism (`cores`)."""
    cores = max(cores, 1)
    small = [n for n, size in enumerate(sizes) if size < opening]
    costs = [sizes[n] + opening for n in small]
    budget = max(min(most, max(opening, -(-sum(costs) // cores))), 1)  # rounded up
    count = -(-sum(costs) // budget)  # tasks of at most `budget`, rounded up
    packed = pack(costs, min(-(-count // cores) * cores, len(costs)))
    alone = [[n] for n, size in enumerate(sizes) if size >= opening]
    return alone + [[small[n] for n in group] for group in packed]


def pack(costs: Sequence[int], count: int) -> list[list[int]]:
    """`costs`' places in `count` groups (at most) of even cost: each, largest first, to the
    group that costs least so far; each group's places in order."""
    groups: list[list[int]] = [[] for _ in range(count)]
    loads = [(0, group) for group in range(count)]  # a heap: the cheapest group first
    for place in sorted(range(len(costs)), key=lambda n: -costs[n]):
        load, group = heapq.heappop(loads)
        groups[group].append(place)
        heapq.heappush(loads, (load + costs[place], group))
    return [sorted(group) for group in groups if group]


class RowFiles:
    """Where a task writes its unit's staged rows itself, as one Parquet file in the folder of
    their kind and unit (`out`/_kind=staged/_unit=N/): of the staging table's Spark schema,
    in the session's codec, timestamps as the engine has Spark write them (TIMESTAMP_MICROS).

    Spark's own write would turn the task's Arrow batches into JVM rows and encode those: on
    5 M rows about half the tasks' CPU. pyarrow encodes the batches as they are, on any file
    system it opens (a local folder, HDFS, S3, GCS); `at` gives None for a path it cannot open
    (Hadoop's s3a://, say) or a codec it lacks, and the rows then go through Spark's write.

    pyarrow's write has no commit protocol, so the names do its work, as Spark's committers
    keep each task attempt's files apart until one is committed: a name holds the write's job
    (unique, as Spark's are, since `adopt` moves the file beside those of earlier runs) and the
    task attempt. Two attempts of one task (a retry after an executor was lost, a speculative
    copy, `spark.speculation`) write two files, neither overwriting nor truncating the other's;
    the unit's record, which goes through Spark's committed write, names the file of the
    attempt Spark kept, and only that one is read and adopted (`_run`). The others are deleted
    with the stage's folder (`discard`)."""

    def __init__(self, system: Any, folder: str, schema: pa.Schema, compression: str):
        self.system, self.folder, self.schema = system, folder, schema
        self.compression = compression  # pyarrow's name of the codec
        self.job = uuid.uuid4()

    @classmethod
    def at(cls, out: str, spark_schema: Any, codec: str) -> RowFiles | None:
        """The staged rows' files under `out`, of the staging columns of `spark_schema` (the
        tasks' output), with Spark's own note of that schema in their footers; `codec`: the
        session's `spark.sql.parquet.compression.codec`."""
        from pyarrow import fs
        from pyspark.sql.pandas.types import to_arrow_schema
        from pyspark.sql.types import StructType

        if codec.lower() not in CODECS:
            return None
        try:
            system, folder = fs.FileSystem.from_uri(out)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
            return None
        table = StructType([f for f in spark_schema.fields if f.name not in (KIND, UNIT)])
        note = {b"org.apache.spark.sql.parquet.row.metadata": table.json().encode()}
        schema = to_arrow_schema(table).with_metadata(note)
        return cls(system, folder, schema, CODECS[codec.lower()])

    def write(self, rows: pl.DataFrame, unit: int, attempt: int) -> str:
        """Write a unit's staged rows, in the task attempt `attempt` (its id); the file's name,
        which is this attempt's alone: another attempt of the task writes one of its own."""
        import pyarrow.parquet as pq

        folder = f"{self.folder}/{KIND}={STAGED}/{UNIT}={unit}"
        self.system.create_dir(folder)
        table = rows.to_arrow().select(self.schema.names).cast(self.schema)
        name = f"part-{unit:05d}-{self.job}-{attempt}.c000.parquet"
        pq.write_table(table, f"{folder}/{name}", filesystem=self.system,
                       compression=self.compression)  # fmt: skip
        return name


@contextmanager
def _settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """The session's `settings` changed for a while, then as they were."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _conf_bytes(spark: SparkSession, key: str) -> int:
    """A size setting of the session in bytes ('128MB', '4194304b')."""
    return spark.sparkContext._jvm.org.apache.spark.network.util.JavaUtils.byteStringAsBytes(
        spark.conf.get(key)
    )


def _unit_rows(
    result: tuple[pl.DataFrame, pl.DataFrame, Any, pl.DataFrame],
    schema: pa.Schema,
    unit: int,
    files: RowFiles | None,
    attempt: int,
) -> Iterator[pa.RecordBatch]:
    """A unit's staged rows, quarantined rows, keys of rows not staged and record, as batches
    of the output (see the module's notes); the staged rows written to `files` instead, if
    given, by the task attempt `attempt`."""
    staged, quarantined, outcome, keys = result
    written = None
    if files is not None and staged.height:
        written = files.write(staged, unit, attempt)
        staged = staged.clear()
    fields = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(FileRecord)}
    fields |= {"reasons": dict(outcome.reasons), STAGED_FILE: written}
    record = pl.DataFrame({PAYLOAD: [json.dumps(fields)]})
    if quarantined.height:
        payload = pl.struct(pl.all()).struct.json_encode().alias(PAYLOAD)
        quarantined = quarantined.select(pl.col("file").alias("_file"), payload)
    if keys.height:
        keys = keys.filter(~pl.col(HELD)).drop(HELD)
    kinds = ((staged, STAGED), (quarantined, QUARANTINED), (keys, KEY), (record, RECORD))
    for table, kind in kinds:
        yield from _aligned(table.to_arrow(), schema, kind, unit)


def _aligned(table: pa.Table, schema: pa.Schema, kind: str, unit: int) -> Iterator[pa.RecordBatch]:
    """`table`'s columns under `schema`'s names, nulls for the others."""
    if not table.num_rows:
        return
    n = table.num_rows
    given = {KIND: pa.repeat(pa.scalar(kind, pa.string()), n),
             UNIT: pa.repeat(pa.scalar(unit, pa.int64()), n)}  # fmt: skip
    columns = []
    for field in schema:
        if field.name in given:
            columns.append(given[field.name])
        elif field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(n, field.type))
    yield from pa.Table.from_arrays(columns, schema=schema).to_batches()


def _records(
    outcomes: dict[int, dict[str, Any]],
    unit_files: Sequence[int],
    files: int,
    stage_file: FileStaging,
) -> Records:
    """Each file's record and rows per reason, from its units' (`unit_files`: each unit's
    file), in the order of the files."""
    parts: list[Records] = [[] for _ in range(files)]
    for unit in sorted(outcomes):
        fields = dict(outcomes[unit])
        reasons = fields.pop("reasons")
        del fields[STAGED_FILE]
        parts[unit_files[unit]].append((FileRecord(**fields), reasons))
    return [stage_file.assemble(found) for found in parts]


def _marks(
    spark: SparkSession,
    table: DataFrame,
    failed: list[str],
    fields: Sequence[str],
    scope: str,
    order: list[str],
    held: DataFrame | None,
) -> dict[int, pl.DataFrame]:
    """By unit, the rows (`_line`, `duplicate_of`) whose key another file holds (that file),
    or an earlier span of its own file (no file named): see the module's notes."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = list(fields)
    columns = (UNIT, "_file", "_line", *keys)
    staged = table.where(F.col(KIND) == STAGED).select(*columns, F.lit(True).alias(HELD))
    others = table.where(F.col(KIND) == KEY).select(*columns, F.lit(False).alias(HELD))
    rows = staged.unionByName(others).where(~F.col("_file").isin(failed))
    rows = _candidates(rows.select(UNIT, "_file", "_line", HELD, *keys), scope, keys, held)
    first_unit = F.first(UNIT).over(Window.partitionBy("_file", *keys).orderBy("_line"))
    rows = rows.select(UNIT, "_file", "_line", HELD, *keys, first_unit.alias("_first"))
    repeats = rows.where(F.col("_first") != F.col(UNIT)).select(
        UNIT, "_line", F.lit(None).cast("string").alias(DUPLICATE_OF)
    )
    ranks = spark.createDataFrame(list(enumerate(order)), f"{RANK} int, _file string")
    ranked = _scoped(rows.join(F.broadcast(ranks), "_file"), scope, keys)
    holders = ranked.where(F.col(HELD) & (F.col("_first") == F.col(UNIT)))
    holders = holders.select(SCOPE, *keys, RANK, "_file")
    if held is not None:
        earlier = _scoped(held.withColumn(RANK, F.lit(-1)), scope, keys)
        holders = holders.unionByName(earlier.select(SCOPE, *keys, RANK, "_file"))
    first = holders.groupBy(SCOPE, *keys).agg(F.min(F.struct(RANK, "_file")).alias("_holder"))
    elsewhere = ranked.join(first, [SCOPE, *keys]).where(F.col(RANK) > F.col("_holder." + RANK))
    found = elsewhere.select(UNIT, "_line", F.col("_holder._file").alias(DUPLICATE_OF))
    marks = found.unionByName(repeats).groupBy(UNIT, "_line").agg(F.max(DUPLICATE_OF))
    frame = pl.DataFrame(marks.toDF(UNIT, "_line", DUPLICATE_OF).toArrow())
    by_unit = frame.partition_by(UNIT, as_dict=True)
    return {unit: part.drop(UNIT) for (unit,), part in by_unit.items()}


def _candidates(rows: DataFrame, scope: str, keys: list[str], held: DataFrame | None) -> DataFrame:
    """The rows whose key, in its scope, is in more than one of this run's rows or held by an
    earlier run: only they can be a repeat or a duplicate, so only they are ranked (one
    aggregate over every key, instead of a window and two joins). Null keys group together,
    as the repeats' window has them."""
    from pyspark.sql import functions as F

    scoped = rows.withColumn(SCOPE, F.regexp_extract("_file", scope, 1))
    group = [SCOPE, *keys]
    here = scoped.select(*group, F.lit(1).alias("_here"))
    if held is not None:
        here = here.unionByName(_scoped(held, scope, keys).select(*group, F.lit(0).alias("_here")))
    counts = here.groupBy(*group).agg(F.sum("_here").alias("_n"), F.count("*").alias("_all"))
    twice = (F.col("_n") > 1) | ((F.col("_n") == 1) & (F.col("_all") > 1))
    found = counts.where(twice).select(*(F.col(c).alias("_c" + c) for c in group))
    same = [F.col(c).eqNullSafe(F.col("_c" + c)) for c in group]
    return scoped.join(found, same, "left_semi").drop(SCOPE)


def _scoped(rows: DataFrame, scope: str, keys: list[str]) -> DataFrame:
    """Rows whose key is whole, with its scope: the first group of `scope` on the file's path
    (a key with a null in it matches none, as in DuckDB's join)."""
    from pyspark.sql import functions as F

    whole: Column = F.lit(True)
    for key in keys:
        whole = whole & F.col(key).isNotNull()
    return rows.where(whole).withColumn(SCOPE, F.regexp_extract("_file", scope, 1))


def _split(
    table: DataFrame, empty: pl.DataFrame, failed: list[str], records: Records, parts: list[str]
) -> Staged:
    """The staged rows and quarantine rows of the files that did not fail, and the records."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    kept = ~F.col("_file").isin(failed)
    rows = table.where((F.col(KIND) == STAGED) & kept).select(*empty.columns)
    fields = F.from_json(PAYLOAD, from_arrow_schema(QUARANTINE)).alias("q")
    quarantine = table.where((F.col(KIND) == QUARANTINED) & kept).select(fields).select("q.*")
    return Staged(rows, quarantine, records, parts)


def _listed(spark: SparkSession, by_unit: str) -> dict[int, list[str]]:
    """By unit, the Parquet files of its staged rows under `by_unit`, on the warehouse's file
    system."""
    parts: dict[int, list[str]] = {}
    pattern, system = _hadoop_path(spark, f"{by_unit}/{KIND}={STAGED}/{UNIT}=*/*.parquet")
    for status in system.globStatus(pattern) or []:
        unit = int(status.getPath().getParent().getName().removeprefix(f"{UNIT}="))
        parts.setdefault(unit, []).append(status.getPath().toString())
    return parts


def adopt(spark: SparkSession, staged: Staged, table: str, folder: str) -> bool:
    """The staged rows become rows of `table` (its files in `folder`) by moving their Parquet
    files there, not by writing them again, when the table has exactly their columns (in
    their order, of their types); otherwise nothing is moved, and False."""
    columns = [(f.name, f.dataType) for f in spark.table(table).schema]
    if columns != [(f.name, f.dataType) for f in staged.rows.schema]:
        return False
    target, system = _hadoop_path(spark, folder)
    system.mkdirs(target)
    for part in staged.parts:
        path, _ = _hadoop_path(spark, part)
        moved = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(target, path.getName())
        if not system.rename(path, moved):
            raise RuntimeError(f"could not move {part} into {folder}")
    spark.catalog.refreshTable(table)
    return True


def discard(spark: SparkSession, out: str) -> None:
    """Delete the folders `stage_source` staged through (`out`, `out`_again), if there."""
    for folder in (out, out + "_again"):
        path, system = _hadoop_path(spark, folder)
        system.delete(path, True)


def _hadoop_path(spark: SparkSession, text: str) -> tuple[Any, Any]:
    """`text` as a Hadoop path, and the file system it is on (local, HDFS, an object store)."""
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(text)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
