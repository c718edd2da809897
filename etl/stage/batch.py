"""Files from bytes to staged rows and quarantined rows, with counts per file.

Reading is per file, a piece at a time (`FileReader`: a large file is never parsed whole);
staging and checking work on a batch of pieces of files of one source and layout at once
(`stage_files`), because a year of small daily files would otherwise pay the fixed cost of
every step hundreds of times. In order:

1. parse with the source's reader (raw text, line numbers), tag rows with their `_file`;
2. map to canonical fields (`etl.stage.mapping`), derive a trip's duration from its timestamps
   when the source has no duration column, apply the source's repairs, mark repeated keys (in
   the file, and those another file of the source already holds: `KeysElsewhere`);
3. add `pickup_in_dc` / `dropoff_in_dc` from the DC boundary, when one is loaded;
4. run the source's row checks on the rows that are trips (`trips_where`); the others are
   staged with the flag `not_a_trip`;
5. keep, for every rejected row, its raw values and all of its reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import shapely

from etl.config.spec import Column, Layout, Source
from etl.names import DUPLICATE_KEY, FILE, FLAGS, LINE, NOT_A_TRIP, PARSE_ERRORS, REASONS
from etl.readers import READERS
from etl.readers.base import RawBatch
from etl.readers.jsonl import RAW_JSON
from etl.reference.boundary import add_in_dc_columns
from etl.sources.fetch import LineTooLong
from etl.sources.files import FileRef, SourceError
from etl.stage.mapping import check_types, require_columns, stage_frame
from etl.stage.repairs import AVAILABLE as REPAIRS_AVAILABLE
from etl.stage.repairs import REPAIRS

# Row checks: the canonical frame in, (staged with `_flags`, rejected with `_reasons`) out.
RowChecker = Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]

# The rows of a batch whose key another file of the source already holds: `_pos`, `_file`
# and the key fields in; `_pos` and `duplicate_of` (the other file) out.
KeysElsewhere = Callable[[pl.DataFrame], pl.DataFrame]
DUPLICATE_OF = "duplicate_of"


@dataclass(frozen=True)
class FileRead:
    """One piece of a file parsed into raw text rows (the whole file, when it is small)."""

    ref: FileRef
    layout: Layout | None
    raw: RawBatch
    last: bool = True  # False for a piece that more pieces of the same file follow


@dataclass
class FileCounts:
    """One file's rows at each step: read = staged + quarantined."""

    rows_read: int
    blank_lines: int
    control_total: int | None
    trailer_found: bool
    rows_staged: int = 0
    rows_flagged: int = 0
    rows_quarantined: int = 0


@dataclass
class StagedBatch:
    """What a batch of files produced, ready to be written."""

    staged: pl.DataFrame  # `_run_id`, `_file`, `_line`, canonical fields, `_flags`
    quarantine: pl.DataFrame  # quality.quarantine rows
    counts: dict[str, FileCounts]  # by file path
    reason_counts: dict[str, Counter] = field(default_factory=dict)  # by file path
    # `_file` and key fields of the rows of files whose next pieces are still to come
    seen_keys: pl.DataFrame | None = None


class FileReader:
    """Parses one file's pieces (`etl.sources.fetch.read_pieces`) in order with its format's
    reader (`etl.readers.READERS`), carrying over what a piece needs from those before it: the
    line number it starts at, and the rows so far, which a trailer's control total must match."""

    def __init__(self, ref: FileRef, source: Source) -> None:
        self.ref = ref
        self.source = source
        self.layout = source.layout_for(ref.name)
        self.columns = source.columns_for(self.layout)
        reader = READERS[source.format]
        self.parser = reader.open(source, self.layout) if reader.open else None
        self.typed = reader.typed
        self.next_line = 1  # the file's line number of the piece's first line
        self.rows = 0

    def read(self, data: bytes, last: bool) -> FileRead | None:
        """Parse the next piece; None while the reader gathers a whole file. Raises SourceError
        for a piece, or a file, that can't be."""
        if self.parser is None:
            raise SourceError(f"format {self.source.format!r} holds no trip rows")
        raw = self.parser.parse(data, last, self.next_line)
        if raw is None:
            return None
        # Checked per file, so that one file without a column fails alone, not its whole batch.
        require_columns(raw.header, self.columns)
        if self.typed:
            check_types(raw.frame.schema, self.columns)
        # Every line is a row, a blank line (delimited text checks it) or a header line.
        self.next_line += raw.frame.height + raw.blank_lines + raw.header_lines
        self.rows += raw.frame.height
        if last and self.source.trailer is not None:
            _reconcile_trailer(raw, self.rows)
        return FileRead(self.ref, self.layout, raw, last)

    def locate(self, error: SourceError) -> SourceError:
        """A reading error with the file's line number, which only the reader keeps."""
        return error.at(self.next_line) if isinstance(error, LineTooLong) else error


