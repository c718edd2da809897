"""The Spark engine: the run's stages' calls (etl.engine.base.Engine) on Spark's catalog.

Files are staged as Spark tasks (etl.engine.spark.staging); a run writes its rows to the working
tables and publishes them by the catalog's switch (etl.engine.spark.catalog): a failed audit or
a killed driver leaves what was published, and the next run restores the working tables from
it. Readers outside Spark get a DuckDB file of views over the published Parquet
(etl.engine.spark.readers). The ledger's statements are in `warehouse/spark/engine/`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from etl.config.spec import Config
from etl.engine.base import (
    Checkpoint,
    FileRecord,
    KeyLookup,
    ManifestEntry,
    NotReconciled,
    Publication,
    Published,
    RunRecord,
    StagingWork,
    SuiteRun,
)
from etl.engine.duckdb import sql_models
from etl.engine.duckdb.warehouse import named_statements
from etl.engine.spark import ledger
from etl.engine.spark.catalog import Catalog
from etl.engine.spark.readers import tables_folder, write_reader
from etl.engine.spark.session import spark_session
from etl.engine.spark.staging import adopt, discard, stage_source
from etl.errors import ReconciliationError
from etl.paths import WAREHOUSE_DIR

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

LEDGER_SQL = WAREHOUSE_DIR / "spark" / "engine" / "ledger.sql"
RUNS, FILES, QUARANTINE = "quality.runs", "quality.files", "quality.quarantine"
CHECKS = "quality.checks"
# What a run that did not publish still records: itself, its files, its rejected rows, its
# checks and control totals (as DuckDB's withdrawal keeps them).
LEDGER = (RUNS, FILES, QUARANTINE, CHECKS, "quality.control_totals")
KEPT_ON_WITHDRAW = {RUNS: "run_id", QUARANTINE: "run_id", CHECKS: "run_id"}


def open_spark_engine(
    reader: Path,
    models_dir: Path,
    config: Config,
    master: str | None = None,
    conf: dict[str, str] | None = None,
) -> SparkEngine:
    """The engine of the Spark warehouse beside `reader` (`x.duckdb` -> `x.spark/`), with a
    session of its own. Raises ConfigError (no pyspark, no Java, a setting it keeps)."""
    running = _active_session()
    spark = running or spark_session(tables_folder(reader), master, conf)
    engine = SparkEngine(spark, reader, models_dir, config)
    engine.owns_session = running is None
    return engine


def _active_session() -> SparkSession | None:
    """The session this process already runs (one per process: its catalog is fixed at
    start), if any; it is not stopped with the engine."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return SparkSession.getActiveSession()


