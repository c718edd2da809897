"""Loading: read, stage, check and write every file a run loads, a batch of pieces at a time.

Files are read in pieces of whole lines (memory follows the piece, not the file); pieces of
files of one source and layout are staged together into batches; each batch is handed to the
engine, which writes it while the next one is read and staged. A file that fails, perhaps after
some of its pieces were written, leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import polars as pl
import shapely

from etl.config.spec import Config, Limits, Source
from etl.engine.base import Engine, FileRecord, KeyLookup, StagingWork
from etl.names import LINE
from etl.readers import READERS
from etl.readers.geojson import read_boundary
from etl.run.crashpoints import crash_point
from etl.run.ledger import FileOutcome
from etl.run.reporter import Reporter
from etl.sources.fetch import Piece, Span, read_pieces, read_span, spans
from etl.sources.files import FileRef, SourceError
from etl.stage.batch import (
    DUPLICATE_OF,
    ControlTotalError,
    FileCounts,
    FileRead,
    FileReader,
    KeysElsewhere,
    RowChecker,
    empty_staging_frame,
    stage_files,
)

# A count the warehouse stores as BIGINT; a trailer may declare more (`TOTAL ROWS: 9999...`).
BIGINT_MAX = 2**63 - 1

COUNTS = ("rows_read", "rows_staged", "rows_flagged", "rows_quarantined", "blank_lines")


@dataclass(frozen=True)
class LoadSizes:
    """How much is read and staged at a time.

    `piece_bytes`: files are read and parsed in pieces of whole lines of about this many bytes,
    so that memory follows the piece, not the file (a 5 M-row DFHV month is 50 MB of text).
    `batch_rows`: pieces of files of one source and layout are staged together up to this many
    rows: enough to spread the fixed cost of each step over a year of small daily files, small
    enough to bound memory. The last batch of a run is written with nothing left to overlap
    it, so a smaller one ends the load sooner: 250,000 (a DFHV month at 5 M rows) beat 500,000
    in three interleaved rounds at 5 M rows, by 0.3-1.0 s.
    """

    piece_bytes: int = 64 << 20
    batch_rows: int = 250_000


@dataclass(frozen=True)
class LoadJob:
    """What loading needs to know of the run."""

    run_id: str
    config: Config
    checkers: dict[str, RowChecker]
    boundary: shapely.Geometry | None  # the stored one; a boundary file loaded replaces it
    full_refresh: bool
    sizes: LoadSizes = LoadSizes()


@dataclass(frozen=True)
class Loaded:
    """Every file's outcome, in the order they ended, and the new boundary rows by source
    (stored by the publish, not before)."""

    outcomes: tuple[FileOutcome, ...]
    boundaries: dict[str, pl.DataFrame]


@dataclass
class _File:
    """A file being read: what its pieces so far added up to."""

    ref: FileRef
    reader: FileReader
    sha256: str | None = None
    layout: str | None = None
    control_total: int | None = None
    counts: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    failed: bool = False

    def add(self, read: FileRead, counts: FileCounts, reasons: dict) -> None:
        """A batch staged some of the file's pieces: its counts must reconcile."""
        if counts.rows_staged + counts.rows_quarantined != counts.rows_read:
            raise RuntimeError(
                f"{self.ref.path}: {counts.rows_read} rows read but {counts.rows_staged} "
                f"staged + {counts.rows_quarantined} quarantined"
            )
        self.layout = read.layout.name if read.layout else None
        self.counts.update({name: getattr(counts, name) for name in COUNTS})
        if counts.trailer_found:
            self.control_total = counts.control_total
        self.reasons.update(reasons)

    def outcome(self, error: SourceError | None = None) -> FileOutcome:
        """The file's outcome: loaded, or failed with none of its rows kept."""
        ref, counts, control_total = self.ref, self.counts, self.control_total
        status, reason = ("loaded", None) if error is None else ("failed", str(error))
        if error is not None:
            counts, control_total = Counter(), None
            if isinstance(error, ControlTotalError):
                counts = Counter(rows_read=error.rows_read)
                # A count beyond what a BIGINT holds is in the reason only.
                if error.control_total is not None and error.control_total <= BIGINT_MAX:
                    control_total = error.control_total
        return FileOutcome(
            ref.source, ref.path, status, reason, self.layout, ref.size_bytes, ref.mtime_ns,
            self.sha256, ref.fingerprint, **{name: counts[name] for name in COUNTS},
            control_total=control_total, reasons=Counter() if error else self.reasons,
        )  # fmt: skip


