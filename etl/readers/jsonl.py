"""Parse JSON Lines into a frame of raw text values, one column per mapped JSON path.

A broken line must not stop the file: each line is checked with DuckDB's `json_valid`, and a
line that is not JSON, has a field the source does not declare, or holds a string where the
mapping expects a number keeps its reasons in `_read_errors` and goes to quarantine later.
The extraction runs in DuckDB over the whole column of lines.
"""

from __future__ import annotations

import functools
import json

import duckdb
import polars as pl

from etl.config.spec import Column, Layout, Source
from etl.errors import ConfigError, SourceError
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
    numeric_sources = {c.source for c in columns.values() if c.type in NUMERIC}
    numeric = [p for p in paths if p in numeric_sources]  # in order: the query's columns
    known_fields = sorted({p.split(".")[0] for p in paths})
    con = _engine()
    params = {"structure": json.dumps(_structure(paths, numeric)), "known": known_fields}
    # Only the lines go through DuckDB; lineage and the raw line are joined back by position
    # (DuckDB keeps a scan's order), which `_row` checks.
    with_row = lines.select("line").with_row_index("_row")
    con.register("lines", with_row)
    try:
        found = pl.from_arrow(con.sql(_query(paths, numeric), params=params).to_arrow_table())
    finally:
        con.unregister("lines")
    if not found["_row"].equals(with_row["_row"]):
        raise RuntimeError("DuckDB returned the lines of a batch out of order")
    # A line that is not JSON is kept as a JSON string; any other is its own raw JSON.
    raw = pl.coalesce(found["_invalid"], lines["line"]).alias(RAW_JSON)
    lineage = lines.drop("line")
    return pl.concat([lineage, found.drop("_row", "_invalid")], how="horizontal").with_columns(raw)


def _query(paths: list[str], numeric: list[str]) -> str:
    """The SQL that reads a batch's lines (`lines`: `_row`, `line`) in one pass.

    Each valid line is parsed twice, not three times: its mapped values read by one
    json_transform into a struct (a string unescaped, any other value as its JSON text), its
    keys listed. A numeric field comes as JSON text, so a string shows by its quote and only
    such a value is unescaped. Reasons are gathered only for a line that has any.
    """
    wrong = {path: f"""starts_with({_field(path)}, '"')""" for path in numeric}
    values = ",\n".join(
        f"CASE WHEN {wrong[path]} THEN json_extract_string({_field(path)}, '$') "
        f'ELSE {_field(path)}::VARCHAR END AS "{path}"'
        if path in wrong
        else f'{_field(path)} AS "{path}"'
        for path in paths
    )
    type_errors = "".join(
        f", CASE WHEN {w} THEN 'wrong_type:{path}' END" for path, w in wrong.items()
    )
    return f"""
        WITH parsed AS (
            SELECT *,
                   CASE WHEN ok THEN json_transform(line, $structure) END AS found,
                   CASE WHEN ok THEN starts_with(ltrim(line, ' \t'), '{{') END AS is_object,
                   CASE WHEN ok THEN ['unknown_field:' || k for k in json_keys(line)
                                      if NOT list_contains($known, k)] END AS unknown
            FROM (SELECT _row, line, json_valid(line) AS ok FROM lines)
        )
        SELECT
            _row,
            {values},
            CASE WHEN ok AND is_object AND len(unknown) = 0
                      AND NOT coalesce({" OR ".join(wrong.values()) or "false"}, false)
                 THEN []::VARCHAR[]
                 ELSE list_filter(
                     [CASE WHEN NOT ok THEN 'invalid_json' END,
                      CASE WHEN ok AND NOT is_object THEN 'not_an_object' END{type_errors}],
                     lambda r: r IS NOT NULL
                 ) || coalesce(unknown, [])
            END AS {READ_ERRORS},
            CASE WHEN NOT ok THEN to_json(line)::VARCHAR END AS _invalid
        FROM parsed
    """


def _structure(paths: list[str], numeric: list[str]) -> dict:
    """json_transform's structure of the mapped paths: nested objects as nested structs; a
    numeric field as JSON (its text, quoted when it is a string), any other as VARCHAR."""
    structure: dict = {}
    for path in paths:
        *parents, leaf = path.split(".")
        node = structure
        for depth, part in enumerate(parents, start=1):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # a value is mapped, and a field inside it too
                raise _both_mapped(".".join(parents[:depth]), path)
        if leaf in node:
            raise _both_mapped(path, f"{path}.*")
        node[leaf] = "JSON" if path in numeric else "VARCHAR"
    return structure


def _both_mapped(outer: str, inner: str) -> ConfigError:
    return ConfigError(f"JSON paths {outer!r} and {inner!r} are both mapped: a value cannot be "
                       "read whole and by its fields too; map one")  # fmt: skip


def _field(path: str) -> str:
    """The SQL of a mapped path's value in the parsed struct."""
    return "found." + ".".join('"' + part.replace('"', '""') + '"' for part in path.split("."))


READER = Reader(
    "jsonl", "trip", by_lines=True, typed=False, open=_JsonLinesFile, prepare=extract_fields
)
