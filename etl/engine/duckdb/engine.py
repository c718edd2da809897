"""The DuckDB engine: the run's stages' calls (etl.engine.base.Engine) on one warehouse file.

Loading appends through a writer thread under a lowered memory cap; a publish or a withdrawal
is one transaction. The statements are in `warehouse/run/` and `warehouse/audit/`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

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
from etl.engine.duckdb import sql_models, trips_view, warehouse
from etl.engine.duckdb.build import ReconciliationError, build_curated
from etl.engine.duckdb.writer import BatchWriter
from etl.paths import WAREHOUSE_DIR

# DuckDB's buffer pool while files load: appending needs little, and what it caches nobody reads
# until the audits (at 20 M rows the pool otherwise grew to its cap, +0.6 GB of peak memory).
LOAD_MEMORY = "256MB"


@cache
def _sql(name: str) -> str:
    """A statement of `warehouse/run/` (or `warehouse/<dir>/` for a name with a slash)."""
    return (
        (WAREHOUSE_DIR / (name if "/" in name else f"run/{name}")).with_suffix(".sql").read_text()
    )


class DuckDBEngine:
    """The warehouse as one DuckDB file, held open by one connection."""

    def __init__(self, path: Path, models_dir: Path, config: Config) -> None:
        """Open (or create) the warehouse file, with the SQL models in `models_dir` and the
        intermediate views generated for `config`'s trip sources to build.
        Raises WarehouseError, ModelError."""
        self.con = warehouse.connect(path)
        self.text_ids = trips_view.text_ids(config)
        try:
            models = sql_models.discover(models_dir, config, self.text_ids)
            self.models = trips_view.as_view(models, config)
        except BaseException:
            self.con.close()
            raise
        self.models_sha = sql_models.fingerprint(self.models)
        self.writer: BatchWriter | None = None  # while loading

    def close(self) -> None:
        self.con.close()

    # -- the run ledger ------------------------------------------------------------------------

    def recover(self, sources: Sequence[str]) -> None:
        self.con.execute(_sql("recover_runs"))
        self.con.execute(_sql("recover_quarantine"))
        for table in self._tables(sources):
            self.con.execute(_sql("recover_staging").format(table=table))

    def start_run(self, run_id: str, config_path: str, data_root: str) -> None:
        self.con.execute(_sql("start_run"), [run_id, config_path, data_root])

    def fail_run(self, run_id: str, exit_code: int, message: str) -> None:
        self.con.execute(_sql("fail_run"), [exit_code, message, run_id])

    def manifest(self) -> list[ManifestEntry]:
        return [ManifestEntry(*row) for row in self.con.execute(_sql("manifest")).fetchall()]

    def touch_files(self, mtimes: pl.DataFrame) -> None:
        with warehouse.registered(self.con, "_touched", mtimes):
            self.con.execute(_sql("touch_files"))

    def models_changed(self) -> bool:
        last = self.con.execute(_sql("last_models_sha")).fetchall()
        return not last or last[0][0] != self.models_sha

    # -- loading -------------------------------------------------------------------------------

    def create_staging(self, source: str, empty: pl.DataFrame, text_keys: Sequence[str]) -> None:
        table = f"staging.{source}"
        if source in self.text_ids:
            if warehouse.table_exists(self.con, table):
                trips_view.add_text_id(self.con, table, self.text_ids[source])
            empty = trips_view.with_text_id(empty, self.text_ids[source])
            text_keys = [*text_keys, trips_view.TEXT_ID]
        warehouse.append(self.con, table, empty, text_keys)

    def stored_boundary(self, source: str) -> list[str]:
        table = f"staging.{source}"
        if not warehouse.table_exists(self.con, table):
            return []
        return [
            wkt for (wkt,) in self.con.execute(_sql("boundary_wkt").format(table=table)).fetchall()
        ]

    @contextmanager
    def loading(self) -> Iterator[None]:
        with warehouse.memory_limit(self.con, LOAD_MEMORY):
            self.writer = BatchWriter(self.con)
            try:
                yield
            except BaseException:
                self.writer.abandon()
                raise
            finally:
                writer, self.writer = self.writer, None
            writer.close()

    def stage_batch(self, source: str, staged: pl.DataFrame, quarantine: pl.DataFrame) -> None:
        if source in self.text_ids:
            staged = trips_view.with_text_id(staged, self.text_ids[source])
        writes = [(f"staging.{source}", staged), ("quality.quarantine", quarantine)]
        self._writer().submit([(table, frame) for table, frame in writes if frame.height])

    def stage_files(self, work: StagingWork) -> None:
        """DuckDB stages batches in this process, written behind a thread (`stage_batch`)."""
        return None

    def discard_file(self, run_id: str, source: str, path: str) -> None:
        self._writer().flush()
        self.con.execute(_sql("discard_staged").format(table=f"staging.{source}"), [run_id, path])
        self.con.execute(_sql("discard_quarantined"), [run_id, path])

    def keys_elsewhere(self, lookup: KeyLookup) -> pl.DataFrame:
        keys = [f'"{k}"' for k in lookup.batch_keys.columns if k not in ("_pos", "_file")]
        sql = _sql("audit/keys_staged_elsewhere").format(
            source=lookup.source,
            keys=", ".join(keys),
            key_match=" AND ".join(f"o.{k} = b.{k}" for k in keys),
        )
        paths = pl.DataFrame({"path": list(lookup.reloaded)}, schema={"path": pl.Utf8})
        params = {"run_id": lookup.run_id, "full_refresh": lookup.full_refresh,
                  "scope": lookup.scope}  # fmt: skip
        with (
            warehouse.registered(self.con, "_batch_keys", lookup.batch_keys),
            warehouse.registered(self.con, "_in_flight", lookup.in_flight),
            warehouse.registered(self.con, "_reloaded", paths),
        ):
            return self.con.sql(sql, params=params).pl()

    def _writer(self) -> BatchWriter:
        if self.writer is None:
            raise RuntimeError("a batch is written only while loading")
        return self.writer

    # -- audit, publish, withdraw --------------------------------------------------------------

    def run_suites(self, audit: SuiteRun) -> list[Any]:
        """Great Expectations validates on this connection (etl.quality.gx_duckdb); the results
        are recorded in `quality.checks`."""
        checks = audit.run(self.con, "duckdb")
        rows = audit.rows(checks)
        if rows:
            self.con.executemany(_sql("record_checks"), rows)
        return checks

    def publish(
        self, publication: Publication, checkpoint: Checkpoint, progress: Callable[[str], None]
    ) -> Published | NotReconciled:
        try:
            with warehouse.transaction(self.con):
                checkpoint("publish_begun")
                self._retire_replaced(publication)
                checkpoint("retired")
                self._store_boundaries(publication.boundaries)
                checkpoint("boundary_stored")
                self._record_files(publication.run_id, publication.loaded)
                # Before the build: curated.trips shows the staged rows of published runs, and
                # the control totals count this run's among them.
                self.con.execute(_sql("mark_published"), [self.models_sha, publication.run_id])
                matches = self._build(publication, progress)
                checkpoint("built")
                self._finish_run(publication.record)
                checkpoint("recorded")
        except ReconciliationError as exc:
            return NotReconciled(str(exc), exc.totals)
        return Published(matches)

    def withdraw(
        self,
        record: RunRecord,
        sources: Sequence[str],
        totals: pl.DataFrame | None,
        checkpoint: Checkpoint,
    ) -> None:
        with warehouse.transaction(self.con):
            for table in self._tables(sources):
                self.con.execute(_sql("withdraw_staged").format(table=table), [record.run_id])
            if totals is not None:
                warehouse.append(self.con, "quality.control_totals", totals)
            self._finish_run(record)
            checkpoint("withdrawn")

    def _retire_replaced(self, publication: Publication) -> None:
        """The rows of earlier versions of the files this run loaded (of every file, on a full
        refresh) leave staging and the quarantine: a file's staged and quarantined rows are
        those of its current version, and add up to the rows it has. Quarantined rows of a run
        that failed its audit go too once their file loads."""
        tables = [(f"staging.{name}", "_run_id", "_file") for name in publication.config.sources]
        tables.append(("quality.quarantine", "run_id", "file"))
        paths = [record.path for record in publication.loaded]
        for table, run, file in tables:
            if not warehouse.table_exists(self.con, table):
                continue
            if publication.full_refresh:
                sql = _sql("retire_all").format(table=table, run=run)
                self.con.execute(sql, [publication.run_id])
            else:
                sql = _sql("retire_files").format(table=table, run=run, file=file)
                self.con.execute(sql, [publication.run_id, paths])

    def _store_boundaries(self, boundaries: dict[str, pl.DataFrame]) -> None:
        """A new boundary replaces the old one here, in the publish transaction: a crash or a
        failed audit leaves the old one, and the new file loads again on the next run."""
        for source, rows in boundaries.items():
            table = f"staging.{source}"
            if warehouse.table_exists(self.con, table):
                self.con.execute(_sql("clear_boundary").format(table=table))
            warehouse.append(self.con, table, rows)

    def _build(self, publication: Publication, progress: Callable[[str], None]) -> int | None:
        """The SQL models, matches and control totals; None if there was nothing to build."""
        if not (publication.loaded or publication.rebuild):
            return None
        changed = None
        if not publication.rebuild:
            changed = [(record.source, record.path) for record in publication.loaded]
        summary = build_curated(
            self.con,
            publication.config,
            publication.run_id,
            self.models,
            publication.calendar,
            changed,
            progress,
        )
        return summary.matches

    def _record_files(self, run_id: str, records: Sequence[FileRecord]) -> None:
        rows = [(run_id, *_ledger_columns(record)) for record in records]
        if rows:
            self.con.executemany(_sql("record_files"), rows)

    def _finish_run(self, record: RunRecord) -> None:
        self._record_files(record.run_id, record.unpublished)
        self.con.execute(
            _sql("finish_run"),
            [
                record.status, record.exit_code, record.files_seen, record.files_loaded,
                record.files_skipped, record.files_failed, record.rows_read, record.rows_staged,
                record.rows_flagged, record.rows_quarantined, record.message, record.run_id,
            ],
        )  # fmt: skip

    def _tables(self, sources: Sequence[str]) -> list[str]:
        """The staging tables of `sources` that exist."""
        tables = [f"staging.{name}" for name in sources]
        return [table for table in tables if warehouse.table_exists(self.con, table)]

    # -- reading -------------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()


def _ledger_columns(record: FileRecord) -> tuple:
    """A file's record in the column order of `record_files.sql`."""
    r = record
    return (
        r.source, r.path, r.layout, r.size_bytes, r.sha256, r.fingerprint, r.rows_read,
        r.rows_staged, r.rows_flagged, r.rows_quarantined, r.blank_lines, r.control_total,
        r.status, r.reason, r.mtime_ns,
    )  # fmt: skip