def load(
    engine: Engine, todo: tuple[tuple[FileRef, Source], ...], job: LoadJob, reporter: Reporter
) -> Loaded:
    """Read, stage and write every file to load."""
    loader = _Loader(engine, job, reporter, [ref.path for ref, _ in todo])
    boundaries = tuple(item for item in todo if item[1].entity == "boundary")
    trips = tuple(item for item in todo if item[1].entity != "boundary")
    with engine.loading():
        loader.load(boundaries)  # first: this run's trips are tested against a new boundary
        staged = engine.stage_files(_staging_work(job, trips, loader.boundary)) if trips else []
        if staged is None:
            loader.load(trips)
        for record, reasons in staged or ():
            outcome = FileOutcome(**vars(record), reasons=Counter(reasons))
            loader.outcomes.append(outcome)
            reporter.advance(outcome.path)
            _log_outcome(reporter, outcome)
    crash_point("loaded")
    return Loaded(tuple(loader.outcomes), loader.boundaries)


def _staging_work(
    job: LoadJob, trips: tuple[tuple[FileRef, Source], ...], boundary: shapely.Geometry | None
) -> StagingWork:
    """The trip files for an engine that stages them as its own tasks (`Engine.stage_files`)."""
    names = {ref.source for ref, _ in trips}
    sources = {name: job.config.sources[name] for name in names}
    return StagingWork(
        job.run_id,
        files=trips,
        sources=[ref.source for ref, _ in trips],
        paths=[ref.path for ref, _ in trips],
        stage_file=FileStager(job.run_id, job.checkers, boundary, job.config.limits, job.sizes),
        empty={name: empty_staging_frame(source) for name, source in sources.items()},
        keys={name: (s.key, s.key_scope or "()") for name, s in sources.items() if s.key},
        full_refresh=job.full_refresh,
    )


@dataclass(frozen=True)
class FileStager:
    """Stages one whole file, a piece at a time, as `_Loader` stages a batch: the same reader,
    mapping and row checks, for an engine that runs it in a task of its own; or one span of
    whole lines of a large file (`units`), whose records `assemble` adds up. A key another
    file holds is not looked up here (the task sees only its file): the engine does, over the
    `keys` each task gives back (every row's `_line`, key fields and raw values)."""

    run_id: str
    checkers: dict[str, RowChecker]
    boundary: shapely.Geometry | None
    limits: Limits
    sizes: LoadSizes

    def units(self, item: tuple[FileRef, Source], size: int) -> list[tuple]:
        """What `item` is staged as: itself, or each span of a plain text file larger than
        `size`. A file whose trailer declares its row count is staged whole: the count is of
        all its rows."""
        ref, source = item
        if not READERS[source.format].by_lines or source.trailer is not None:
            return [item]
        found = spans(ref, size, self.limits)
        return [item] if found is None else [(ref, source, span) for span in found]

    def assemble(
        self, parts: list[tuple[FileRecord, dict[str, int]]]
    ) -> tuple[FileRecord, dict[str, int]]:
        """A file's record and rows per reason from its units', in order: the first that
        failed fails it (the engine drops its rows), else their counts add up."""
        failed = [part for part in parts if part[0].status == "failed"]
        if failed or len(parts) == 1:
            return (failed or parts)[0]
        counts = {name: sum(getattr(record, name) for record, _ in parts) for name in COUNTS}
        reasons = sum((Counter(found) for _, found in parts), Counter())
        return dataclasses.replace(parts[-1][0], **counts), dict(reasons)

    def __call__(
        self, item: tuple, marks: pl.DataFrame | None = None
    ) -> tuple[pl.DataFrame, pl.DataFrame, FileOutcome, pl.DataFrame]:
        """The file's (or span's) staged rows, quarantined rows, outcome and keys."""
        ref, source, *span = item
        file = _File(ref, FileReader(ref, source))
        staged, quarantined, keys, seen_keys = [], [], [], None
        try:
            for piece in self._pieces(file, span[0] if span else None):
                file.sha256 = piece.sha256 or file.sha256
                read = file.reader.read(piece.data, piece.last)
                if read is None:
                    continue
                lookup = _KeyMarks(read, marks) if source.key else None
                batch = stage_files(
                    [read], source, self.run_id, self.checkers[ref.source], self.boundary,
                    seen_keys, lookup,
                )  # fmt: skip
                seen_keys = batch.seen_keys
                staged.append(batch.staged)
                quarantined.append(batch.quarantine)
                keys.extend(lookup.held(batch.staged) if lookup else [])
                file.add(read, batch.counts[ref.path], batch.reason_counts.get(ref.path, {}))
        except SourceError as exc:
            outcome = file.outcome(file.reader.locate(exc))
            return pl.DataFrame(), pl.DataFrame(), outcome, pl.DataFrame()
        frames = [pl.concat(f, how="diagonal_relaxed") if f else pl.DataFrame()
                  for f in (staged, quarantined, keys)]  # fmt: skip
        return frames[0], frames[1], file.outcome(), frames[2]

    def _pieces(self, file: _File, span: Span | None) -> Iterator[Piece]:
        ref = file.ref
        if span is None:
            by_lines = READERS[file.reader.source.format].by_lines
            yield from read_pieces(ref, self.sizes.piece_bytes, self.limits, by_lines)
            return
        if span.index:
            # A line reader keeps from a file's first piece what its first line says (a
            # header): given that line, it reads a later span as it would the piece.
            file.reader.parser.parse(span.head, False, 1)
            file.reader.next_line = span.first_line
        yield read_span(ref, span, self.limits)