def _reconcile_trailer(raw: RawBatch, rows: int) -> None:
    """A file that declares its row count must hold exactly that many rows (`rows`, in all
    its pieces)."""
    if not raw.trailer_found:
        raise ControlTotalError(
            "no control-total line at the end: the file may be truncated", rows, None
        )
    if raw.control_total != rows:
        raise ControlTotalError(
            f"control total mismatch: the trailer says {raw.control_total} rows, "
            f"the file holds {rows}",
            rows,
            raw.control_total,
        )


class ControlTotalError(SourceError):
    """A file whose rows do not reconcile with the count it declares; not loaded."""

    def __init__(self, message: str, rows_read: int, control_total: int | None) -> None:
        super().__init__(message)
        self.rows_read = rows_read
        self.control_total = control_total


def stage_files(
    reads: list[FileRead],
    source: Source,
    run_id: str,
    check_rows: RowChecker,
    boundary: shapely.Geometry | None = None,
    seen_keys: pl.DataFrame | None = None,
    keys_elsewhere: KeysElsewhere | None = None,
) -> StagedBatch:
    """Stage and row-check files of one source and layout together; count per file.

    `seen_keys` are the keys of the earlier pieces of a file staged in pieces (the previous
    batch's `StagedBatch.seen_keys`): a key repeated across pieces is a duplicate too.
    `keys_elsewhere` finds the rows whose key another file already holds: duplicates as well.
    """
    columns = source.columns_for(reads[0].layout)
    reader = READERS[source.format]
    raw = pl.concat(
        [r.raw.frame.with_columns(pl.lit(r.ref.path).alias(FILE)) for r in reads],
        # Typed files of one source may differ in width (Int32 here, Int64 there).
        how="diagonal_relaxed" if reader.typed else "diagonal",
    )
    if reader.prepare is not None:
        raw = reader.prepare(raw, columns)
    canonical = _canonical(raw, source, columns, boundary, seen_keys)
    # Files are read in order: only the batch's last file may have pieces still to come.
    continued = [] if reads[-1].last else [reads[-1].ref.path]
    keys = [k for k in source.key if k in canonical.columns]
    duplicates = None
    if keys_elsewhere is not None and keys and canonical.height:
        canonical, duplicates = _mark_keys_elsewhere(canonical, keys, keys_elsewhere)
    if continued and keys:
        earlier = [seen_keys] if seen_keys is not None else []
        mine = canonical.filter(pl.col(FILE).is_in(continued)).select(FILE, *keys)
        seen_keys = pl.concat([*earlier, mine]).filter(pl.col(FILE).is_in(continued))
    else:
        seen_keys = None
    staged, rejected = _check(canonical, source, check_rows)
    staged = staged.select(pl.lit(run_id).alias("_run_id"), pl.all().exclude(PARSE_ERRORS, REASONS))
    counts: dict[str, FileCounts] = {}
    for r in reads:  # a batch may hold several pieces of one file
        file = counts.setdefault(r.ref.path, FileCounts(0, 0, None, False))
        file.rows_read += r.raw.frame.height
        file.blank_lines += r.raw.blank_lines
        if r.raw.trailer_found:
            file.control_total, file.trailer_found = r.raw.control_total, True
    _count_per_file(counts, staged, rejected)
    header = tuple(dict.fromkeys(c for r in reads for c in r.raw.header))
    return StagedBatch(
        staged=staged,
        quarantine=_quarantine_rows(raw, header, rejected, source_name=reads[0].ref.source,
                                    run_id=run_id, duplicates=duplicates),
        counts=counts,
        reason_counts=_count_reasons(rejected, staged),
        seen_keys=seen_keys,
    )  # fmt: skip


