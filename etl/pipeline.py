"""The nightly load, `etl run`: every source's new files into staging, then publish.

The order of work (design.md, "Data flow"): discover each source's files and skip those the
manifest already holds; read, stage and row-check each new or changed file into
`staging.<source>` tagged with this run's id; run the batch audits; then, in one transaction,
retire the rows of replaced files, record the manifest and rebuild the curated layer. If an
audit fails, this run's rows leave staging again and nothing published changes. If the process
dies midway, the next run finds the rows of a run that never published and removes them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import duckdb

from etl.config.load import load_config
from etl.config.models import Config, Source
from etl.publish import models, warehouse
from etl.sources.fetch import read_bytes
from etl.sources.files import Broken, FileRef, SourceError, discover
from etl.stage.batch import FileBatch, empty_staging_frame, prepare, reject_unparseable

EXIT_OK, EXIT_AUDIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class Reporter(Protocol):
    """Where the run tells what it is doing: a progress bar on a terminal, log lines elsewhere."""

    def start(self, total: int) -> None: ...
    def advance(self, path: str) -> None: ...
    def log(self, message: str) -> None: ...


class SilentReporter:
    def start(self, total: int) -> None: ...
    def advance(self, path: str) -> None: ...
    def log(self, message: str) -> None: ...


@dataclass
class FileOutcome:
    """What a run did with one file."""

    source: str
    path: str
    status: str  # loaded, failed, audit_failed
    reason: str | None = None
    layout: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    fingerprint: str | None = None
    rows_read: int = 0
    rows_staged: int = 0
    rows_flagged: int = 0
    rows_quarantined: int = 0
    blank_lines: int = 0
    control_total: int | None = None


@dataclass
class RunResult:
    """The outcome of one run, as the CLI prints it and `quality.runs` records it."""

    run_id: str
    status: str
    exit_code: int
    files: list[FileOutcome]
    files_skipped: int
    published: bool
    message: str
    reason_counts: Counter = field(default_factory=Counter)

    def total(self, attribute: str) -> int:
        return sum(getattr(f, attribute) for f in self.files)


def run(
    config_path: Path,
    data_root: Path,
    warehouse_path: Path,
    full_refresh: bool = False,
    reporter: Reporter | None = None,
) -> RunResult:
    """Load every source, audit and publish. Raises ConfigError/SourceError for bad usage."""
    reporter = reporter or SilentReporter()
    config = load_config(config_path)
    if not data_root.is_dir():
        raise SourceError(f"{data_root}: data root is not a directory")
    con = warehouse.connect(warehouse_path)
    try:
        return _Run(con, config, config_path, data_root, full_refresh, reporter).execute()
    finally:
        con.close()


class _Run:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        config: Config,
        config_path: Path,
        data_root: Path,
        full_refresh: bool,
        reporter: Reporter,
    ) -> None:
        self.con = con
        self.config = config
        self.config_path = config_path
        self.data_root = data_root
        self.full_refresh = full_refresh
        self.reporter = reporter
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.outcomes: list[FileOutcome] = []
        self.reasons: Counter = Counter()
        self.skipped = 0
        self.models = models.discover()
        self.models_sha = models.fingerprint(self.models)

    def execute(self) -> RunResult:
        self._recover()
        self._ensure_staging_tables()
        self.con.execute(
            "INSERT INTO quality.runs (run_id, started_at, status, config_path, data_root) "
            "VALUES (?, now(), 'running', ?, ?)",
            [self.run_id, str(self.config_path), str(self.data_root)],
        )
        todo = self._plan()
        self.reporter.start(len(todo))
        for (ref, source), fetched in _prefetch(todo):
            self._load_file(ref, source, fetched)
            self.reporter.advance(ref.path)
        loaded = [o for o in self.outcomes if o.status == "loaded"]
        self._publish(loaded)
        return self._finish()

    def _models_changed(self) -> bool:
        """Whether the SQL models differ from those of the last published run."""
        last = self.con.execute(
            "SELECT models_sha FROM quality.runs WHERE published ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
        return last is None or last[0] != self.models_sha

    def _recover(self) -> None:
        """Undo what a run that died left behind: its rows in staging were never published."""
        self.con.execute("UPDATE quality.runs SET status = 'crashed' WHERE status = 'running'")
        self.con.execute(
            "DELETE FROM quality.quarantine WHERE run_id IN "
            "(SELECT run_id FROM quality.runs WHERE status = 'crashed')"
        )
        for name in self.config.sources:
            table = f"staging.{name}"
            if warehouse.table_exists(self.con, table):
                self.con.execute(
                    f"DELETE FROM {table} WHERE _run_id NOT IN "
                    "(SELECT run_id FROM quality.runs WHERE published)"
                )

    def _ensure_staging_tables(self) -> None:
        """Every trip source has its staging table, even before it has files: models read them."""
        for name, source in self.config.sources.items():
            if source.entity == "trip":
                table = f"staging.{name}"
                warehouse.append(self.con, table, empty_staging_frame(source))

    def _plan(self) -> list[tuple[FileRef, Source]]:
        """The files to load this run: new or changed ones (all, on a full refresh)."""
        known = dict(self.con.execute("SELECT path, fingerprint FROM quality.manifest").fetchall())
        todo = []
        for name, source in self.config.sources.items():
            for found in discover(name, source, self.data_root):
                if isinstance(found, Broken):
                    self._fail(FileOutcome(name, found.path, "failed", found.reason))
                elif not self.full_refresh and known.get(found.path) == found.fingerprint:
                    self.skipped += 1
                else:
                    todo.append((found, source))
        return todo

    def _load_file(self, ref: FileRef, source: Source, fetched: _Fetched) -> None:
        outcome = FileOutcome(
            ref.source, ref.path, "loaded", size_bytes=ref.size_bytes, fingerprint=ref.fingerprint
        )
        try:
            if isinstance(fetched, SourceError):
                raise fetched
            data, outcome.sha256 = fetched
            batch = prepare(ref, source, data, self.run_id, reject_unparseable)
        except SourceError as exc:
            outcome.status, outcome.reason = "failed", str(exc)
            self._fail(outcome)
            return
        self._write(batch, outcome)

    def _write(self, batch: FileBatch, outcome: FileOutcome) -> None:
        staged, quarantined = batch.staged.height, batch.quarantine.height
        if staged + quarantined != batch.rows_read:
            raise RuntimeError(
                f"{outcome.path}: {batch.rows_read} rows read but {staged} staged "
                f"+ {quarantined} quarantined"
            )
        if staged:
            warehouse.append(self.con, f"staging.{outcome.source}", batch.staged)
        if quarantined:
            warehouse.append(self.con, "quality.quarantine", batch.quarantine)
        outcome.layout = batch.layout
        outcome.rows_read, outcome.rows_staged = batch.rows_read, staged
        outcome.rows_quarantined, outcome.rows_flagged = quarantined, batch.rows_flagged
        outcome.blank_lines, outcome.control_total = batch.blank_lines, batch.control_total
        self.reasons.update(batch.reason_counts)
        self.outcomes.append(outcome)
        self.reporter.log(
            f"{outcome.path}: {batch.rows_read} read, {staged} staged, {quarantined} quarantined"
        )

    def _fail(self, outcome: FileOutcome) -> None:
        self.outcomes.append(outcome)
        self.reporter.log(f"{outcome.path}: FAILED: {outcome.reason}")

    def _publish(self, loaded: list[FileOutcome]) -> None:
        """Retire replaced rows and record the manifest, all in one transaction."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            for name in self.config.sources:
                table = f"staging.{name}"
                if not warehouse.table_exists(self.con, table):
                    continue
                if self.full_refresh:
                    self.con.execute(f"DELETE FROM {table} WHERE _run_id <> ?", [self.run_id])
                else:
                    self.con.execute(
                        f"DELETE FROM {table} WHERE _run_id <> ? AND _file IN "
                        "(SELECT unnest(?::VARCHAR[]))",
                        [self.run_id, [o.path for o in loaded if o.source == name]],
                    )
            self._record_files(loaded)
            if loaded or self.full_refresh or self._models_changed():
                models.build(self.con, self.models)
            self.con.execute(
                "UPDATE quality.runs SET published = true, models_sha = ? WHERE run_id = ?",
                [self.models_sha, self.run_id],
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _record_files(self, outcomes: list[FileOutcome]) -> None:
        rows = [
            (
                self.run_id,
                o.source,
                o.path,
                o.layout,
                o.size_bytes,
                o.sha256,
                o.fingerprint,
                o.rows_read,
                o.rows_staged,
                o.rows_flagged,
                o.rows_quarantined,
                o.blank_lines,
                o.control_total,
                o.status,
                o.reason,
            )
            for o in outcomes
        ]
        if rows:
            self.con.executemany(
                "INSERT INTO quality.files VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                rows,
            )

    def _finish(self) -> RunResult:
        self._record_files([o for o in self.outcomes if o.status != "loaded"])
        failed = [o for o in self.outcomes if o.status == "failed"]
        exit_code = EXIT_BAD_INPUT if failed else EXIT_OK
        status = "partial" if failed else "published"
        message = f"{len(failed)} file(s) could not be read" if failed else "ok"
        result = RunResult(
            self.run_id, status, exit_code, self.outcomes, self.skipped, True, message, self.reasons
        )
        self.con.execute(
            """
            UPDATE quality.runs SET finished_at = now(), status = ?, exit_code = ?,
                files_seen = ?, files_loaded = ?, files_skipped = ?, files_failed = ?,
                rows_read = ?, rows_staged = ?, rows_flagged = ?, rows_quarantined = ?, message = ?
            WHERE run_id = ?
            """,
            [
                status,
                exit_code,
                len(self.outcomes) + self.skipped,
                sum(o.status == "loaded" for o in self.outcomes),
                self.skipped,
                len(failed),
                result.total("rows_read"),
                result.total("rows_staged"),
                result.total("rows_flagged"),
                result.total("rows_quarantined"),
                message,
                self.run_id,
            ],
        )
        return result


_Fetched = tuple[bytes, str] | SourceError  # a file's bytes and their sha256, or why not


def _prefetch(
    todo: list[tuple[FileRef, Source]],
) -> Iterator[tuple[tuple[FileRef, Source], _Fetched]]:
    """Each file's bytes, inflating the next file in a thread while the caller parses this one.

    Inflating and hashing release the GIL, so they overlap with parsing on the second core.
    """

    def fetch(ref: FileRef) -> _Fetched:
        try:
            data = read_bytes(ref)
        except SourceError as exc:
            return exc
        return data, hashlib.sha256(data).hexdigest()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future | None = pool.submit(fetch, todo[0][0]) if todo else None
        for index, item in enumerate(todo):
            data = pending.result()
            pending = pool.submit(fetch, todo[index + 1][0]) if index + 1 < len(todo) else None
            yield item, data