class _KeyMarks:
    """The key lookup of a piece staged in a task: the task sees only its file, so it finds
    the rows the engine marked (`marks`: `_line`, `duplicate_of`) and keeps every row's key
    for the engine to look up (`held`). A piece's rows keep their order through the mapping:
    `_pos` is a row's place in the piece."""

    def __init__(self, read: FileRead, marks: pl.DataFrame | None) -> None:
        self.lines = read.raw.frame.select(LINE).with_row_index("_pos")
        self.marks = marks
        self.keys = pl.DataFrame()

    def __call__(self, batch_keys: pl.DataFrame) -> pl.DataFrame:
        if batch_keys.height != self.lines.height:
            raise RuntimeError("a piece's rows changed in number while staged")
        self.keys = batch_keys.join(self.lines, on="_pos")
        found = self.keys.select("_pos", LINE)
        if self.marks is None:
            return found.clear().select("_pos", pl.lit(None, pl.Utf8).alias(DUPLICATE_OF))
        return found.join(self.marks, on=LINE).select("_pos", DUPLICATE_OF)

    def held(self, staged: pl.DataFrame) -> list[pl.DataFrame]:
        """Every row's `_file`, `_line` and key fields, and whether it was staged (`_held`)."""
        if not self.keys.height:
            return []
        held = pl.col(LINE).is_in(staged[LINE].implode())
        return [self.keys.drop("_pos").with_columns(held.alias("_held"))]


def _log_outcome(reporter: Reporter, outcome: FileOutcome) -> None:
    if outcome.status == "failed":
        reporter.log(f"{outcome.path}: FAILED: {outcome.reason}")
    else:
        reporter.log(
            f"{outcome.path}: {outcome.rows_read} read, {outcome.rows_staged} staged, "
            f"{outcome.rows_quarantined} quarantined"
        )