def empty_staging_frame(source: Source) -> pl.DataFrame:
    """A zero-row frame with the columns and types `staging.<source>` gets from this source."""
    columns = source.columns_for(None)
    raw = pl.DataFrame(
        {FILE: pl.Series([], dtype=pl.Utf8), LINE: pl.Series([], dtype=pl.Int64)}
        | {c.source: pl.Series([], dtype=pl.Utf8) for c in columns.values()}
    )
    canonical = _canonical(raw, source, columns, boundary=None)
    staged, _ = _check(canonical, source, reject_unparseable)
    return staged.select(pl.lit("").alias("_run_id"), pl.all().exclude(PARSE_ERRORS, REASONS))


def reject_unparseable(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The row check every source gets: a value that did not parse rejects its row."""
    bad = pl.col(PARSE_ERRORS).list.len() > 0
    staged = frame.filter(~bad).with_columns(pl.lit([], pl.List(pl.Utf8)).alias(FLAGS))
    rejected = frame.filter(bad).with_columns(
        pl.col(PARSE_ERRORS).alias(REASONS), pl.lit([], pl.List(pl.Utf8)).alias(FLAGS)
    )
    return staged, rejected


def _canonical(
    raw: pl.DataFrame,
    source: Source,
    columns: dict[str, Column],
    boundary: shapely.Geometry | None,
    seen_keys: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Typed canonical fields, with derived fields, repairs and in-DC tests."""
    frame = stage_frame(raw, columns, source.null_tokens, source.key, seen_keys)
    if "duration_s" not in frame.columns and {"pickup_at", "dropoff_at"} <= set(frame.columns):
        # Sources with second-precision times carry no duration column: it is the difference.
        seconds = (pl.col("dropoff_at") - pl.col("pickup_at")).dt.total_seconds(fractional=True)
        frame = frame.with_columns(seconds.alias("duration_s"))
    for repair in source.repairs:
        frame = REPAIRS_AVAILABLE[repair](frame)
    if {"pickup_lat", "dropoff_lat"} <= set(frame.columns):
        if boundary is None:
            frame = frame.with_columns(
                pl.lit(None, pl.Boolean).alias("pickup_in_dc"),
                pl.lit(None, pl.Boolean).alias("dropoff_in_dc"),
            )
        else:
            frame = add_in_dc_columns(frame, boundary)
    return frame


def _mark_keys_elsewhere(
    canonical: pl.DataFrame, keys: list[str], keys_elsewhere: KeysElsewhere
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows whose key another file holds get the reason `duplicate_key`; returned with the
    `_file`, `_line` and `duplicate_of` of each such row."""
    positions = canonical.select(FILE, LINE, *keys).with_row_index("_pos")
    found = keys_elsewhere(positions.select("_pos", FILE, *keys))
    duplicates = positions.join(found, on="_pos").select(FILE, LINE, DUPLICATE_OF)
    if not duplicates.height:
        return canonical, duplicates
    repeated = pl.int_range(pl.len()).is_in(found["_pos"].cast(pl.Int64).implode())
    reasons = (
        pl.col(PARSE_ERRORS).list.concat(pl.lit([DUPLICATE_KEY])).list.unique(maintain_order=True)
    )
    marked = pl.when(repeated).then(reasons).otherwise(pl.col(PARSE_ERRORS))
    return canonical.with_columns(marked.alias(PARSE_ERRORS)), duplicates


def _check(
    frame: pl.DataFrame, source: Source, check_rows: RowChecker
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Row-check the trips; rows that are not trips only need to parse."""
    if source.trips_where:
        is_trip = pl.sql_expr(source.trips_where).fill_null(False)
        staged, rejected = check_rows(frame.filter(is_trip))
        other_staged, other_rejected = reject_unparseable(frame.filter(~is_trip))
        other_staged = other_staged.with_columns(pl.lit([NOT_A_TRIP]).alias(FLAGS))
        staged = pl.concat([staged, other_staged], how="diagonal_relaxed").sort(FILE, LINE)
        rejected = pl.concat([rejected, other_rejected], how="diagonal_relaxed").sort(FILE, LINE)
    else:
        staged, rejected = check_rows(frame)
    if REPAIRS in frame.columns:
        # A repaired row is staged with the repair among its flags. Few rows are repaired:
        # joining the lists of those alone cost less than half of joining every row's (0.06
        # against 0.14 CPU s at 250,000 rows).
        repaired = pl.col(REPAIRS).list.len() > 0
        flags = pl.when(repaired).then(pl.concat_list(FLAGS, REPAIRS)).otherwise(pl.col(FLAGS))
        staged = staged.with_columns(flags.alias(FLAGS)).drop(REPAIRS)
        rejected = rejected.drop(REPAIRS)
    return staged, rejected


def _quarantine_rows(
    raw: pl.DataFrame,
    header: tuple[str, ...],
    rejected: pl.DataFrame,
    source_name: str,
    run_id: str,
    duplicates: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Rejected rows with their raw values as the file had them, as one JSON object each, and
    for a key another file holds, that file (`duplicates`: `_file`, `_line`, `duplicate_of`)."""
    reasons = rejected.select(FILE, LINE, REASONS)
    # Narrow by line number first (integers, cheap), then match the file too.
    candidates = raw.filter(pl.col(LINE).is_in(reasons[LINE].unique().implode()))
    raw_rows = candidates.join(reasons, on=[FILE, LINE], how="semi")
    if RAW_JSON in raw.columns:
        as_json = pl.col(RAW_JSON)
    else:
        # Only the file's own columns: a column another file of the batch has is not in it.
        as_json = pl.struct(list(header)).struct.json_encode()
    raw_json = raw_rows.select(FILE, LINE, as_json.alias("raw"))
    rows = reasons.join(raw_json, on=[FILE, LINE], how="left")
    if duplicates is not None and duplicates.height:
        rows = rows.join(duplicates, on=[FILE, LINE], how="left")
    return rows.select(
        pl.lit(run_id).alias("run_id"),
        pl.lit(source_name).alias("source"),
        pl.col(FILE).alias("file"),
        pl.col(LINE).alias("line"),
        pl.col(REASONS).alias("reasons"),
        pl.col("raw"),
        *([pl.col(DUPLICATE_OF)] if DUPLICATE_OF in rows.columns else []),
    )


def _count_per_file(
    counts: dict[str, FileCounts], staged: pl.DataFrame, rejected: pl.DataFrame
) -> None:
    per_file = staged.group_by(FILE).agg(
        pl.len().alias("staged"), (pl.col(FLAGS).list.len() > 0).sum().alias("flagged")
    )
    for path, n_staged, n_flagged in per_file.iter_rows():
        counts[path].rows_staged, counts[path].rows_flagged = n_staged, n_flagged
    for path, n_rejected in rejected.group_by(FILE).len().iter_rows():
        counts[path].rows_quarantined = n_rejected


def _count_reasons(rejected: pl.DataFrame, staged: pl.DataFrame) -> dict[str, Counter]:
    """Rows per reason (rejected) and per flag (staged), by file."""
    counts: dict[str, Counter] = {}
    for frame, column in ((rejected, REASONS), (staged, FLAGS)):
        per_file = (
            frame.select(FILE, column).explode(column).drop_nulls().group_by(FILE, column).len()
        )
        for path, name, count in per_file.iter_rows():
            counts.setdefault(path, Counter())[name] += count
    return counts
