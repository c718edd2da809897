"""The nightly load, `etl run`: write, audit, publish.

The order of work (docs/architecture.md, "The data flow of `etl run`"):

1. **write**: discover each source's files and skip those the manifest already holds; read,
   stage and row-check each new or changed file into `staging.<source>` tagged with this run's
   id, its rejected rows into `quality.quarantine`;
2. **audit**: run each source's batch suite on this run's rows;
3. **publish**: if no `error` check failed, then in one transaction retire the rows of
   replaced files, record the manifest, match the silos and rebuild the curated layer.

If an audit fails, this run's rows leave staging again, the files are recorded as
`audit_failed` and the published tables stay as they were. If the process dies midway, the next
run finds the rows of a run that never published and removes them.

The run ledger (`quality.runs`) cannot say what did not happen: a run's `published` flag, its
final status and its files are written in the transaction that publishes it, so a run is
published exactly when that transaction committed, whatever happens after. Recovery touches only
runs that never published. The DC boundary, too, is replaced inside that transaction.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import shapely

from etl.config.load import ConfigError, load_config
from etl.config.spec import Config, Limits, Source
from etl.engine.duckdb import sql_models as models
from etl.engine.duckdb import warehouse
from etl.engine.duckdb.build import ReconciliationError, build_curated
from etl.paths import WAREHOUSE_DIR, project_models
from etl.quality.audit import SourceCheck, audit_run, preload_great_expectations
from etl.quality.batch import load_suite
from etl.quality.rowspec import RowSpecError, load_row_spec
from etl.readers import READERS, formats
from etl.readers.geojson import read_boundary, stored_boundary
from etl.run.crashpoints import crash_point
from etl.run.reporter import Reporter, SilentReporter
from etl.sources.fetch import Piece, read_pieces
from etl.sources.files import Broken, FileRef, Known, SourceError, discover
from etl.stage.batch import (
    ControlTotalError,
    FileRead,
    FileReader,
    KeysElsewhere,
    RowChecker,
    StagedBatch,
    empty_staging_frame,
    reject_unparseable,
    stage_files,
)

EXIT_OK, EXIT_AUDIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

# A count the warehouse stores as BIGINT; a trailer may declare more (`TOTAL ROWS: 9999...`).
BIGINT_MAX = 2**63 - 1

# Pieces of files of one source and layout are staged together up to this many rows: enough to
# spread the fixed cost of each step over a year of small daily files, small enough to bound
# memory. The last batch of a run is written with nothing left to overlap it, so a smaller one
# ends the load sooner: 250,000 (a DFHV month at 5 M rows) beat 500,000 in three interleaved
# rounds at 5 M rows, by 0.3-1.0 s.
BATCH_ROWS = 250_000

# Files are read and parsed in pieces of whole lines of about this many bytes, so that memory
# follows the piece, not the file (a 5 M-row DFHV month is 50 MB of text, a 20 M-row one 200 MB).
PIECE_BYTES = 64 << 20

# DuckDB's buffer pool while files load: appending needs little, and what it caches nobody reads
# until the audits (at 20 M rows the pool otherwise grew to its cap, +0.6 GB of peak memory).
LOAD_MEMORY = "256MB"

KEYS_ELSEWHERE_SQL = WAREHOUSE_DIR / "audit" / "keys_staged_elsewhere.sql"


@dataclass
class FileOutcome:
    """What a run did with one file."""

    source: str
    path: str
    status: str  # loaded, failed, audit_failed
    reason: str | None = None
    layout: str | None = None
    size_bytes: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    fingerprint: str | None = None
    rows_read: int = 0
    rows_staged: int = 0
    rows_flagged: int = 0
    rows_quarantined: int = 0
    blank_lines: int = 0
    control_total: int | None = None
    reasons: Counter = field(default_factory=Counter)  # rows per reason and flag


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
    checks: list[SourceCheck] = field(default_factory=list)

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
    config = load_config(config_path, formats())
    checkers = _row_checkers(config, config_path.parent)
    _check_suites(config, config_path.parent)
    if not data_root.is_dir():
        raise SourceError(f"{data_root}: data root is not a directory")
    con = warehouse.connect(warehouse_path)
    try:
        state = _Run(con, config, config_path, data_root, checkers, reporter or SilentReporter())
        try:
            return state.execute(full_refresh)
        except Exception as exc:
            # Recorded for `etl status`; the next run removes what this one left in staging,
            # unless it published (then the error came after its commit, and it stays so).
            bad_input = isinstance(exc, (ConfigError, SourceError, warehouse.WarehouseError))
            con.execute(
                "UPDATE quality.runs SET status = 'error', exit_code = ?, finished_at = now(), "
                "message = CASE WHEN published THEN 'published, then ' ELSE '' END || ? "
                "WHERE run_id = ?",
                [
                    EXIT_BAD_INPUT if bad_input else EXIT_INTERNAL,
                    f"{type(exc).__name__}: {exc}",
                    state.run_id,
                ],
            )
            raise
    finally:
        con.close()


def _row_checkers(config: Config, config_dir: Path) -> dict[str, RowChecker]:
    """Each source's row checks, loaded before anything runs: a bad spec is a config error."""
    checkers: dict[str, RowChecker] = {}
    for name, source in config.sources.items():
        if source.row_checks is None:
            checkers[name] = reject_unparseable
            continue
        try:
            spec = load_row_spec(config_dir / source.row_checks)
        except (RowSpecError, OSError) as exc:
            raise ConfigError(f"sources.{name}.row_checks: {exc}") from None

        def checker(frame, spec=spec):
            from etl.quality.rows import check_rows  # pandera: imported only when rows come

            result = check_rows(frame, spec)
            return result.staged, result.rejected

        checkers[name] = checker
    return checkers


