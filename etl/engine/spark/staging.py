"""Files staged as Spark tasks: one task per file, the toolkit's own staging inside it.

The run hands over a picklable `stage_file` (etl.run.load.FileStager: the readers, the mapping
and the pandera-polars row checks, a file read a piece of whole lines at a time) and the files.
A DataFrame of one row per file, one partition each, goes through `mapInArrow`: each task stages
its file and yields its staged rows, its quarantined rows and its record as rows of one table,
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
    from pyspark.sql.types import StructType

KIND, RECORD = "_kind", "_record"
# quality.quarantine's columns (warehouse/ddl/quality.sql), prefixed in the staging output.
QUARANTINE = pa.schema(
    [("run_id", pa.string()), ("source", pa.string()), ("file", pa.string()),
     ("line", pa.int64()), ("reasons", pa.list_(pa.string())), ("raw", pa.string()),
     ("duplicate_of", pa.string())]
)  # fmt: skip
Q = "q_"


def stage_source(
    spark: SparkSession, files: list[Any], stage_file: StageFile, empty: pl.DataFrame, out: str
) -> StructType:
    """Stage `files` (of one source) as tasks into the table `out`; its Spark schema."""
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    staged = empty.to_arrow().schema
    fields = [*staged, *(f.with_name(Q + f.name) for f in QUARANTINE)]
    fields += [pa.field(KIND, pa.string()), pa.field(RECORD, pa.string())]
    spark_schema = from_arrow_schema(pa.schema(fields))
    arrow_schema = to_arrow_schema(spark_schema)

    def tasks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for index in batch.column(0).to_pylist():
                yield from _file_rows(stage_file(files[index]), arrow_schema)

    refs = spark.range(0, len(files), 1, numPartitions=len(files))
    refs.mapInArrow(tasks, spark_schema).write.mode("overwrite").saveAsTable(out)
    return spark_schema


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


def _aligned(table: pa.Table, schema: pa.Schema, kind: str, prefix: str) -> Iterator[pa.RecordBatch]:
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
