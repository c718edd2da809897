"""Files from bytes to staged rows and quarantined rows, with counts per file.

Reading is per file (`read_file`); staging and checking work on a batch of files of one source
and layout at once (`stage_files`), because a year of small daily files would otherwise pay the
fixed cost of every step hundreds of times. In order:

1. parse with the source's reader (raw text, line numbers), tag rows with their `_file`;
2. map to canonical fields (`etl.stage.mapping`), derive a trip's duration from its timestamps
   when the source has no duration column, apply the source's repairs, mark repeated keys;
3. add `pickup_in_dc` / `dropoff_in_dc` from the DC boundary, when one is loaded;
4. run the source's row checks on the rows that are trips (`trips_where`); the others are
   staged with the flag `not_a_trip`;
5. keep, for every rejected row, its raw values and all of its reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import polars as pl
import shapely

from etl.config.models import Column, Layout, Source
from etl.integrate.geo import add_in_dc_columns
from etl.sources.delimited import LINE, RawBatch, parse_delimited
from etl.sources.files import FileRef, SourceError
from etl.sources.jsonl import RAW_JSON, extract_fields, parse_jsonl
from etl.stage.mapping import FILE, PARSE_ERRORS, require_columns, stage_frame
from etl.stage.repairs import AVAILABLE as REPAIRS_AVAILABLE
from etl.stage.repairs import REPAIRS

REASONS = "_reasons"
FLAGS = "_flags"
NOT_A_TRIP = "not_a_trip"

# Row checks: the canonical frame in, (staged with `_flags`, rejected with `_reasons`) out.
RowChecker = Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]


@dataclass(frozen=True)
class FileRead:
    """One file parsed into raw text rows, or one piece of a large file (`pieces`)."""

    ref: FileRef
    layout: Layout | None
    raw: RawBatch
    last: bool = True  # False for a piece that more pieces of the same file follow

    def pieces(self, max_rows: int) -> list[FileRead]:
        """The file as consecutive slices of at most `max_rows` rows, so that a large file is
        staged a piece at a time and memory follows the piece, not the file. Slicing copies no
        data; each piece keeps the file's counts (blank lines, control total)."""
        height = self.raw.frame.height
        if height <= max_rows:
            return [self]
        starts = range(0, height, max_rows)
        return [
            replace(
                self,
                raw=replace(self.raw, frame=self.raw.frame.slice(start, max_rows)),
                last=start + max_rows >= height,
            )
            for start in starts
        ]


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
    reason_counts: dict[str, int] = field(default_factory=dict)
    # `_file` and key fields of the rows of files whose next pieces are still to come
    seen_keys: pl.DataFrame | None = None


def read_file(ref: FileRef, source: Source, data: bytes) -> FileRead:
    """Parse one file with its source's reader. Raises SourceError for a file that can't be."""
    layout = source.layout_for(ref.name)
    delimiter = layout.delimiter if layout and layout.delimiter else source.delimiter
    if source.format == "delimited":
        raw = parse_delimited(data, delimiter, encoding=source.encoding, trailer=source.trailer)
    elif source.format == "jsonl":
        raw = parse_jsonl(data, source.columns_for(layout))
    else:
        raise SourceError(f"format {source.format!r} holds no trip rows")
    # Checked per file, so that one file without a column fails alone, not its whole batch.
    require_columns(raw.header, source.columns_for(layout))
    if source.trailer is not None:
        _reconcile_trailer(raw)
    return FileRead(ref, layout, raw)


def _reconcile_trailer(raw: RawBatch) -> None:
    """A file that declares its row count must hold exactly that many rows."""
    if not raw.trailer_found:
        raise ControlTotalError(
            "no control-total line at the end: the file may be truncated", raw.frame.height, None
        )
    if raw.control_total != raw.frame.height:
        raise ControlTotalError(
            f"control total mismatch: the trailer says {raw.control_total} rows, "
            f"the file holds {raw.frame.height}",
            raw.frame.height,
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
) -> StagedBatch:
    """Stage and row-check files of one source and layout together; count per file.

    `seen_keys` are the keys of the earlier pieces of a file staged in pieces (the previous
    batch's `StagedBatch.seen_keys`): a key repeated across pieces is a duplicate too.
    """
    columns = source.columns_for(reads[0].layout)
    raw = pl.concat(
        [r.raw.frame.with_columns(pl.lit(r.ref.path).alias(FILE)) for r in reads],
        how="diagonal",
    )
    if source.format == "jsonl":
        raw = extract_fields(raw, columns)
    canonical = _canonical(raw, source, columns, boundary, seen_keys)
    continued = [r.ref.path for r in reads if not r.last]
    keys = [k for k in source.key if k in canonical.columns]
    if continued and keys:
        earlier = [seen_keys] if seen_keys is not None else []
        mine = canonical.filter(pl.col(FILE).is_in(continued)).select(FILE, *keys)
        seen_keys = pl.concat([*earlier, mine]).filter(pl.col(FILE).is_in(continued))
    else:
        seen_keys = None
    staged, rejected = _check(canonical, source, check_rows)
    staged = staged.select(pl.lit(run_id).alias("_run_id"), pl.all().exclude(PARSE_ERRORS, REASONS))
    counts: dict[str, FileCounts] = {}
    for r in reads:
        file = r.raw
        counts.setdefault(
            r.ref.path, FileCounts(0, file.blank_lines, file.control_total, file.trailer_found)
        ).rows_read += file.frame.height
    _count_per_file(counts, staged, rejected)
    header = tuple(dict.fromkeys(c for r in reads for c in r.raw.header))
    return StagedBatch(
        staged=staged,
        quarantine=_quarantine_rows(raw, header, rejected, source_name=reads[0].ref.source,
                                    run_id=run_id),
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
        # A repaired row is staged with the repair among its flags.
        staged = staged.with_columns(pl.concat_list(FLAGS, REPAIRS).alias(FLAGS)).drop(REPAIRS)
        rejected = rejected.drop(REPAIRS)
    return staged, rejected


def _quarantine_rows(
    raw: pl.DataFrame,
    header: tuple[str, ...],
    rejected: pl.DataFrame,
    source_name: str,
    run_id: str,
) -> pl.DataFrame:
    """Rejected rows with their raw values as the file had them, as one JSON object each."""
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
    return reasons.join(raw_json, on=[FILE, LINE], how="left").select(
        pl.lit(run_id).alias("run_id"),
        pl.lit(source_name).alias("source"),
        pl.col(FILE).alias("file"),
        pl.col(LINE).alias("line"),
        pl.col(REASONS).alias("reasons"),
        pl.col("raw"),
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


def _count_reasons(rejected: pl.DataFrame, staged: pl.DataFrame) -> dict[str, int]:
    """Rows per reason (rejected) and per flag (staged)."""
    counts: dict[str, int] = {}
    for frame, column in ((rejected, REASONS), (staged, FLAGS)):
        if frame.height:
            values = frame.select(pl.col(column).explode().drop_nulls().value_counts())
            for name, count in values.unnest(column).iter_rows():
                counts[name] = counts.get(name, 0) + count
    return counts