def _check_suites(config: Config, config_dir: Path) -> None:
    """Each source's suite parsed before anything runs, not after loading: a config error."""
    for name, source in config.sources.items():
        if source.suite is not None:
            try:
                load_suite(config_dir / source.suite)
            except ValueError as exc:
                raise ConfigError(f"sources.{name}.suite: {exc}") from None


class _Run:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        config: Config,
        config_path: Path,
        data_root: Path,
        checkers: dict[str, RowChecker],
        reporter: Reporter,
    ) -> None:
        self.con = con
        self.config = config
        self.config_path = config_path
        self.data_root = data_root
        self.checkers = checkers
        self.reporter = reporter
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.outcomes: list[FileOutcome] = []
        self.checks: list[SourceCheck] = []
        self.skipped = 0
        models_dir, _ = project_models(config_path.parent)
        self.models = models.discover(models_dir, config)  # its intermediate views: generated
        self.models_sha = models.fingerprint(self.models)
        self.boundary: shapely.Geometry | None = None
        self.seen_keys: pl.DataFrame | None = None  # of a file staged in pieces, so far
        # New boundary rows by source: stored by the publish transaction, not before.
        self.boundary_rows: dict[str, pl.DataFrame] = {}
        self.full_refresh = False
        self.reloading: list[str] = []  # the files this run loads (again)
        # The source and key fields of the batch being written: perhaps not yet committed.
        self.in_flight: tuple[str, pl.DataFrame] | None = None
        self.writer = _Writer(con)

    def execute(self, full_refresh: bool) -> RunResult:
        self.full_refresh = full_refresh
        self._recover()
        crash_point("recovered")
        self._ensure_staging_tables()
        self.boundary = self._stored_boundary()
        self.con.execute(
            "INSERT INTO quality.runs (run_id, started_at, status, config_path, data_root) "
            "VALUES (?, now(), 'running', ?, ?)",
            [self.run_id, str(self.config_path), str(self.data_root)],
        )
        crash_point("started")
        todo = self._plan(full_refresh)
        self.reloading = [ref.path for ref, _ in todo]
        crash_point("planned")
        if todo:
            preload_great_expectations(self.config)
        self.reporter.start(len(todo))
        with warehouse.memory_limit(self.con, LOAD_MEMORY):
            self._load(todo)
        crash_point("loaded")
        loaded = [o for o in self.outcomes if o.status == "loaded"]

        files_per_source = Counter(o.source for o in loaded)
        self.reporter.stage("batch checks")
        self.checks = audit_run(
            self.con, self.config, self.config_path.parent, self.run_id, files_per_source
        )
        crash_point("audited")
        if any(check.blocks_publish for check in self.checks):
            blocking = sum(check.blocks_publish for check in self.checks)
            return self._not_published(loaded, f"{blocking} error check(s) failed")
        return self._publish(loaded, full_refresh)

    # -- before loading -----------------------------------------------------------------------

    def _recover(self) -> None:
        """Undo what a run that died left behind: its rows in staging were never published.

        A run that published keeps everything, whatever its status says: its publish committed.
        """
        self.con.execute(
            "UPDATE quality.runs SET status = 'crashed' WHERE status = 'running' AND NOT published"
        )
        self.con.execute(
            "DELETE FROM quality.quarantine WHERE run_id IN (SELECT run_id FROM quality.runs "
            "WHERE status IN ('crashed', 'error') AND NOT published)"
        )
        for name in self.config.sources:
            table = f"staging.{name}"
            if warehouse.table_exists(self.con, table):
                self.con.execute(
                    f"DELETE FROM {table} WHERE _run_id NOT IN "
                    "(SELECT run_id FROM quality.runs WHERE published)"
                )

    def _ensure_staging_tables(self) -> None:
        """Every trip source has its staging table, even before it has files: its generated
        intermediate view reads it."""
        for name, source in self.config.sources.items():
            if source.entity == "trip":
                # A text key is unique: stored as it is (see `-- uncompressed:` in the models).
                columns = source.columns_for(None)
                text_keys = [k for k in source.key if k in columns and columns[k].type == "string"]
                warehouse.append(
                    self.con, f"staging.{name}", empty_staging_frame(source), text_keys
                )

    def _stored_boundary(self) -> shapely.Geometry | None:
        for name, source in self.config.sources.items():
            if source.entity == "boundary":
                return stored_boundary(self.con, f"staging.{name}")
        return None

    def _plan(self, full_refresh: bool) -> list[tuple[FileRef, Source]]:
        """The files to load this run: new or changed ones (all, on a full refresh).

        Boundaries come first: the trips of this run are tested against the newest one.
        """
        manifest = self.con.execute(
            "SELECT path, size_bytes, mtime_ns, fingerprint FROM quality.manifest"
        ).fetchall()
        known = {path: Known(*rest) for path, *rest in manifest}
        todo, touched = [], []
        for name, source in self.config.sources.items():
            for found in discover(name, source, self.data_root, known, self.config.limits):
                if isinstance(found, Broken):
                    self._fail(FileOutcome(name, found.path, "failed", found.reason))
                    continue
                previous = known.get(found.path)
                if full_refresh or previous is None or previous.fingerprint != found.fingerprint:
                    todo.append((found, source))
                    continue
                self.skipped += 1
                if found.mtime_ns != previous.mtime_ns:
                    touched.append((found.path, found.mtime_ns))
        if touched:
            # The same content under a new mtime (or one never recorded): remember it, or the
            # file would be hashed again on every run.
            schema = {"path": pl.Utf8, "mtime_ns": pl.Int64}
            frame = pl.DataFrame(touched, schema=schema, orient="row")
            with warehouse.registered(self.con, "_touched", frame):
                self.con.execute(
                    "UPDATE quality.files AS f SET mtime_ns = t.mtime_ns "
                    "FROM _touched AS t, quality.manifest AS m "
                    "WHERE f.path = t.path AND m.path = t.path AND f.status = 'loaded' "
                    "AND f.recorded_at = m.recorded_at"
                )
        return sorted(todo, key=lambda item: item[1].entity != "boundary")

    # -- write ----------------------------------------------------------------------------------

    def _load(self, todo: list[tuple[FileRef, Source]]) -> None:
        """Read, stage and write every file to load, a batch of pieces at a time."""
        pending: list[tuple[FileRead, FileOutcome]] = []
        reader: FileReader | None = None
        for ref, source, piece in _prefetch(todo, self.config.limits):
            if reader is None or reader.ref is not ref:
                reader = FileReader(ref, source)
                outcome = FileOutcome(
                    ref.source, ref.path, "loaded", size_bytes=ref.size_bytes,
                    mtime_ns=ref.mtime_ns, fingerprint=ref.fingerprint,
                )  # fmt: skip
            if outcome.status == "failed":
                continue  # the rest of a file that failed
            read = self._read_piece(reader, outcome, piece, pending)
            del piece  # parsed now, and large
            if read is None:
                continue
            if pending and not _same_batch(pending, read):
                self._stage(pending)
                pending = []
            pending.append((read, outcome))
        if pending:
            self._stage(pending)
        self.writer.close()

    def _read_piece(
        self,
        reader: FileReader,
        outcome: FileOutcome,
        piece: Piece | SourceError,
        pending: list[tuple[FileRead, FileOutcome]],
    ) -> FileRead | None:
        """Parse a file's next piece; a boundary is stored once read. None: nothing to stage."""
        read = None
        try:
            if isinstance(piece, SourceError):
                raise reader.locate(piece)
            if piece.last:
                outcome.sha256 = piece.sha256
            if reader.source.entity == "boundary":
                if piece.last:
                    self._store_boundary(reader.ref, outcome)
            else:
                read = reader.read(piece.data, piece.last)
        except SourceError as exc:
            self._abandon(outcome, exc, pending)
            self.reporter.advance(reader.ref.path)
            return None
        if piece.last:
            self.reporter.advance(reader.ref.path)
        return read

    def _store_boundary(self, ref: FileRef, outcome: FileOutcome) -> None:
        """This run's trips are tested against the new boundary; the publish stores it."""
        self.boundary, self.boundary_rows[ref.source] = read_boundary(ref, self.run_id)
        outcome.rows_read = outcome.rows_staged = 1
        self.outcomes.append(outcome)
        crash_point("boundary_read")

    def _stage(self, pending: list[tuple[FileRead, FileOutcome]]) -> None:
        """Stage, check and write a batch of files; every file's counts must reconcile."""
        reads = [read for read, _ in pending]
        name = reads[0].ref.source
        batch: StagedBatch = stage_files(
            reads,
            self.config.sources[name],
            self.run_id,
            self.checkers[name],
            self.boundary,
            self.seen_keys,
            self._keys_elsewhere(name),
        )
        self.seen_keys = batch.seen_keys
        writes = [(f"staging.{name}", batch.staged), ("quality.quarantine", batch.quarantine)]
        self.writer.submit([(table, frame) for table, frame in writes if frame.height])
        keys = [k for k in self.config.sources[name].key if k in batch.staged.columns]
        self.in_flight = (name, batch.staged.select("_file", *keys)) if keys else None
        crash_point("staged")
        # A large file comes in pieces over several batches: its outcome adds up their counts.
        last_piece = {read.ref.path: (read, outcome) for read, outcome in pending}
        for path, (read, outcome) in last_piece.items():
            counts = batch.counts[path]
            if counts.rows_staged + counts.rows_quarantined != counts.rows_read:
                raise RuntimeError(
                    f"{path}: {counts.rows_read} rows read but {counts.rows_staged} "
                    f"staged + {counts.rows_quarantined} quarantined"
                )
            outcome.layout = read.layout.name if read.layout else None
            outcome.rows_read += counts.rows_read
            outcome.rows_staged += counts.rows_staged
            outcome.rows_flagged += counts.rows_flagged
            outcome.rows_quarantined += counts.rows_quarantined
            outcome.blank_lines += counts.blank_lines
            if counts.trailer_found:
                outcome.control_total = counts.control_total
            outcome.reasons.update(batch.reason_counts.get(path, {}))
            if read.last:
                self.outcomes.append(outcome)
                self.reporter.log(
                    f"{path}: {outcome.rows_read} read, {outcome.rows_staged} staged, "
                    f"{outcome.rows_quarantined} quarantined"
                )

    def _keys_elsewhere(self, name: str) -> KeysElsewhere | None:
        """How a batch of the source finds the keys another of its files holds (SQL on the
        staged rows, `keys_staged_elsewhere.sql`); None for a source without a key."""
        source = self.config.sources[name]
        if source.entity != "trip" or not source.key:
            return None

        def lookup(batch_keys: pl.DataFrame) -> pl.DataFrame:
            keys = [f'"{k}"' for k in batch_keys.columns if k not in ("_pos", "_file")]
            sql = KEYS_ELSEWHERE_SQL.read_text().format(
                source=name,
                keys=", ".join(keys),
                key_match=" AND ".join(f"o.{k} = b.{k}" for k in keys),
            )
            in_flight = batch_keys.drop("_pos").clear()
            if self.in_flight is not None and self.in_flight[0] == name:
                in_flight = self.in_flight[1]
            reloaded = pl.DataFrame({"path": self.reloading}, schema={"path": pl.Utf8})
            params = {"run_id": self.run_id, "full_refresh": self.full_refresh,
                      "scope": source.key_scope or "()"}  # fmt: skip
            with (
                warehouse.registered(self.con, "_batch_keys", batch_keys),
                warehouse.registered(self.con, "_in_flight", in_flight),
                warehouse.registered(self.con, "_reloaded", reloaded),
            ):
                return self.con.sql(sql, params=params).pl()

        return lookup

    def _abandon(
        self, outcome: FileOutcome, error: SourceError, pending: list[tuple[FileRead, FileOutcome]]
    ) -> None:
        """A file failed, perhaps after some of its pieces were staged: none of it stays."""
        pending[:] = [(read, o) for read, o in pending if o is not outcome]
        if outcome.rows_read:
            self.writer.flush()
            self.con.execute(
                f"DELETE FROM staging.{outcome.source} WHERE _run_id = ? AND _file = ?",
                [self.run_id, outcome.path],
            )
            self.con.execute(
                "DELETE FROM quality.quarantine WHERE run_id = ? AND file = ?",
                [self.run_id, outcome.path],
            )
            self.seen_keys = None  # they were this file's: only one file is read at a time
            self.in_flight = None  # written now, and this file's rows deleted
        outcome.rows_read = outcome.rows_staged = outcome.rows_flagged = 0
        outcome.rows_quarantined = outcome.blank_lines = 0
        outcome.reasons.clear()
        outcome.status, outcome.reason = "failed", str(error)
        # Its current version stays: the keys that version holds are not another file's to take.
        self.reloading = [path for path in self.reloading if path != outcome.path]
        if isinstance(error, ControlTotalError):
            outcome.rows_read = error.rows_read
            # A count beyond what a BIGINT holds is in the reason only.
            if error.control_total is not None and error.control_total <= BIGINT_MAX:
                outcome.control_total = error.control_total
        self._fail(outcome)

    def _fail(self, outcome: FileOutcome) -> None:
        self.outcomes.append(outcome)
        self.reporter.log(f"{outcome.path}: FAILED: {outcome.reason}")

    # -- not published ------------------------------------------------------------------------

    def _not_published(
        self, loaded: list[FileOutcome], why: str, totals: pl.DataFrame | None = None
    ) -> RunResult:
        """An error check failed or the control totals did not reconcile: in one transaction,
        this run's rows leave staging and the run is recorded with its files (and `totals`)."""
        with warehouse.transaction(self.con):
            self._withdraw(loaded)
            if totals is not None:
                warehouse.append(self.con, "quality.control_totals", totals)
            result = self._finish(f"{why}: nothing published")
            crash_point("withdrawn")
        return result

    def _withdraw(self, loaded: list[FileOutcome]) -> None:
        """An error check failed: this run's rows leave staging; nothing published changes."""
        for name in self.config.sources:
            if warehouse.table_exists(self.con, f"staging.{name}"):
                self.con.execute(f"DELETE FROM staging.{name} WHERE _run_id = ?", [self.run_id])
        for outcome in loaded:
            outcome.status, outcome.reason = "audit_failed", "the run failed its audit"
        failed = [c for c in self.checks if c.blocks_publish]
        for check in failed:
            self.reporter.log(
                f"{check.source}: FAILED {check.result.expectation} "
                f"(observed {check.result.observed_value})"
            )

    # -- publish ------------------------------------------------------------------------------

    def _publish(self, loaded: list[FileOutcome], full_refresh: bool) -> RunResult:
        """Retire replaced rows, store a new boundary, record the manifest, rebuild the curated
        layer and record the run as published, all in one transaction: the run is published
        exactly when it commits."""
        try:
            with warehouse.transaction(self.con):
                crash_point("publish_begun")
                self._retire_replaced(loaded, full_refresh)
                crash_point("retired")
                self._store_boundaries()
                self._record_files(loaded)
                rebuild = full_refresh or self._models_changed()
                if loaded or rebuild:
                    changed = None if rebuild else [(o.source, o.path) for o in loaded]
                    summary = build_curated(
                        self.con,
                        self.config,
                        self.run_id,
                        self.models,
                        changed,
                        self.reporter.stage,
                    )
                    self.reporter.log(f"matched {summary.matches} trip(s) across silos")
                crash_point("built")
                self.con.execute(
                    "UPDATE quality.runs SET published = true, models_sha = ? WHERE run_id = ?",
                    [self.models_sha, self.run_id],
                )
                result = self._finish()
                crash_point("recorded")
        except ReconciliationError as exc:
            return self._not_published(loaded, str(exc), exc.totals)
        crash_point("published")
        return result

    def _store_boundaries(self) -> None:
        """A new boundary replaces the old one here, in the publish transaction: a crash or a
        failed audit leaves the old one, and the new file loads again on the next run."""
        for source, row in self.boundary_rows.items():
            table = f"staging.{source}"
            if warehouse.table_exists(self.con, table):
                self.con.execute(f"DELETE FROM {table}")
            warehouse.append(self.con, table, row)
        crash_point("boundary_stored")

    def _retire_replaced(self, loaded: list[FileOutcome], full_refresh: bool) -> None:
        """The rows of earlier versions of the files this run loaded (of every file, on a full
        refresh) leave staging and the quarantine: a file's staged and quarantined rows are
        those of its current version, and add up to the rows it has. Quarantined rows of a run
        that failed its audit go too once their file loads."""
        tables = [(f"staging.{name}", "_run_id", "_file") for name in self.config.sources]
        tables.append(("quality.quarantine", "run_id", "file"))
        for table, run, file in tables:
            if not warehouse.table_exists(self.con, table):
                continue
            if full_refresh:
                self.con.execute(f"DELETE FROM {table} WHERE {run} <> ?", [self.run_id])
            else:
                self.con.execute(
                    f"DELETE FROM {table} WHERE {run} <> ? AND {file} IN "
                    "(SELECT unnest(?::VARCHAR[]))",
                    [self.run_id, [o.path for o in loaded]],
                )

    def _models_changed(self) -> bool:
        """Whether the SQL models differ from those of the last published run."""
        last = self.con.execute(
            "SELECT models_sha FROM quality.runs WHERE published ORDER BY started_at DESC LIMIT 1"
        ).fetchall()
        return not last or last[0][0] != self.models_sha

    # -- record -------------------------------------------------------------------------------

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
                o.mtime_ns,
            )
            for o in outcomes
        ]
        if rows:
            self.con.executemany(
                "INSERT INTO quality.files (run_id, source, path, layout, size_bytes, sha256, "
                "fingerprint, rows_read, rows_staged, rows_flagged, rows_quarantined, "
                "blank_lines, control_total, status, reason, mtime_ns, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                rows,
            )

    def _finish(self, not_published: str | None = None) -> RunResult:
        unpublished = [o for o in self.outcomes if o.status != "loaded"]
        self._record_files(unpublished)
        failed = [o for o in self.outcomes if o.status == "failed"]
        published = not_published is None
        if not published:
            exit_code, status, message = EXIT_AUDIT_FAILED, "audit_failed", not_published
        elif failed:
            exit_code, status = EXIT_BAD_INPUT, "partial"
            message = f"{len(failed)} file(s) could not be read"
        else:
            exit_code, status, message = EXIT_OK, "published", "ok"
        result = RunResult(
            self.run_id, status, exit_code, self.outcomes, self.skipped, published, message,
            sum((o.reasons for o in self.outcomes), Counter()), self.checks,
        )  # fmt: skip
        loaded = sum(o.status == "loaded" for o in self.outcomes)
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
                loaded,
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


