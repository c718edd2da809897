"""One file from bytes to staged rows and quarantined rows, with its counts.

This is the per-file unit of the load: parse with the source's reader, map to canonical fields,
run the row checks, and keep for every rejected row its raw values and all of its reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from etl.config.models import Source
from etl.sources.delimited import LINE, RawBatch, parse_delimited
from etl.sources.files import FileRef
from etl.stage.mapping import PARSE_ERRORS, stage_frame

REASONS = "_reasons"
FLAGS = "_flags"

# Row checks: the canonical frame in, (staged with `_flags`, rejected with `_reasons`) out.
RowChecker = Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]]


@dataclass
class FileBatch:
    """What one file produced, ready to be written."""

    ref: FileRef
    layout: str | None
    staged: pl.DataFrame  # canonical fields + `_run_id`, `_file`, `_line`, `_flags`
    quarantine: pl.DataFrame  # quality.quarantine rows
    rows_read: int
    blank_lines: int
    control_total: int | None
    trailer_found: bool
    reason_counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows_flagged(self) -> int:
        return int(self.staged[FLAGS].list.len().gt(0).sum()) if self.staged.height else 0


def prepare(
    ref: FileRef, source: Source, data: bytes, run_id: str, check_rows: RowChecker
) -> FileBatch:
    """Parse, stage and check one file. Raises SourceError for a file that cannot be read."""
    layout = source.layout_for(ref.name)
    raw = _read(source, layout.delimiter if layout and layout.delimiter else None, data)
    canonical = stage_frame(raw.frame, source.columns_for(layout), source.null_tokens)
    staged, rejected = check_rows(canonical)

    lineage = [pl.lit(run_id).alias("_run_id"), pl.lit(ref.path).alias("_file")]
    staged = staged.select(*lineage, pl.all().exclude(PARSE_ERRORS))
    quarantine = _quarantine_rows(raw, rejected, ref, run_id)
    return FileBatch(
        ref=ref,
        layout=layout.name if layout else None,
        staged=staged,
        quarantine=quarantine,
        rows_read=raw.frame.height,
        blank_lines=raw.blank_lines,
        control_total=raw.control_total,
        trailer_found=raw.trailer_found,
        reason_counts=_count_reasons(rejected, staged),
    )


def empty_staging_frame(source: Source) -> pl.DataFrame:
    """A zero-row frame with the columns and types `staging.<source>` gets from this source."""
    columns = source.columns_for(None)
    raw = pl.DataFrame(
        {LINE: pl.Series([], dtype=pl.Int64)}
        | {c.source: pl.Series([], dtype=pl.Utf8) for c in columns.values()}
    )
    staged = stage_frame(raw, columns, source.null_tokens).with_columns(
        pl.lit([], pl.List(pl.Utf8)).alias(FLAGS)
    )
    lineage = [pl.lit("").alias("_run_id"), pl.lit("").alias("_file")]
    return staged.select(*lineage, pl.all().exclude(PARSE_ERRORS))


def reject_unparseable(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The row check every source gets: a value that did not parse rejects its row."""
    bad = pl.col(PARSE_ERRORS).list.len() > 0
    staged = frame.filter(~bad).with_columns(pl.lit([], pl.List(pl.Utf8)).alias(FLAGS))
    rejected = frame.filter(bad).with_columns(pl.col(PARSE_ERRORS).alias(REASONS))
    return staged, rejected


def _read(source: Source, delimiter: str | None, data: bytes) -> RawBatch:
    return parse_delimited(
        data, delimiter or source.delimiter, encoding=source.encoding, trailer=source.trailer
    )


def _quarantine_rows(
    raw: RawBatch, rejected: pl.DataFrame, ref: FileRef, run_id: str
) -> pl.DataFrame:
    """Rejected rows with their raw values as the file had them, as one JSON object each."""
    reasons = rejected.select(LINE, REASONS)
    raw_rows = raw.frame.join(reasons, on=LINE, how="semi")
    raw_json = raw_rows.select(LINE, pl.struct(list(raw.header)).struct.json_encode().alias("raw"))
    return reasons.join(raw_json, on=LINE, how="left").select(
        pl.lit(run_id).alias("run_id"),
        pl.lit(ref.source).alias("source"),
        pl.lit(ref.path).alias("file"),
        pl.col(LINE).alias("line"),
        pl.col(REASONS).alias("reasons"),
        pl.col("raw"),
    )


def _count_reasons(rejected: pl.DataFrame, staged: pl.DataFrame) -> dict[str, int]:
    counts: dict[str, int] = {}
    for frame, column in ((rejected, REASONS), (staged, FLAGS)):
        if frame.height:
            exploded = frame.select(pl.col(column).explode().drop_nulls().value_counts())
            for row in exploded.unnest(column).iter_rows():
                counts[row[0]] = counts.get(row[0], 0) + row[1]
    return counts
