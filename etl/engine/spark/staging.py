"""Files staged as Spark tasks: a file is the unit of work, the toolkit's own staging inside.

The run hands over a picklable `stage_file` (etl.run.load.FileStager: the readers, the mapping
and the pandera-polars row checks, a file read a piece of whole lines at a time) and the files.
A DataFrame of one row per task, one partition each, goes through `mapInArrow`: a task stages
its files one by one (a large file has a task of its own; small ones share one, as Spark packs
small files) and yields their staged rows, quarantined rows and records as rows of one table,
told apart by `_kind`. That table is written once as Parquet, then split into the source's
staging rows, quarantine rows, and the file records the driver collects (small).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from etl.engine.base import FileRecord, StageFile

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

KIND, RECORD = "_kind", "_record"
# quality.quarantine's columns (warehouse/ddl/quality.sql), prefixed in the staging output.
QUARANTINE = pa.schema(
    [("run_id", pa.string()), ("source", pa.string()), ("file", pa.string()),
     ("line", pa.int64()), ("reasons", pa.list_(pa.string())), ("raw", pa.string()),
     ("duplicate_of", pa.string())]
)  # fmt: skip
Q = "q_"


def stage_source(
    spark: SparkSession,
    files: list[Any],
    sizes: list[int],
    stage_file: StageFile,
    empty: pl.DataFrame,
    out: str,
) -> None:
    """Stage `files` (of one source, `sizes` bytes each) as tasks into the table `out`."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    staged = empty.to_arrow().schema
    fields = [*staged, *(f.with_name(Q + f.name) for f in QUARANTINE)]
    fields += [pa.field(KIND, pa.string()), pa.field(RECORD, pa.string())]
    spark_schema = from_arrow_schema(pa.schema(fields))
    arrow_schema = to_arrow_schema(spark_schema)
    tasks = packed(sizes, _conf_bytes(spark, "spark.sql.files.maxPartitionBytes"),
                   _conf_bytes(spark, "spark.sql.files.openCostInBytes"),
                   spark.sparkContext.defaultParallelism)  # fmt: skip

    def stage(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for task in batch.column(0).to_pylist():
                for index in tasks[task]:
                    yield from _file_rows(stage_file(files[index]), arrow_schema)

    ids = spark.range(0, len(tasks), 1, numPartitions=len(tasks))
    ids.mapInArrow(stage, spark_schema).write.mode("overwrite").saveAsTable(out)


def packed(sizes: list[int], max_bytes: int, open_cost: int, parallelism: int) -> list[list[int]]:
    """The files (by index) each task stages: a file is never split across tasks, and small
    ones share a task, as Spark's own file sources pack them (FilePartition): each costs its
    size plus `open_cost`, a task holds up to a split of the total spread over `parallelism`
    cores, capped at `max_bytes`. A large file is read in pieces of whole lines in its task."""
    total = sum(size + open_cost for size in sizes)
    split = min(max_bytes, max(open_cost, total // max(parallelism, 1)))
    tasks: list[list[int]] = []
    room = 0
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        cost = sizes[index] + open_cost
        if not tasks or cost > room:
            tasks.append([])
            room = split
        tasks[-1].append(index)
        room -= cost
    return tasks


def _conf_bytes(spark: SparkSession, key: str) -> int:
    """A size setting of the session in bytes ('128MB', '4194304b')."""
    return spark.sparkContext._jvm.org.apache.spark.network.util.JavaUtils.byteStringAsBytes(
        spark.conf.get(key)
    )


def _file_rows(
    result: tuple[pl.DataFrame, pl.DataFrame, FileRecord, dict[str, int]],
    schema: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """A file's staged rows, quarantined rows and record, as batches of the output schema."""
    staged, quarantined, record, reasons = result
    fields = dataclasses.asdict(record) | {"reasons": reasons}
    yield from _aligned(staged.to_arrow(), schema, "staged", "")
    yield from _aligned(quarantined.to_arrow(), schema, "quarantine", Q)
    record_row = pa.table({RECORD: [json.dumps(fields)]})
    yield from _aligned(record_row, schema, "file", "")


def _aligned(
    table: pa.Table, schema: pa.Schema, kind: str, prefix: str
) -> Iterator[pa.RecordBatch]:
    """`table`'s columns under `schema`'s names (with `prefix`), nulls for the others."""
    if not table.num_rows:
        return
    n = table.num_rows
    columns = []
    for field in schema:
        name = field.name.removeprefix(prefix) if field.name.startswith(prefix) else None
        if field.name == KIND:
            columns.append(pa.array([kind] * n, pa.string()))
        elif name is not None and name in table.column_names:
            columns.append(table.column(name).cast(field.type))
        else:
            columns.append(pa.nulls(n, field.type))
    yield from pa.Table.from_arrays(columns, schema=schema).to_batches()


def split(
    spark: SparkSession, out: str, staged: pl.DataFrame
) -> tuple[DataFrame, DataFrame, list[tuple[FileRecord, dict[str, int]]]]:
    """The staging table `out` as staged rows, quarantine rows and the file records."""
    from pyspark.sql import functions as F

    table = spark.table(out)
    rows = table.where(F.col(KIND) == "staged").select(*staged.columns)
    quarantine = table.where(F.col(KIND) == "quarantine").select(
        *(F.col(Q + name).alias(name) for name in QUARANTINE.names)
    )
    records = []
    for (text,) in table.where(F.col(KIND) == "file").select(RECORD).collect():
        fields = json.loads(text)
        reasons = fields.pop("reasons")
        records.append((FileRecord(**fields), reasons))
    return rows, quarantine, records
