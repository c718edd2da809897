"""A staging job for the standalone cluster test, run as its own driver process (one Spark
driver per process): the files of the trip sources as tasks, one file per task, each running
the toolkit's reader, mapping and pandera row checks (`etl.stage`) inside `mapInArrow`; the
staged rows written as Parquet, the counts per file collected.

    python tests/spark/cluster_job.py MASTER DATA_ROOT OUT [SOURCE ...]
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from etl.paths import PROJECT_ROOT

CONFIG = PROJECT_ROOT / "sources.yaml"
COUNTS = "_counts"  # the column of a task's one row of per-file counts


def _spark_schema(source):  # type: ignore[no-untyped-def]
    """The staged rows' Arrow schema as Spark takes it (plain strings and lists), plus the
    counts column."""
    import pyarrow as pa

    from etl.stage.batch import empty_staging_frame

    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_list(t) or pa.types.is_list_view(t):
            return pa.list_(plain(t.value_type))
        return t

    staged = empty_staging_frame(source).to_arrow().schema
    return pa.schema([pa.field(f.name, plain(f.type)) for f in staged] + [(COUNTS, pa.string())])


def stage_file(ref, source, run_id, checker, boundary, limits, schema) -> Iterator:  # type: ignore[no-untyped-def]
    """One task: the file read a piece at a time, staged and row-checked as `etl run` does;
    its staged rows, then one row of its counts (read = staged + quarantined)."""
    import pyarrow as pa

    from etl.readers import READERS
    from etl.sources.fetch import read_pieces
    from etl.stage.batch import FileReader, stage_files

    reader = FileReader(ref, source)
    pieces = read_pieces(ref, 64 << 20, limits, READERS[source.format].by_lines)
    reads = [r for p in pieces if (r := reader.read(p.data, p.last)) is not None]
    batch = stage_files(reads, source, run_id, checker, boundary)
    staged = batch.staged.to_arrow()
    present = staged.column_names
    columns = [
        staged.column(f.name).cast(f.type) if f.name in present else pa.nulls(len(staged), f.type)
        for f in schema
        if f.name != COUNTS
    ]
    yield from pa.Table.from_arrays(
        [*columns, pa.nulls(len(staged), pa.string())], schema=schema
    ).to_batches()
    counts = {path: vars(c) for path, c in batch.counts.items()}
    row = [pa.nulls(1, f.type) for f in schema if f.name != COUNTS] + [
        pa.array([json.dumps(counts)])
    ]
    yield from pa.Table.from_arrays(row, schema=schema).to_batches()


def stage_on_spark(master: str, data_root: Path, out: Path, only: list[str] | None) -> None:
    """Stage the trip sources (`only` those, if given) of `data_root` on `master`, one task
    per file, into `out`/counts.json (rows read, staged and quarantined per file)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from etl.config.load import load_config
    from etl.engine.spark.session import spark_session
    from etl.readers import formats
    from etl.readers.geojson import read_boundary
    from etl.run.plan import row_checkers
    from etl.sources.files import FileRef, discover

    spark = spark_session(out / "warehouse", master=master)
    config = load_config(CONFIG, formats())
    checkers = row_checkers(config, CONFIG.parent)
    run_id, counts, boundary = uuid.uuid4().hex, {}, None
    for name, source in config.sources.items():
        if only and name not in only and source.entity != "boundary":
            continue
        files = [f for f in discover(name, source, data_root) if isinstance(f, FileRef)]
        if source.entity == "boundary" and files:
            boundary, _ = read_boundary(files[0], run_id)
            continue
        if not files:
            continue
        schema = _spark_schema(source)
        args = (source, run_id, checkers[name], boundary, config.limits, schema)

        def tasks(batches, files=files, args=args):  # type: ignore[no-untyped-def]
            for batch in batches:
                for index in batch.column(0).to_pylist():
                    yield from stage_file(files[index], *args)

        ids = spark.range(0, len(files), 1, numPartitions=len(files))
        ids.mapInArrow(tasks, from_arrow_schema(schema)).write.mode("overwrite").parquet(
            str(out / name)
        )
        rows = spark.read.parquet(str(out / name)).where(f"{COUNTS} IS NOT NULL").collect()
        for (text,) in (r[-1:] for r in rows):
            counts.update(json.loads(text))
    spark.stop()
    (out / "counts.json").write_text(json.dumps(counts, indent=1, sort_keys=True))


if __name__ == "__main__":
    master, data_root, out, *only = sys.argv[1:]
    stage_on_spark(master, Path(data_root), Path(out), only)
