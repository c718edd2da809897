"""Parse JSON Lines into a frame of raw text values, one column per mapped JSON path.

A broken line must not stop the file: each line is checked with DuckDB's `json_valid`, and a
line that is not JSON, has a field the source does not declare, or holds a string where the
mapping expects a number keeps its reasons in `_read_errors` and goes to quarantine later.
The extraction runs in DuckDB over the whole column of lines.
"""

from __future__ import annotations

import functools

import duckdb
import polars as pl

from etl.config.spec import Column, Layout, Source
from etl.errors import SourceError
from etl.names import LINE, READ_ERRORS
from etl.readers.base import RawBatch, Reader
from etl.readers.delimited import reject_utf16

RAW_JSON = "_raw"  # the line itself: what quarantine keeps as the raw record
NUMERIC = ("integer", "float", "money")


@functools.cache
def _engine() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB for all JSON parsing: connecting per file costs more than parsing."""
    return duckdb.connect()


class _JsonLinesFile:
    def __init__(self, source: Source, layout: Layout | None) -> None:
        self.encoding = source.encoding
        self.columns = source.columns_for(layout)

    def parse(self, data: bytes, last: bool, first_line: int) -> RawBatch:
        if first_line == 1:
            reject_utf16(data, self.encoding)
        return parse_jsonl(data, self.columns, first_line=first_line)


def parse_jsonl(data: bytes, columns: dict[str, Column], first_line: int = 1) -> RawBatch:
    """A file's lines, or a piece of them starting at line `first_line`, numbered; the JSON in
    them is read by `extract_fields`, batch-wide.

    Splitting the work this way runs one DuckDB query for a batch of small daily files
    instead of one a file.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + first_line
        raise SourceError(f"not valid UTF-8: byte 0x{data[err.start]:02x} on line {line}") from None
    # Split natively, whatever the line holds (a CSV reader would cut a broken line at its
    # separator). A day without jobs is an empty export: zero rows, not a broken file.
    text = pl.Series("line", [data], dtype=pl.Binary).cast(pl.Utf8).str.split("\n").explode()
    if b"\r" in data:
        text = text.str.strip_suffix("\r")
    lines = text.to_frame().with_row_index(LINE, offset=first_line)
    if not data or data.endswith(b"\n"):  # what follows the last newline is not a line
        lines = lines.slice(0, lines.height - 1)
    blank = ~lines["line"].str.contains(r"\S")  # stops at a line's first character
    blank_lines = int(blank.sum())
    lines = lines.filter(~blank).with_columns(pl.col(LINE).cast(pl.Int64))

    header = tuple(sorted({c.source for c in columns.values()}))
    return RawBatch(lines, header, blank_lines, control_total=None, trailer_found=False)


def extract_fields(lines: pl.DataFrame, columns: dict[str, Column]) -> pl.DataFrame:
    """Each line's mapped values as text, its read errors and the line as raw JSON.

    `lines` has a `line` column and any lineage columns, which are kept.
    """
    paths = sorted({c.source for c in columns.values()})
    numeric = {c.source for c in columns.values() if c.type in NUMERIC}
    known_fields = sorted({p.split(".")[0] for p in paths})
    # A line is parsed three times, not five: checked, its paths extracted as JSON values, its
    # keys listed. Each value's type shows in its first character (a string's is a quote), and
    # a valid JSON text is an object exactly when it starts with a brace.
    path_list = "[" + ", ".join(f"'$.{path}'" for path in paths) + "]"
    values = ",\n".join(
        f"""CASE WHEN found[{i}] IS NULL OR found[{i}] = 'null' THEN NULL
                 WHEN starts_with(found[{i}], '"') THEN json_extract_string(found[{i}], '$')
                 ELSE found[{i}]::VARCHAR END AS "{path}\""""
        for i, path in enumerate(paths, start=1)
    )
    type_errors = ", ".join(
        f"""CASE WHEN starts_with(found[{i}], '"') THEN 'wrong_type:{path}' END"""
        for i, path in enumerate(paths, start=1)
        if path in numeric
    )
    lineage = ", ".join(c for c in lines.columns if c != "line")
    query = f"""
        WITH checked AS (SELECT *, json_valid(line) AS ok FROM lines),
        parsed AS (
            SELECT *,
                   CASE WHEN ok THEN json_extract(line, {path_list}) END AS found,
                   CASE WHEN ok THEN starts_with(ltrim(line, ' \t'), '{{') END AS is_object,
                   CASE WHEN ok THEN json_keys(line) END AS keys
            FROM checked
        )
        SELECT
            {lineage},
            {values},
            list_filter(
                [CASE WHEN NOT ok THEN 'invalid_json' END,
                 CASE WHEN ok AND NOT is_object THEN 'not_an_object' END,
                 {type_errors or "NULL"}]
                || [
                    'unknown_field:' || k
                    for k in coalesce(keys, [])
                    if NOT list_contains($known, k)
                ],
                lambda r: r IS NOT NULL
            ) AS {READ_ERRORS},
            CASE WHEN ok THEN line ELSE to_json(line)::VARCHAR END AS {RAW_JSON}
        FROM parsed
    """
    con = _engine()
    con.register("lines", lines)
    try:
        return pl.from_arrow(con.sql(query, params={"known": known_fields}).to_arrow_table())
    finally:
        con.unregister("lines")


READER = Reader(
    "jsonl", "trip", by_lines=True, typed=False, open=_JsonLinesFile, prepare=extract_fields
)