class _Writer:
    """Writes staged batches in a thread while the next batch is read and staged.

    DuckDB releases the GIL while it inserts, so writing overlaps with parsing on the second
    core. At most one batch is in flight (memory stays bounded), in order, and an error in a
    write is raised in the main thread at the next submit or at close.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.cursor = con.cursor()
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: Future | None = None

    def submit(self, writes: list[tuple[str, pl.DataFrame]]) -> None:
        self.flush()
        self.pending = self.pool.submit(self._write, writes)

    def close(self) -> None:
        self.flush()
        self.pool.shutdown()
        self.cursor.close()

    def flush(self) -> None:
        """Wait for the batch in flight to be written."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def _write(self, writes: list[tuple[str, pl.DataFrame]]) -> None:
        for table, frame in writes:
            warehouse.append(self.cursor, table, frame)


def _same_batch(pending: list[tuple[FileRead, FileOutcome]], read: FileRead) -> bool:
    """Whether a piece joins the batch being gathered: same source and layout, room left."""
    first = pending[0][0]
    rows = sum(r.raw.frame.height for r, _ in pending) + read.raw.frame.height
    return (
        first.ref.source == read.ref.source and first.layout == read.layout and rows <= BATCH_ROWS
    )


def _prefetch(
    todo: list[tuple[FileRef, Source]], limits: Limits
) -> Iterator[tuple[FileRef, Source, Piece | SourceError]]:
    """Every file's pieces in order, each file's last one carrying its sha256, or why it could
    not be read (which may come after some of its pieces).

    The next piece is inflated and hashed in a thread while the caller parses this one: both
    release the GIL, so they overlap with parsing on the second core. One piece is read ahead,
    no more, and the caller holds the only reference to the piece it is given.
    """

    def pieces() -> Iterator[tuple[FileRef, Source, Piece | SourceError]]:
        for ref, source in todo:
            try:
                lines = READERS[source.format].by_lines  # else read whole (GeoJSON, Parquet)
                for piece in read_pieces(ref, PIECE_BYTES, limits, lines):
                    yield ref, source, piece
                    del piece  # the caller's now, and large
            except SourceError as exc:
                yield ref, source, exc

    stream = pieces()
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(next, stream, None)
        while (item := ahead.result()) is not None:
            ahead = pool.submit(next, stream, None)
            yield item
            del item