class SparkEngine:
    """A warehouse in a Spark catalog, its tables Parquet, published by a catalog switch."""

    def __init__(self, spark: SparkSession, reader: Path, models_dir: Path, config: Config):
        self.spark, self.reader, self.owns_session = spark, reader, False
        self.run_id = ""  # from start_run
        # The ledger's tables (runs, files) as this engine last read or wrote them: each read
        # of a table is then one Spark job a run, not one a change. Forgotten by a restore.
        self._ledger: dict[str, pl.DataFrame] = {}
        # Parquet timestamps as instants in microseconds, which DuckDB reads as TIMESTAMPTZ.
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        self.catalog = Catalog(spark)
        self.models = sql_models.discover(models_dir, config)
        self.models_sha = sql_models.fingerprint(self.models)
        self._create_ledger()

    def close(self) -> None:
        if self.owns_session:
            self.spark.stop()

    # -- the run ledger ------------------------------------------------------------------------

    def recover(self, sources: Sequence[str]) -> None:
        """A run that did not end cleanly left the working tables unlike what is published:
        they are restored, and the runs it left recorded as crashed."""
        if self.catalog.is_dirty():
            published = self.catalog.published()
            self._create_ledger()  # a kill between a table's drop and its rename lost it
            working = self._read(RUNS)
            before = self._version(published, RUNS, working)
            self._restore()
            self._create_ledger()
            self._write(RUNS, pl.concat([self._read(RUNS), ledger.crashed(working, before)]))
            self._commit([RUNS])
            self.catalog.mark_clean()
        self.catalog.drop_unpublished_versions()  # a commit's copies, if it died before its switch
        self._write_reader()

    def start_run(self, run_id: str, config_path: str, data_root: str) -> None:
        self.run_id = run_id
        self.catalog.mark_dirty(run_id)
        self._write(RUNS, ledger.started(self._read(RUNS), run_id, config_path, data_root))

    def fail_run(self, run_id: str, exit_code: int, message: str) -> None:
        self._write(RUNS, ledger.failed(self._read(RUNS), run_id, exit_code, message))
        self._commit([RUNS])

    def manifest(self) -> list[ManifestEntry]:
        return ledger.manifest(self._read(FILES))

    def touch_files(self, mtimes: pl.DataFrame) -> None:
        self._write(FILES, ledger.touched(self._read(FILES), mtimes))

    def models_changed(self) -> bool:
        runs = self._read(RUNS).filter(pl.col("published")).sort("started_at")
        return not runs.height or runs["models_sha"][-1] != self.models_sha

    # -- loading -------------------------------------------------------------------------------

    def create_staging(self, source: str, empty: pl.DataFrame, text_keys: Sequence[str]) -> None:
        table = f"staging.{source}"
        if not self.catalog.exists(table) or set(empty.columns) - set(
            self.spark.table(table).columns
        ):
            self.catalog.append(table, self._frame(empty))

    def stored_boundary(self, source: str) -> list[str]:
        table = f"staging.{source}"
        if not self.catalog.exists(table):
            return []
        return [row.wkt for row in self.spark.table(table).select("wkt").collect()]

    @contextmanager
    def loading(self) -> Iterator[None]:
        """Each source's files are written when their tasks end: nothing is left behind."""
        yield

    def stage_files(self, work: StagingWork) -> list[tuple[FileRecord, dict[str, int]]]:
        """Each source's files as Spark tasks (a unit per file, per span of a large one); rows
        appended to the working staging table and quarantine, the file records in the order
        of `work.files`."""
        records: dict[str, tuple[FileRecord, dict[str, int]]] = {}
        for source in dict.fromkeys(work.sources):
            table, out = f"staging.{source}", f"{self.catalog.root}/_staged/{source}"
            exists = self.catalog.exists(table)
            earlier = self.spark.table(table) if exists else None
            staged = stage_source(self.spark, work, source, earlier, out)
            # The tasks' files become the table's, unless it lacks a column (a new field).
            folder = str(self.catalog.location(table))
            if not (exists and adopt(self.spark, staged, table, folder)):
                self.catalog.append(table, staged.rows)
            self.catalog.append(QUARANTINE, staged.quarantine)
            discard(self.spark, out)
            records |= {record.path: (record, reasons) for record, reasons in staged.records}
        return [records[path] for path in work.paths]

    def stage_batch(self, source: str, staged: pl.DataFrame, quarantine: pl.DataFrame) -> None:
        raise RuntimeError("the Spark engine stages files as tasks (stage_files), not batches")

    def discard_file(self, run_id: str, source: str, path: str) -> None:
        raise RuntimeError("the Spark engine stages whole files: a failed one writes nothing")

    def keys_elsewhere(self, lookup: KeyLookup) -> pl.DataFrame:
        raise RuntimeError("the Spark engine stages files as tasks (stage_files), not batches")

    # -- audit, publish, withdraw --------------------------------------------------------------

    def run_suites(self, audit: SuiteRun) -> list[Any]:
        """Great Expectations validates on this session (its Spark datasource); the results
        are recorded in `quality.checks`."""
        checks = audit.run(self.spark, "spark")
        rows = audit.rows(checks)
        if rows:
            schema = self.spark.table(CHECKS).schema
            self.catalog.append(CHECKS, self.spark.createDataFrame(rows, schema))
        return checks

    def publish(
        self, publication: Publication, checkpoint: Checkpoint, progress: Callable[[str], None]
    ) -> Published | NotReconciled:
        """Everything written to the working tables, then published by one switch."""
        try:
            checkpoint("publish_begun")
            self._retire_replaced(publication)
            checkpoint("retired")
            self._store_boundaries(publication.boundaries)
            checkpoint("boundary_stored")
            self._record_files(publication.run_id, publication.loaded)
            matches = self._build(publication, progress)
            checkpoint("built")
            runs = ledger.updated(self._read(RUNS), publication.run_id, published=True,
                                  models_sha=self.models_sha)  # fmt: skip
            self._write(RUNS, runs)
            self._finish_run(publication.record)
            checkpoint("recorded")
        except ReconciliationError as exc:
            return NotReconciled(str(exc), exc.totals)
        self._commit(self.catalog.tables())
        self.catalog.mark_clean()
        return Published(matches)

    def withdraw(
        self,
        record: RunRecord,
        sources: Sequence[str],
        totals: pl.DataFrame | None,
        checkpoint: Checkpoint,
    ) -> None:
        """Every working table back as published, but for this run's own record, rejected rows
        and checks; then the run recorded, unpublished."""
        self._restore(record.run_id, KEPT_ON_WITHDRAW)
        self._create_ledger()
        self._write(RUNS, ledger.updated(self._read(RUNS), record.run_id, published=False))
        if totals is not None:
            self.catalog.append("quality.control_totals", self._frame(totals))
        self._finish_run(record)
        checkpoint("withdrawn")
        self._commit(LEDGER)
        self.catalog.mark_clean()

    def _retire_replaced(self, publication: Publication) -> None:
        """Rows of earlier versions of the files this run loaded (of every file, on a full
        refresh) leave staging and the quarantine, as in DuckDB's publish."""
        from pyspark.sql import functions as F

        tables = [(f"staging.{name}", "_run_id", "_file") for name in publication.config.sources]
        paths = [record.path for record in publication.loaded]
        for table, run, file in [*tables, (QUARANTINE, "run_id", "file")]:
            if not self.catalog.exists(table):
                continue
            old = F.col(run) != publication.run_id
            if not publication.full_refresh:
                old = old & F.col(file).isin(paths)
            rows = self.spark.table(table)
            # A table with no such rows (any first load) is not written again.
            if not rows.where(F.coalesce(old, F.lit(True))).isEmpty():
                self.catalog.replace(table, rows.where(~old))

    def _store_boundaries(self, boundaries: dict[str, pl.DataFrame]) -> None:
        for source, rows in boundaries.items():
            self.catalog.replace(f"staging.{source}", self._frame(rows))

    def _build(self, publication: Publication, progress: Callable[[str], None]) -> int | None:
        """The SQL models, matches and control totals on Spark (etl.engine.spark.build)."""
        from etl.engine.spark.build import build_curated

        if not (publication.loaded or publication.rebuild):
            return None
        changed = None
        if not publication.rebuild:
            changed = [(record.source, record.path) for record in publication.loaded]
        summary = build_curated(
            self.spark, publication.config, publication.run_id, self.models,
            publication.calendar, changed, progress, listings=self.catalog.listings,
        )  # fmt: skip
        return summary.matches

    def _record_files(self, run_id: str, records: Sequence[FileRecord]) -> None:
        if records:
            self._write(FILES, ledger.file_rows(self._read(FILES), run_id, records))

    def _finish_run(self, record: RunRecord) -> None:
        self._record_files(record.run_id, record.unpublished)
        self._write(RUNS, ledger.finished(self._read(RUNS), record))

    # -- the catalog ---------------------------------------------------------------------------

    def _create_ledger(self) -> None:
        """The ledger's tables (and the view) that are missing: a statement each."""
        statements = named_statements(LEDGER_SQL)
        missing = [
            sql for name, sql in statements.items() if not self.catalog.exists(f"quality.{name}")
        ]
        for statement in missing:
            self.spark.sql(statement)
        if missing:
            self.catalog.forget()

    def _commit(self, names: Sequence[str]) -> None:
        """Publish the working tables `names` by the catalog's switch; the readers' file after,
        then the versions no longer published go."""
        self.catalog.commit(f"c{time.time_ns()}", names)
        self._write_reader()
        self.catalog.drop_unpublished_versions()

    def _write_reader(self) -> None:
        published = self.catalog.published()
        tables = {n: self.catalog.location(v) for n, (v, _) in published.items()}
        write_reader(self.reader, tables, self.models)

    def _version(self, published: dict, name: str, like: pl.DataFrame) -> pl.DataFrame:
        """The published version of a table, or none of `like`'s rows."""
        if name not in published:
            return like.clear()
        return pl.from_arrow(self.spark.table(published[name][0]).toArrow())

    def _restore(self, *args: Any) -> None:
        """The working tables back as published (Catalog.restore): the ledger read again."""
        self.catalog.restore(*args)
        self._ledger.clear()

    def _read(self, table: str) -> pl.DataFrame:
        """A ledger table's rows: read once, then as this engine wrote them."""
        if table not in self._ledger:
            self._ledger[table] = pl.from_arrow(self.spark.table(table).toArrow())
        return self._ledger[table]

    def _write(self, table: str, frame: pl.DataFrame) -> None:
        """A ledger table holds `frame` from now on (its files overwritten in place: a dirty
        run's working tables are restored from what is published)."""
        schema = self.spark.table(table).schema
        self.catalog.overwrite(table, self._frame(frame, schema))
        self._ledger[table] = frame

    def _frame(self, frame: pl.DataFrame, schema: Any = None) -> DataFrame:
        """A polars frame as a Spark DataFrame (of `schema`, when given)."""
        from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

        arrow = frame.to_arrow()
        schema = schema or from_arrow_schema(arrow.schema)
        if not frame.height:  # Spark's Arrow path needs a batch to convert
            return self.spark.createDataFrame([], schema)
        arrow = arrow.select(schema.names).cast(to_arrow_schema(schema))
        return self.spark.createDataFrame(arrow, schema)

    # -- reading -------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return [tuple(row) for row in self.spark.sql(sql, args=list(params) or None).collect()]