class _Loader:
    """The state a load carries from batch to batch: the boundary trips are tested against,
    the keys of a file staged in pieces so far, and the batch perhaps not yet written."""

    def __init__(self, engine: Engine, job: LoadJob, reporter: Reporter, reloading: list[str]):
        self.engine, self.job, self.reporter = engine, job, reporter
        self.boundary = job.boundary
        self.boundaries: dict[str, pl.DataFrame] = {}
        self.outcomes: list[FileOutcome] = []
        self.reloading = reloading  # the files this run loads (again)
        self.seen_keys: pl.DataFrame | None = None  # of a file staged in pieces, so far
        # The source and key fields of the batch being written: perhaps not yet committed.
        self.in_flight: tuple[str, pl.DataFrame] | None = None

    def load(self, todo: tuple[tuple[FileRef, Source], ...]) -> None:
        pending: list[tuple[FileRead, _File]] = []
        file: _File | None = None
        sizes = self.job.sizes
        for ref, source, piece in _prefetch(todo, self.job.config.limits, sizes.piece_bytes):
            if file is None or file.ref is not ref:
                file = _File(ref, FileReader(ref, source))
            if file.failed:
                continue  # the rest of a file that failed
            last = isinstance(piece, Piece) and piece.last
            try:
                read = self._read_piece(file, piece)
            except SourceError as exc:
                pending = self._abandon(file, exc, pending)
                self.reporter.advance(ref.path)
                continue
            finally:
                del piece  # parsed now, and large
            if last:
                self.reporter.advance(ref.path)
            if read is None:
                continue
            if pending and not _same_batch(pending, read, sizes.batch_rows):
                self._stage(pending)
                pending = []
            pending.append((read, file))
        if pending:
            self._stage(pending)

    def _read_piece(self, file: _File, piece: Piece | SourceError) -> FileRead | None:
        """Parse a file's next piece; a boundary is kept once read. None: nothing to stage.
        Raises SourceError."""
        if isinstance(piece, SourceError):
            raise file.reader.locate(piece)
        if piece.last:
            file.sha256 = piece.sha256
        if file.reader.source.entity != "boundary":
            return file.reader.read(piece.data, piece.last)
        if piece.last:
            # This run's trips are tested against the new boundary; the publish stores it.
            ref = file.ref
            self.boundary, self.boundaries[ref.source] = read_boundary(ref, self.job.run_id)
            file.counts.update(rows_read=1, rows_staged=1)
            self.outcomes.append(file.outcome())
            crash_point("boundary_read")
        return None

    def _stage(self, pending: list[tuple[FileRead, _File]]) -> None:
        """Stage, check and write a batch of files; every file's counts must reconcile."""
        reads = [read for read, _ in pending]
        name = reads[0].ref.source
        source = self.job.config.sources[name]
        batch = stage_files(
            reads, source, self.job.run_id, self.job.checkers[name], self.boundary,
            self.seen_keys, self._keys_elsewhere(name),
        )  # fmt: skip
        self.seen_keys = batch.seen_keys
        self.engine.stage_batch(name, batch.staged, batch.quarantine)
        keys = [k for k in source.key if k in batch.staged.columns]
        self.in_flight = (name, batch.staged.select("_file", *keys)) if keys else None
        crash_point("staged")
        # A large file comes in pieces over several batches: its outcome adds up their counts.
        last_piece = {read.ref.path: (read, file) for read, file in pending}
        for path, (read, file) in last_piece.items():
            file.add(read, batch.counts[path], batch.reason_counts.get(path, {}))
            if read.last:
                outcome = file.outcome()
                self.outcomes.append(outcome)
                self.reporter.log(
                    f"{path}: {outcome.rows_read} read, {outcome.rows_staged} staged, "
                    f"{outcome.rows_quarantined} quarantined"
                )

    def _keys_elsewhere(self, name: str) -> KeysElsewhere | None:
        """How a batch of the source finds the keys another of its files holds; None for a
        source without a key."""
        source = self.job.config.sources[name]
        if source.entity != "trip" or not source.key:
            return None

        def lookup(batch_keys: pl.DataFrame) -> pl.DataFrame:
            in_flight = batch_keys.drop("_pos").clear()
            if self.in_flight is not None and self.in_flight[0] == name:
                in_flight = self.in_flight[1]
            return self.engine.keys_elsewhere(
                KeyLookup(name, batch_keys, in_flight, self.reloading, self.job.run_id,
                          self.job.full_refresh, source.key_scope or "()")
            )  # fmt: skip

        return lookup

    def _abandon(
        self, file: _File, error: SourceError, pending: list[tuple[FileRead, _File]]
    ) -> list[tuple[FileRead, _File]]:
        """A file failed, perhaps after some of its pieces were staged: none of it stays. The
        batch being gathered, without the file's pieces, is returned."""
        if file.counts["rows_read"]:
            self.engine.discard_file(self.job.run_id, file.ref.source, file.ref.path)
            self.seen_keys = None  # they were this file's: only one file is read at a time
            self.in_flight = None  # written now, and this file's rows deleted
        file.failed = True
        # Its current version stays: the keys that version holds are not another file's to take.
        self.reloading = [path for path in self.reloading if path != file.ref.path]
        outcome = file.outcome(error)
        self.outcomes.append(outcome)
        self.reporter.log(f"{outcome.path}: FAILED: {outcome.reason}")
        return [(read, f) for read, f in pending if f is not file]


def _same_batch(pending: list[tuple[FileRead, _File]], read: FileRead, batch_rows: int) -> bool:
    """Whether a piece joins the batch being gathered: same source and layout, room left."""
    first = pending[0][0]
    rows = sum(r.raw.frame.height for r, _ in pending) + read.raw.frame.height
    return (
        first.ref.source == read.ref.source and first.layout == read.layout and rows <= batch_rows
    )


def _prefetch(
    todo: tuple[tuple[FileRef, Source], ...], limits: Limits, piece_bytes: int
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
                for piece in read_pieces(ref, piece_bytes, limits, lines):
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
